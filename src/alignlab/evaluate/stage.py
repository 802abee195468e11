"""The eval stage: every configured evaluation of one model, written under
`runs/<name>/eval/<label>/`, and head-to-head comparisons under `runs/<name>/eval/compare/`.

    results = evaluate_model(cfg, "runs/demo/train/phase2/best")
    results["mcq"]["by_leaf"]["knowledge/geography/islands/kelmarra"]["acc"]

Files of a model's folder: `results.json` (per-leaf summaries), `mcq.jsonl` and
`general_mcq.jsonl` (every item's option log-likelihoods and picks), `judged.jsonl` (every
prompt, answer and grade), `lm_eval.json`, and the manifest. Every model request goes through
the request cache, so evaluating the same model again costs nothing; a folder whose manifest
matches (same model weights, settings, questions, code) is read back instead of re-run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from alignlab.config import Config
from alignlab.errors import ConfigError
from alignlab.evaluate.judged import (
    answer_prompts, judge_answers, judged_summary, pairwise, skill_prompts,
)
from alignlab.evaluate.mcq import (
    GENERAL_MCQ, MCQ, general_mcq, load_mcq_file, mcq_summary, score_mcq, taxonomy_mcq,
)
from alignlab.evaluate.teacher_mcq import TEMPLATE as TEACHER_TEMPLATE
from alignlab.evaluate.teacher_mcq import teacher_mcq
from alignlab.llm.specs import parse_spec
from alignlab.models import StageModels
from alignlab.records import stable_id
from alignlab.sdg.templates import load_template
from alignlab.stage import StageRun, start_stage
from alignlab.store import (
    file_fingerprint, fingerprint, read_json, tree_fingerprint, write_json, write_jsonl,
)
from alignlab.tally import Tally

T = TypeVar("T")


@dataclass(frozen=True)
class EvalOptions:
    """What to run beyond the config's `eval:` section (the CLI's options)."""

    mcq_files: tuple[str, ...] = ()
    judged: bool | None = None  # None: eval.judged.enabled
    lm_eval_tasks: tuple[str, ...] = ()
    lm_eval_include: str | None = None
    lm_eval_limit: int | None = None
    lm_eval_chat: bool = True
    # Document chunks of each knowledge leaf held out from training, for teacher-written MCQ.
    heldout_chunks: Mapping[str, Sequence[str]] | None = field(default=None, compare=False)


def model_label(spec: str) -> str:
    """A folder name for a model: `smollm2-135m-layers12`, `phase2-best`, `<served name>`."""
    parsed = parse_spec(spec)
    if parsed.kind == "local":
        parts = Path(parsed.name).resolve().parts
        text = "-".join(parts[-2:])
    else:
        text = parsed.name
    if parsed.layers is not None:
        text += f"-layers{parsed.layers}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


# ------------------------------------------------------------------ question sets


def knowledge_items(cfg: Config, extra_files: Sequence[str] = ()) -> list[MCQ]:
    """Held-out MCQ of the taxonomy's leaves plus the config's and the command line's files."""
    items = taxonomy_mcq(cfg.taxonomy_path) if cfg.taxonomy_path.is_dir() else []
    for name in [*cfg.eval.mcq_files, *extra_files]:
        items.extend(load_mcq_file(cfg.path(name)))
    return items


def split_heldout(rows: Sequence[T], share: float, key: Callable[[T], str]) -> tuple[list[T], list[T]]:
    """(rows for checkpoint selection, rows for reported results), fixed by each row's key.

    Picking the best checkpoint on the questions a result is then reported on would flatter
    that result; a share of the held-out rows serves selection alone. With share 0 both use
    every row."""
    if share <= 0:
        return list(rows), list(rows)
    chosen = [int(stable_id("selection", key(r))[:8], 16) / 0xFFFFFFFF < share for r in rows]
    return [r for r, c in zip(rows, chosen) if c], [r for r, c in zip(rows, chosen) if not c]


def reported_items(cfg: Config, extra_files: Sequence[str] = (), part: int = 1) -> list[MCQ]:
    """The held-out MCQ results are reported on (`part=0`: those kept for selection)."""
    return split_heldout(knowledge_items(cfg, extra_files), cfg.eval.selection_share, _item_key)[part]


def reported_prompts(cfg: Config, part: int = 1) -> list[dict[str, Any]]:
    """The judged prompts results are reported on (`part=0`: those kept for selection)."""
    prompts = skill_prompts(cfg.taxonomy_path, cfg.eval.judged.max_prompts_per_leaf) \
        if cfg.taxonomy_path.is_dir() else []
    return split_heldout(prompts, cfg.eval.selection_share, _prompt_key)[part]


def _item_key(item: MCQ) -> str:
    return f"{item.leaf}/{item.id}"


def _prompt_key(prompt: dict[str, Any]) -> str:
    return f"{prompt['leaf']}/{prompt['question']}"


def teacher_items(cfg: Config, chunks: Mapping[str, Sequence[str]] | None,
                  models: StageModels) -> tuple[list[MCQ], Tally]:
    tally = Tally("eval.teacher_mcq")
    if not chunks or cfg.eval.teacher_mcq_per_leaf == 0:
        return [], tally
    teacher = models.backend(cfg.models.teacher)
    items: list[MCQ] = []
    for leaf, leaf_chunks in sorted(chunks.items()):
        got, leaf_tally = teacher_mcq(teacher, leaf_chunks, leaf, cfg.eval.teacher_mcq_per_leaf, cfg.seed)
        items.extend(got)
        tally.merge(leaf_tally)
    return items, tally


def _judged(cfg: Config, options: EvalOptions) -> bool:
    return cfg.eval.judged.enabled if options.judged is None else options.judged


def _inputs(cfg: Config, spec: str, options: EvalOptions) -> dict[str, str]:
    # Each model by its identity (a local directory's includes its weights), and the judge and
    # the teacher only when asked: a teacher directory removed since generation stops nothing.
    inputs = {"model": cfg.model_id(spec)}
    if _judged(cfg, options):
        inputs["judge"] = cfg.model_id(cfg.judge)
    if options.heldout_chunks and cfg.eval.teacher_mcq_per_leaf:
        inputs["teacher"] = cfg.model_id(cfg.models.teacher)
    if cfg.taxonomy_path.is_dir():
        inputs["taxonomy"] = tree_fingerprint(cfg.taxonomy_path, "**/*.*")
    for name in [*cfg.eval.mcq_files, *options.mcq_files]:
        path = cfg.path(name)
        inputs[f"mcq:{name}"] = file_fingerprint(path) if path.is_file() else "missing"
    if cfg.eval.general_mcq:
        path = GENERAL_MCQ if cfg.eval.general_mcq == "builtin" else cfg.path(cfg.eval.general_mcq)
        inputs["general_mcq"] = file_fingerprint(path) if path.is_file() else "missing"
    if options.heldout_chunks:
        inputs["heldout_chunks"] = fingerprint({k: list(v) for k, v in options.heldout_chunks.items()})
    # Prompt templates live beside the generators; a changed judge prompt changes the grades.
    inputs["templates"] = fingerprint([load_template(name).hash for name in (
        cfg.eval.judged.template, cfg.eval.judged.pairwise_template, TEACHER_TEMPLATE)])
    return inputs


# ------------------------------------------------------------------ one model


def evaluate_model(cfg: Config, spec: str, label: str | None = None,
                   options: EvalOptions = EvalOptions(), force: bool = False) -> dict[str, Any]:
    """Every configured evaluation of `spec`; returns (and writes) its results."""
    label = label or model_label(spec)
    settings = {"eval": cfg.eval.model_dump(mode="json"), "spec": spec,
                "options": {f.name: getattr(options, f.name) for f in fields(options)
                            if f.name != "heldout_chunks"}}
    run = start_stage(cfg, f"eval/{label}", settings=settings, inputs=_inputs(cfg, spec, options),
                      code=(__name__,), force=force)
    if run.done and run.dir.file("results.json").is_file():
        return read_json(run.dir.file("results.json"))

    models = StageModels(cfg)
    try:
        return _evaluate(cfg, spec, label, options, run, models)
    finally:
        models.close()


def _evaluate(cfg: Config, spec: str, label: str, options: EvalOptions, run: StageRun,
              models: StageModels) -> dict[str, Any]:
    results: dict[str, Any] = {"label": label, "model": spec}
    headline = "acc_norm" if cfg.eval.length_normalise else "acc"
    counts: dict[str, Any] = {}

    items = reported_items(cfg, options.mcq_files)
    extra, tally = teacher_items(cfg, options.heldout_chunks, models)
    items += extra
    if extra or tally.n_rejected:
        results["teacher_mcq"] = tally.counts()
        tally.write(run.dir, prefix="teacher_mcq_")
    general = general_mcq(cfg.eval.general_mcq, cfg.base_dir)
    prompts = reported_prompts(cfg) if _judged(cfg, options) else []
    if not (items or general or prompts or options.lm_eval_tasks):
        raise ConfigError(f"nothing to evaluate: no heldout_mcq.jsonl or skill leaves under "
                          f"{cfg.taxonomy_path}, no eval.mcq_files, general_mcq disabled and no "
                          f"--lm-eval tasks")

    if options.lm_eval_tasks:  # first: a task with missing data fails before anything else runs
        from alignlab.evaluate.lm_eval import run_lm_eval

        report = run_lm_eval(spec, options.lm_eval_tasks, options.lm_eval_include,
                             options.lm_eval_limit, options.lm_eval_chat, settings=cfg.backend)
        write_json(run.dir.file("lm_eval.json"), report)
        results["lm_eval"] = report["results"]
    backend = models.backend(spec)
    for key, file, question_set in (("mcq", "mcq.jsonl", items), ("general", "general_mcq.jsonl", general)):
        if question_set:
            rows = score_mcq(backend, question_set, cfg.eval.formulation, description=f"{label} {key}")
            write_jsonl(run.dir.file(file), rows)
            results[key] = {"formulation": cfg.eval.formulation, **mcq_summary(rows, headline)}
            counts[key] = len(rows)
    if prompts:
        answers = answer_prompts(backend, prompts, cfg.eval.judged.max_tokens, f"{label} answering")
        rows = judge_answers(models.backend(cfg.judge), prompts, answers, cfg.eval.judged)
        write_jsonl(run.dir.file("judged.jsonl"), rows)
        results["judged"] = {"judge": cfg.judge, "template": cfg.eval.judged.template,
                             **judged_summary(rows)}
        counts["judged"] = len(rows)
    write_json(run.dir.file("results.json"), results)
    run.finish(counts)
    return results


# ------------------------------------------------------------------ two models


def compare_models(cfg: Config, spec_a: str, spec_b: str, label_a: str | None = None,
                   label_b: str | None = None) -> dict[str, Any]:
    """Win rate of A over B on the held-out skill prompts, judged in both orders."""
    label_a, label_b = label_a or model_label(spec_a), label_b or model_label(spec_b)
    prompts = reported_prompts(cfg)
    if not prompts:
        raise ConfigError(f"no skill leaves with seed examples under {cfg.taxonomy_path}: "
                          f"nothing to compare the models on")
    models = StageModels(cfg)
    settings = cfg.eval.judged
    try:
        answers = [answer_prompts(models.backend(spec), prompts, settings.max_tokens, f"{label} answering")
                   for spec, label in ((spec_a, label_a), (spec_b, label_b))]
        result = pairwise(models.backend(cfg.judge), prompts, answers[0], answers[1],
                          settings.tie_band, settings.pairwise_template)
    finally:
        models.close()
    result = {"a": {"label": label_a, "model": spec_a}, "b": {"label": label_b, "model": spec_b},
              "judge": cfg.judge, **result}
    folder = cfg.run_dir.stage("eval").path / "compare"
    write_jsonl(folder / f"{label_a}__vs__{label_b}.jsonl", result["rows"])
    write_json(folder / f"{label_a}__vs__{label_b}.json", {k: v for k, v in result.items() if k != "rows"})
    return result
