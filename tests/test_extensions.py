"""Each kind of extension is one definition plus one line in one table: a toy curation step,
a toy generator and a toy loss, each written here, go through the real registration — the
curate funnel, the generators' runner and progress totals, the preference-loss lookup."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import pytest
import torch
from pydantic import Field, TypeAdapter
from rich.console import Console
from rich.progress import Progress

from alignlab.config import Config
from alignlab.curate import config as curate_config
from alignlab.curate.config import STEPS, StepSettings, step_union
from alignlab.curate.funnel import funnel_counts, run_steps
from alignlab.curate.steps import KEEP, StepContext, reject
from alignlab.llm.scripted import ScriptedBackend
from alignlab.records import Sample
from alignlab.sdg import generators
from alignlab.sdg.candidates import Candidate
from alignlab.sdg.config import GenerateConfig
from alignlab.sdg.generator import Generator
from alignlab.sdg.progress import GenerationProgress
from alignlab.sdg.steps import GenContext, ask_step, sampling
from alignlab.train import losses
from alignlab.train.config import PreferenceLossConfig

QUIET = Console(file=open("/dev/null", "w"))


# ---------------------------------------------------------------- a curation step

class ShortAnswerStep(StepSettings):
    """Reject answers shorter than `min_words`."""

    step: Literal["short_answer"] = "short_answer"
    run: ClassVar[str] = f"{__name__}:short_answer"
    min_words: int = Field(2, ge=1)

    def models(self, cfg):  # a model it would ask: curate's fingerprint names it by identity
        return {"reader": cfg.models.student}


def short_answer(samples, settings, ctx):
    return [KEEP if len(s.messages[-1]["content"].split()) >= settings.min_words
            else reject("too_short", words=len(s.messages[-1]["content"].split())) for s in samples]


def _sample(i: int, answer: str) -> Sample:
    return Sample(id=f"s{i}", messages=[{"role": "user", "content": f"question {i}"},
                                        {"role": "assistant", "content": answer}],
                  metadata={"leaf": "toy/leaf"})


def test_a_curation_step_is_its_settings_and_function_plus_one_line(monkeypatch):
    table = (*STEPS, ShortAnswerStep)
    monkeypatch.setattr(curate_config, "STEPS", table)
    steps = TypeAdapter(list[step_union(table)]).validate_python(
        [{"step": "short_answer", "min_words": 3}, {"step": "dedup"}])
    assert isinstance(steps[0], ShortAnswerStep) and steps[0].min_words == 3
    samples = [_sample(0, "a long enough answer"), _sample(1, "too short"), _sample(2, "another fine answer")]
    survivors, reports = run_steps(samples, steps, ["short_answer", "dedup"], StepContext(Config()))
    assert [s.id for s in survivors] == ["s0", "s2"]
    counts = funnel_counts(samples, survivors, reports)
    assert counts["steps"][0]["by_reason"] == {"too_short": 1}
    with pytest.raises(ValueError, match="short_answer"):  # an unknown name lists the known ones
        TypeAdapter(list[step_union(table)]).validate_python([{"step": "nope"}])


# The config as a whole is serialised with the package's own union of steps, which does not
# know the toy (a step listed in STEPS is in it); the step's own settings are dumped exactly.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_a_curation_step_from_outside_alignlab_runs_through_the_stage_table(tmp_path):
    """Run by `run_stage` as `alignlab curate` runs it: its verdicts reach the stage's files,
    and its own source (a module outside alignlab) is part of the stage's code fingerprint."""
    from test_curate_fixtures import write_generate_output

    from alignlab.artefacts import REJECTS, SAMPLES
    from alignlab.codedeps import code_files
    from alignlab.pipeline import StageContext, run_stage
    from alignlab.store import read_jsonl

    class WithToyStep(curate_config.CurateConfig):  # the section as one more line in STEPS makes it
        steps: list[step_union((*STEPS, ShortAnswerStep))]

    cfg = Config(name="toy", curate=WithToyStep(steps=[{"short_answer": {"min_words": 3}}]))
    cfg._base_dir = tmp_path
    write_generate_output(cfg, [_sample(0, "a long enough answer"), _sample(1, "too short")])
    ran = run_stage(cfg, "curate", StageContext(console=QUIET))
    folder = cfg.run_dir.stage("curate")
    assert [r["id"] for r in read_jsonl(folder.file(SAMPLES))] == ["s0"]
    assert [(r["id"], r["reason"]) for r in read_jsonl(folder.file(REJECTS))] == [("s1", "too_short")]
    assert not ran.skipped and ran.manifest["counts"]["steps"][0]["by_reason"] == {"too_short": 1}
    assert ran.manifest["config"]["models"] == {"reader": cfg.model_id(cfg.models.student)}
    assert Path(__file__).resolve() in {p.resolve() for p in code_files(ShortAnswerStep().module)}
    assert run_stage(cfg, "curate", StageContext(console=QUIET)).skipped  # nothing changed


# ---------------------------------------------------------------- a generator

def toy_run(ctx, candidates, leaves):
    ask_step(ctx, candidates, step="question", into="question", parse=lambda t: t, params=sampling(ctx),
             build=lambda c: {"messages": ({"role": "user", "content": f"ask about {c.leaf}"},)})
    ask_step(ctx, candidates, step="answer", into="answer", parse=lambda t: t, params=sampling(ctx),
             build=lambda c: {"messages": ({"role": "user", "content": c.question},)})


def toy_plan(leaf, inputs):
    return [Candidate(leaf=leaf.path, leaf_kind=leaf.kind, generator="toy", order=(k,)) for k in range(3)]


def test_a_generator_is_its_declaration_plus_one_line(monkeypatch, tmp_path):
    from test_generate import workspace

    from alignlab.config import load_config
    from alignlab.sdg.stage import leaf_documents, plan, select_leaves

    monkeypatch.setitem(generators.GENERATORS, "toy", Generator("toy", toy_run, requests=2,
                                                                leaf_kind="grounded_skill", plan=toy_plan))
    cfg = load_config(workspace(tmp_path))
    leaves = select_leaves(cfg, None)
    backend = ScriptedBackend("scripted")
    planned = plan(cfg, leaves, leaf_documents(leaves)[0], backend.count_tokens).candidates
    # generate's plan asks every listed generator: the toy plans each leaf of its kind, after
    # the grounded generator listed before it, and the other generators plan as they did
    grounded = [lf.path for lf in leaves if lf.kind == "grounded_skill"]
    candidates = [c for c in planned if c.generator == "toy"]
    assert grounded and [c.leaf for c in candidates] == [leaf for leaf in grounded for _ in range(3)]
    in_leaf = [c.generator for c in planned if c.leaf == grounded[0]]
    assert in_leaf == sorted(in_leaf, key=["grounded", "toy"].index) and set(in_leaf) == {"grounded", "toy"}
    assert {c.generator for c in planned} == {"knowledge_qa", "freeform", "grounded", "toy"}
    with Progress(disable=True) as bar:
        tracker = GenerationProgress(bar, candidates)
        assert bar.tasks[tracker.overall].total == 6 * len(grounded)  # 3 a leaf x the 2 requests declared
        ctx = GenContext(teacher=backend, judge=backend, settings=GenerateConfig(), progress=tracker)
        generators.run_generators(ctx, candidates, {})
        assert bar.tasks[tracker.overall].completed == 6 * len(grounded)
    assert all(c.alive and c.answer for c in candidates)


def test_a_generator_runs_through_the_stage_table(monkeypatch, tmp_path):
    """`run_stage('generate')` plans, runs and writes the toy's candidates as any generator's:
    its samples carry its name and both of its steps' replies."""
    from test_generate import workspace

    from alignlab.artefacts import SAMPLES
    from alignlab.config import load_config
    from alignlab.pipeline import StageContext, run_stage
    from alignlab.sdg.stage import select_leaves
    from alignlab.store import read_jsonl

    monkeypatch.setitem(generators.GENERATORS, "toy", Generator("toy", toy_run, requests=2,
                                                                leaf_kind="grounded_skill", plan=toy_plan))
    cfg = load_config(workspace(tmp_path))
    backend = ScriptedBackend("scripted")
    ran = run_stage(cfg, "generate", StageContext(console=QUIET, backends={cfg.models.teacher: backend,
                                                                         cfg.judge: backend}))
    toy = [r for r in read_jsonl(cfg.run_dir.stage("generate").file(SAMPLES)) if r["metadata"]["generator"] == "toy"]
    grounded = sorted(lf.path for lf in select_leaves(cfg, None) if lf.kind == "grounded_skill")
    assert grounded and [r["metadata"]["leaf"] for r in toy] == [leaf for leaf in grounded for _ in range(3)]
    assert all(r["messages"][0]["content"] and r["messages"][-1]["content"] for r in toy)
    assert ran.manifest["counts"]["samples"] >= len(toy)


def test_an_undeclared_generator_says_where_to_declare_it():
    with pytest.raises(KeyError, match="alignlab.sdg.generators"):
        generators.generator("nope")


# ---------------------------------------------------------------- a loss

def test_a_loss_is_its_function_plus_one_line(monkeypatch):
    def margin_loss(chosen, rejected, margin=1.0):
        return torch.relu(margin - (chosen - rejected)), chosen.detach(), rejected.detach()

    monkeypatch.setitem(losses.LOSSES, "margin", losses.Loss(lambda c, x: margin_loss(x.chosen, x.rejected),
                                                             reference=False))
    cfg = PreferenceLossConfig(kind="margin", beta=0.1)  # the config accepts what the table holds
    assert not cfg.needs_reference and not cfg.unpaired
    loss, chosen, rejected = losses.preference_loss(cfg, torch.tensor([0.0, 3.0]), torch.tensor([0.0, 0.0]))
    assert loss.tolist() == [1.0, 0.0]


def test_a_loss_trains_through_the_stage_table(monkeypatch, tmp_path, tiny_model_dir):
    """`run_stage('align')` with `align.loss.kind` naming the toy: the policy trains on its loss
    (no reference log-probs, as it declares) and the stage records it."""
    from test_pairs_align_stage import workspace

    from alignlab.pipeline import StageContext, run_stage
    from alignlab.store import read_jsonl

    used = []

    def margin_loss(_cfg, x):
        used.append(len(x.chosen))
        return torch.relu(1.0 - (x.chosen - x.rejected)), x.chosen.detach(), x.rejected.detach()

    monkeypatch.setitem(losses.LOSSES, "margin", losses.Loss(margin_loss, reference=False))
    cfg = workspace(tmp_path, tiny_model_dir, loss={"kind": "margin"})
    run_stage(cfg, "pairs", StageContext(console=QUIET))
    ran = run_stage(cfg, "align", StageContext(console=QUIET))
    folder = cfg.run_dir.path / "align"
    assert ran.manifest["counts"]["loss"] == "margin" and ran.manifest["counts"]["steps"] > 0
    assert used and list(read_jsonl(folder / "metrics.jsonl"))
    assert not (folder / "pairs_with_reference.jsonl").exists()  # reference=False: none computed


# ---------------------------------------------------------------- a backend's spec

def test_a_spec_kind_is_one_row(monkeypatch):
    from alignlab.errors import ConfigError
    from alignlab.llm import specs
    from alignlab.llm.hf import model_id

    def toy(rest, raw, base_dir):
        if not rest:
            raise ConfigError(f"model spec {raw!r}: expected 'toy:<name>'")
        return specs.ModelSpec(raw=raw, kind="toy", name=rest)

    monkeypatch.setitem(specs.KINDS, "toy", specs.SpecKind(toy, "'toy:<name>'", local=False))
    spec = specs.parse_spec("toy:echo")
    assert (spec.kind, spec.name, spec.is_local) == ("toy", "echo", False)
    assert model_id(spec) == "toy:echo"  # a served model is named by its spec
    with pytest.raises(ConfigError, match="expected 'toy:<name>'"):
        specs.parse_spec("toy:")
    with pytest.raises(ConfigError, match="unknown kind 'elsewhere'.*toy"):  # the table names the kinds
        specs.parse_spec("elsewhere:ckpt")
    assert specs.parse_spec("./elsewhere:ckpt").kind == "local"  # a path may hold a colon


# ---------------------------------------------------------------- a training setting

def test_a_training_setting_is_declared_once_and_every_phase_may_override_it():
    from alignlab.errors import ConfigError
    from alignlab.train.config import AlignConfig, Hyperparameters, LoopHyperparameters, PhaseConfig, TrainConfig

    assert set(Hyperparameters.model_fields) <= set(PhaseConfig.model_fields)
    assert set(LoopHyperparameters.model_fields) <= set(AlignConfig.model_fields)
    train = TrainConfig(lr=1e-4, phases=[{"name": "a"}, {"name": "b", "lr": 5e-5, "lora": {"r": 4}}])
    assert train.resolve(train.phases[0]).lr == 1e-4
    resolved = train.resolve(train.phases[1])
    assert resolved.lr == 5e-5 and resolved.lora.r == 4
    with pytest.raises((ValueError, ConfigError)):  # an override keeps the setting's bounds
        PhaseConfig(name="c", lr=0)


def test_each_generator_declares_the_requests_a_surviving_candidate_sends(tmp_path):
    """The progress totals are the declarations: a survivor must have sent exactly what its
    generator declares (fewer would leave the bar short of 100%, more would overrun it)."""
    from test_generate import workspace

    from alignlab.config import load_config
    from alignlab.sdg.stage import leaf_documents, plan, select_leaves

    cfg = load_config(workspace(tmp_path))
    leaves = select_leaves(cfg, None)
    documents, _ = leaf_documents(leaves)
    backend = ScriptedBackend("scripted")
    work = plan(cfg, leaves, documents, backend.count_tokens)  # the workspace has MAGPIE off
    with Progress(disable=True) as bar:
        tracker = GenerationProgress(bar, work.candidates)
        ctx = GenContext(teacher=backend, judge=backend, settings=cfg.generate, progress=tracker)
        generators.run_generators(ctx, work.candidates, work.leaves)
    survivors = {c.generator for c in work.candidates if c.alive}
    assert survivors == {"knowledge_qa", "freeform", "grounded"}
    assert {tracker.left[c.id] for c in work.candidates} == {0}
