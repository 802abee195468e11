"""`alignlab generate`: accounting, judging, resume, engines and bad input, on a scripted teacher."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from alignlab.config import load_config
from alignlab.curate.stage import curate
from alignlab.stage import finished_stage
from alignlab.stage_summaries import say_curate
from alignlab.errors import AlignlabError
from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.scripted import ScriptedBackend
from alignlab.llm.types import Choice, TokenLogprob
from alignlab.sdg.judges import read_score
from alignlab.sdg.stage import generate, print_summary
from alignlab.store import read_jsonl

EXAMPLES = Path(__file__).parent.parent / "examples" / "taxonomy"
JUDGES = ("faithfulness", "relevance", "standalone", "question", "quality")


def score_choice(score: int) -> Choice:
    """A judge reply whose score-token distribution centres on `score`."""
    probs = {score: 0.7, max(1, score - 1): 0.2, min(5, score + 1): 0.1}
    top = sorted(((f" {s}", math.log(p)) for s, p in probs.items()), key=lambda t: -t[1])
    return Choice(f" {score}", logprobs=[TokenLogprob(f" {score}", top[0][1], top)], completion_tokens=1)


class ScriptedTeacher(ScriptedBackend):
    """The scripted teacher and judge, with some unparseable replies, optionally interrupted
    (as Ctrl-C would) once it has answered `interrupt_after` requests."""

    def __init__(self, interrupt_after: int | None = None):
        super().__init__("scripted-teacher", unparseable_every=9)
        self.interrupt_after = interrupt_after

    def generate(self, requests, on_done=None):
        out = []
        for i, request in enumerate(requests):
            if self.interrupt_after is not None and len(self.seen) >= self.interrupt_after:
                raise KeyboardInterrupt
            out += super().generate([request], on_done and (lambda _, r, i=i: on_done(i, r)))
        return out


def workspace(tmp_path: Path, sections: dict | None = None, **generate_settings) -> Path:
    """The examples taxonomy with a small generate budget; `sections` adds other config sections."""
    shutil.copytree(EXAMPLES, tmp_path / "taxonomy")
    settings = {"samples_per_seed": 2, "qa_per_chunk": 2, "chunk_tokens": 200, "magpie": {"enabled": False},
                "thresholds": dict.fromkeys(JUDGES, 2.5), **generate_settings}
    config = {"name": "t", "taxonomy": "taxonomy", "generate": settings, **(sections or {})}
    (tmp_path / "alignlab.yaml").write_text(json.dumps(config))
    return tmp_path / "alignlab.yaml"


def run(config: Path, teacher: ScriptedTeacher, cache: Path | None = None, **kwargs):
    cfg = load_config(config)
    cached = CachedBackend(teacher, RequestCache(cache or cfg.cache_path))
    return generate(cfg, models=(cached, cached), console=Console(file=open("/dev/null", "w")), **kwargs), cfg


def test_accounting_sums_to_candidates_for_every_generator(tmp_path):
    manifest, cfg = run(workspace(tmp_path), ScriptedTeacher())
    out = cfg.run_dir.path / "generate"
    samples = list(read_jsonl(out / "samples.jsonl"))
    rejects = list(read_jsonl(out / "rejects.jsonl"))
    counts = manifest["counts"]
    given = [s for s in samples if s["metadata"]["generator"] in ("knowledge_chunk", "knowledge_seed")]
    generated = [s for s in samples if s not in given]
    assert sum(s["metadata"]["generator"] == "knowledge_seed" for s in given) == counts["seed_samples"] == 15
    assert len(generated) + len(rejects) == counts["candidates"]
    by_generator: dict[str, list[int]] = {}
    for row in generated:
        by_generator.setdefault(row["metadata"]["generator"], [0, 0])[0] += 1
    for row in rejects:
        by_generator.setdefault(row["record"]["metadata"]["generator"], [0, 0])[1] += 1
    # knowledge: chunks x 2; freeform and grounded: 6 seeds x 2 each
    n_chunks = sum(1 for s in samples if s["metadata"]["generator"] == "knowledge_chunk")
    assert n_chunks >= 3
    assert sum(by_generator["knowledge_qa"]) == 2 * n_chunks
    assert sum(by_generator["freeform"]) == 12 and sum(by_generator["grounded"]) == 12
    assert all(kept > 0 and rejected > 0 for kept, rejected in by_generator.values())
    reasons = {r["reason"] for r in rejects}
    assert "unparseable" in reasons and any(r.startswith("low_") for r in reasons)
    unparseable = next(r for r in rejects if r["reason"] == "unparseable")
    assert unparseable["detail"]["raw"] == "?" and "raw" in unparseable["record"]
    for row in generated:  # full lineage on every accepted sample
        meta = row["metadata"]
        assert {"leaf", "leaf_kind", "generator", "templates", "teacher", "judges"} <= set(meta)
        assert all(len(h) == 12 for h in meta["templates"].values())
        expected_judges = {"knowledge_qa": {"standalone", "faithfulness", "relevance"}}.get(
            meta["generator"], {"question", "quality"})
        assert set(meta["judges"]) == expected_judges
        assert all(j["score"] >= 2.5 and j["method"] == "prefix-logprobs" for j in meta["judges"].values())
    chunk = next(s for s in samples if s["metadata"]["generator"] == "knowledge_chunk")
    assert chunk["unmask"] is True
    assert sum(c["kept"] for c in counts["by_leaf"].values()) == len(samples)


def test_judge_reads_the_expected_score_from_logprobs():
    verdict = read_score(score_choice(4), (1, 5))
    assert verdict.method == "prefix-logprobs"
    assert verdict.score == pytest.approx(4 * 0.7 + 3 * 0.2 + 5 * 0.1)
    text_only = read_score(Choice("I would say 2 out of 5"), (1, 5))
    assert (text_only.score, text_only.method) == (2.0, "text")
    assert read_score(Choice("no idea"), (1, 5)).method == "unparseable"


def test_resume_after_interruption_is_byte_identical_and_asks_nothing_twice(tmp_path):
    reference_teacher = ScriptedTeacher()
    _, ref_cfg = run(workspace(tmp_path / "a"), reference_teacher)
    reference = (ref_cfg.run_dir.path / "generate" / "samples.jsonl").read_bytes()

    config = workspace(tmp_path / "b")
    first = ScriptedTeacher(interrupt_after=len(reference_teacher.seen) // 2)
    with pytest.raises(KeyboardInterrupt):
        run(config, first)
    assert not (tmp_path / "b" / "runs" / "t" / "generate" / "samples.jsonl").exists()
    second = ScriptedTeacher()
    _, cfg = run(config, second)
    assert (cfg.run_dir.path / "generate" / "samples.jsonl").read_bytes() == reference
    assert not set(first.seen) & set(second.seen)  # nothing answered before was asked again
    assert len(first.seen) + len(second.seen) == len(reference_teacher.seen)
    # a third run with nothing changed is skipped outright
    third = ScriptedTeacher()
    manifest, _ = run(config, third)
    assert third.seen == [] and manifest["counts"]["samples"] > 0


def test_all_rejected_leaf_gives_a_clear_summary_and_valid_empty_output(tmp_path, capsys):
    config = workspace(tmp_path, thresholds={"question": 5.0, "quality": 5.0})
    cfg = load_config(config)
    cached = CachedBackend(ScriptedTeacher(), RequestCache(tmp_path / "c.sqlite"))
    console = Console(record=True, width=200)
    manifest = generate(cfg, leaf_pattern="compositional_skills/*", models=(cached, cached), console=console)
    print_summary(console, cfg, manifest)
    out = cfg.run_dir.path / "generate"
    assert (out / "samples.jsonl").read_text() == ""
    assert manifest["counts"]["samples"] == 0 and manifest["counts"]["rejected"] == 24
    text = console.export_text()
    assert "compositional_skills/writing/product_descriptions: every candidate was rejected" in text
    assert "low_question" in text
    # a --leaf run says its outputs hold those leaves alone, there and again under curate
    assert "generate ran on --leaf 'compositional_skills/*' alone: its outputs hold those 2 leaves" in text
    curate(cfg)
    console = Console(record=True, width=300)
    say_curate(console, cfg, finished_stage(cfg, "curate").manifest())
    assert "generate ran on --leaf 'compositional_skills/*' alone" in console.export_text()


def test_invalid_taxonomy_stops_before_any_teacher_call(tmp_path):
    config = workspace(tmp_path)
    qna = next((tmp_path / "taxonomy" / "compositional_skills").rglob("qna.yaml"))
    qna.write_text(qna.read_text().replace("task_description:", "task_descriptionn:"))
    teacher = ScriptedTeacher()
    with pytest.raises(AlignlabError, match=r"qna.yaml:\d+:\d+"):
        run(config, teacher)
    assert teacher.seen == []


def test_a_broken_leaf_elsewhere_does_not_block_a_leaf_filter(tmp_path):
    """`--leaf` needs only the leaves it selects to be valid; the others' errors are one warning."""
    config = workspace(tmp_path)
    broken = tmp_path / "taxonomy" / "compositional_skills" / "writing" / "product_descriptions" / "qna.yaml"
    broken.write_text(broken.read_text().replace("task_description:", "task_descriptionn:"))
    cfg = load_config(config)
    teacher = ScriptedTeacher()
    cached = CachedBackend(teacher, RequestCache(cfg.cache_path))
    console = Console(record=True, width=80)
    manifest = generate(cfg, leaf_pattern="knowledge/*", models=(cached, cached), console=console)
    assert set(manifest["counts"]["by_leaf"]) == {"knowledge/geography/islands/kelmarra"}
    text = console.export_text()
    assert ("warning: 2 errors in 1 other leaf (compositional_skills/writing/product_descriptions); "
            "--leaf 'knowledge/*' does not need them") in text
    with pytest.raises(AlignlabError, match=r"product_descriptions/qna.yaml:\d+:\d+"):
        generate(cfg, leaf_pattern="compositional_skills/*", models=(cached, cached), console=console)


def test_ray_engine_gives_the_same_records_as_the_local_engine(tmp_path, tiny_model_dir):
    pytest.importorskip("ray")
    ids = {}
    for engine in ("local", "ray"):
        config = workspace(tmp_path / engine, engine=engine, samples_per_seed=1, qa_per_chunk=1,
                           max_new_tokens=12, max_question_tokens=12, ray_shard_chunks=2,
                           thresholds=dict.fromkeys(JUDGES, 1.0))
        text = json.loads(config.read_text())
        text["models"] = {"teacher": str(tiny_model_dir)}
        config.write_text(json.dumps(text))
        cfg = load_config(config)
        generate(cfg, console=Console(file=open("/dev/null", "w")))
        out = cfg.run_dir.path / "generate"
        ids[engine] = ([r["id"] for r in read_jsonl(out / "samples.jsonl")],
                       sorted((r["id"], r["reason"]) for r in read_jsonl(out / "rejects.jsonl")))
    assert ids["local"] == ids["ray"]
    assert len(ids["local"][0]) + len(ids["local"][1]) > 10


def test_the_stage_table_entry_takes_the_leaf_glob_and_ready_backends(tmp_path):
    """What `alignlab generate --leaf` and a test pass reach the stage through its table entry:
    the teacher named in the config is unreachable, so every request went to the given one."""
    from alignlab.pipeline import StageContext, run_stage

    teacher = "openai:http://127.0.0.1:9/v1#nowhere"
    cfg = load_config(workspace(tmp_path, {"models": {"teacher": teacher, "judge": teacher}}))
    scripted = ScriptedTeacher()
    ctx = StageContext(console=Console(file=open("/dev/null", "w")), leaf_pattern="compositional_skills/*",
                       backends={teacher: scripted})
    manifest = run_stage(cfg, "generate", ctx).manifest
    assert scripted.seen and set(manifest["counts"]["by_leaf"]) == {
        "compositional_skills/writing/product_descriptions", "compositional_skills/reading/fact_extraction"}


def test_a_generate_stopped_midway_leaves_no_finished_manifest_for_curate_to_trust(tmp_path):
    config = workspace(tmp_path)
    run(config, ScriptedTeacher())
    changed = json.loads(config.read_text())
    changed["generate"]["samples_per_seed"] = 3  # other settings: generate must run again
    config.write_text(json.dumps(changed))
    with pytest.raises(KeyboardInterrupt):
        run(config, ScriptedTeacher(interrupt_after=5))
    cfg = load_config(config)
    assert (cfg.run_dir.path / "generate" / "samples.jsonl").is_file()  # the last outputs stay...
    with pytest.raises(AlignlabError, match="stage 'generate' has not finished"):
        curate(cfg)  # ...but are not handed on as the outputs of these settings


class CutOffAnswers(ScriptedTeacher):
    """Every reply written at the answer's budget stops at max_tokens, as a teacher that runs on."""

    def generate(self, requests, on_done=None):
        responses = super().generate(requests, on_done)
        for request, response in zip(requests, responses):
            if request.params.max_tokens == ANSWER_TOKENS:
                for choice in response.choices:
                    choice.finish_reason = "length"
        return responses


ANSWER_TOKENS = 150  # generate.max_new_tokens below: no question or verdict asks for this many


def test_an_answer_cut_off_at_max_tokens_is_rejected_as_truncated_with_the_setting_to_raise(tmp_path):
    config = workspace(tmp_path, max_new_tokens=ANSWER_TOKENS)
    whole, _ = run(config, ScriptedTeacher())
    cut, cfg = run(workspace(tmp_path / "cut", max_new_tokens=ANSWER_TOKENS), CutOffAnswers())
    counts = cut["counts"]
    generated = counts["samples"] - counts["chunk_samples"] - counts["seed_samples"]
    assert whole["counts"]["samples"] > whole["counts"]["chunk_samples"] + whole["counts"]["seed_samples"]
    assert generated == 0  # no answer that was cut off became a sample
    rejects = [r for r in read_jsonl(cfg.run_dir.path / "generate" / "rejects.jsonl") if r["reason"] == "truncated"]
    assert rejects and all(r["detail"]["max_tokens"] == ANSWER_TOKENS and r["record"]["raw"]["answer"]
                           for r in rejects)
    console = Console(record=True, width=300)
    print_summary(console, cfg, cut)
    assert "generate.max_new_tokens" in console.export_text()


def test_every_generator_records_its_prompts_as_12_character_hashes(tmp_path, tiny_model_dir):
    config = workspace(tmp_path, samples_per_seed=1, max_new_tokens=8, max_question_tokens=8,
                       magpie={"enabled": True, "count": 2})
    settings = json.loads(config.read_text())
    settings["models"] = {"teacher": str(tiny_model_dir)}  # MAGPIE needs a local teacher's template
    config.write_text(json.dumps(settings))
    cfg = load_config(config)
    generate(cfg, leaf_pattern="compositional_skills/writing/*", console=Console(file=open("/dev/null", "w")))
    out = cfg.run_dir.path / "generate"
    rows = [s["metadata"] for s in read_jsonl(out / "samples.jsonl")]
    rows += [r["record"]["metadata"] for r in read_jsonl(out / "rejects.jsonl")]
    assert {m["generator"] for m in rows} >= {"magpie", "freeform"}
    for m in rows:
        assert m["templates"] and all(len(h) == 12 and int(h, 16) >= 0 for h in m["templates"].values()), m
