"""The HTML report: built from a constructed run directory (real record classes, real tallies and
forgetting rows), it must show every section, say what a partial run lacks, escape sample text,
and reference nothing outside itself. The browser check is in test_report_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from alignlab.curate.funnel import StepReport, funnel_counts
from alignlab.evaluate.forgetting import forgetting_rows
from alignlab.records import Pair, Sample
from alignlab.report import REPORT_NAME, render_html, write_report
from alignlab.report.load import load_run
from alignlab.store import RunDir, write_json, write_jsonl
from alignlab.tally import Tally

SECTIONS = ("overview", "taxonomy", "funnel", "judges", "mixes", "training", "evaluation", "pairs", "final")
STAGES = ("generate", "curate", "mix", "train", "eval", "pairs", "align", "eval-aligned")
LEAVES = {"knowledge/geography/kelmarra": "knowledge", "compositional_skills/writing/poems": "freeform_skill"}
INJECTED = "<script>alert(1)</script>"
TEACHER = "openai:http://127.0.0.1:9/v1#teacher"
CONFIG = {"name": "fake", "models": {"teacher": TEACHER, "judge": None, "student": "tiny-student"},
          "generate": {"thresholds": {"quality": 2.5, "faithfulness": 2.5}},
          "train": {"phases": [{"name": "knowledge"}, {"name": "skills"}]}}
T0 = 1_700_000_000.0


def _sample(leaf: str, i: int, score: float) -> Sample:
    judges = {"quality": {"score": score, "method": "prefix-logprobs", "model": TEACHER, "template": "abc"}}
    if LEAVES[leaf] == "knowledge":
        judges["faithfulness"] = {"score": score - 0.5, "method": "prefix-logprobs", "model": TEACHER, "template": "def"}
    return Sample(id=f"{leaf[-4:]}{i}", messages=[{"role": "user", "content": f"Question {i} about {leaf}?"},
                                                  {"role": "assistant", "content": f"Answer {i}."}],
                  metadata={"leaf": leaf, "leaf_kind": LEAVES[leaf], "generator": "fake", "judges": judges})


def _finish(run: RunDir, stage: str, counts: dict, step: float, extra: dict | None = None) -> None:
    stage_dir = run.stage(stage)
    write_json(stage_dir.file("config.json"), CONFIG)
    stage_dir.write_manifest(fingerprint=stage, inputs={}, config=CONFIG, counts=counts, started=T0 + 100 * step,
                             extra=extra)


def _generate(run: RunDir) -> list[Sample]:
    tally, samples = Tally("generate"), []
    for leaf in LEAVES:
        for i in range(4):
            samples.append(_sample(leaf, i, 3.0 + 0.4 * i))
            tally.keep(leaf)
        for i, reason in enumerate(("low_quality", "low_quality", "too_similar")):
            rejected = _sample(leaf, 10 + i, 1.2 + 0.4 * i)
            question = f"{INJECTED} rejected {i}" if i == 0 else f"Rejected question {i} of {leaf}"
            record = {"id": rejected.id, "context": None, "question": question, "answer": None, "raw": {},
                      "metadata": rejected.metadata}
            tally.reject(record, reason, leaf, detail={"score": 1.2 + 0.4 * i, "threshold": 2.5})
    stage = run.stage("generate")
    write_jsonl(stage.file("samples.jsonl"), samples)
    counts = tally.write(stage)
    _finish(run, "generate", {**counts, "candidates": len(samples) + tally.n_rejected, "samples": len(samples)}, 0)
    return samples


def _curate(run: RunDir, samples: list[Sample]) -> list[Sample]:
    report = StepReport("dedup", len(samples), Tally("curate"))
    survivors = []
    for i, s in enumerate(samples):
        if i % 4 == 3:
            report.tally.reject(s, "near_duplicate", s.metadata["leaf"], step="dedup", detail={"jaccard": 0.93})
        else:
            report.tally.keep(s.metadata["leaf"])
            survivors.append(s)
    stage = run.stage("curate")
    write_jsonl(stage.file("samples.jsonl"), survivors)
    write_jsonl(stage.file("rejects.jsonl"), report.tally.rejects)
    counts = funnel_counts(samples, survivors, [report])
    write_json(stage.file("counts.json"), counts)
    _finish(run, "curate", counts, 1)
    return survivors


def _mix(run: RunDir, samples: list[Sample]) -> None:
    knowledge = [s for s in samples if s.metadata["leaf_kind"] == "knowledge"]
    skills = [s for s in samples if s.metadata["leaf_kind"] != "knowledge"]
    stage = run.stage("mix")
    write_jsonl(stage.file("knowledge.jsonl"), knowledge)
    write_jsonl(stage.file("skills.jsonl"), skills + knowledge[:1])
    k_leaf, s_leaf = list(LEAVES)
    summary = {"seed": 0, "tokens_counted_by": "tokenizer of tiny-student", "warnings": [], "phases": {
        "knowledge": {"rows": len(knowledge), "tokens": 300, "unmask_rows": 0, "leaves": {k_leaf: len(knowledge)},
                      "sources": {"curated[leaf_kind=knowledge]": {"kind": "select", "available": len(knowledge),
                                                                   "asked": "ratio 1.0", "rows": len(knowledge),
                                                                   "tokens": 300}}},
        "skills": {"rows": len(skills) + 1, "tokens": 250, "unmask_rows": 0,
                   "leaves": {s_leaf: len(skills), k_leaf: 1},
                   "sources": {"curated[leaf_kind=freeform_skill]": {"kind": "select", "available": len(skills),
                                                                     "asked": "ratio 1.0", "rows": len(skills),
                                                                     "tokens": 200},
                               "replay:knowledge": {"kind": "phase", "available": len(knowledge),
                                                    "asked": "ratio 0.2", "rows": 1, "tokens": 50}}}}}
    write_json(stage.file("summary.json"), summary)
    _finish(run, "mix", summary, 2)


def _train(run: RunDir) -> None:
    stage, phases = run.stage("train"), []
    for p, name in enumerate(("knowledge", "skills")):
        metrics = [{"step": s, "epoch": s / 10, "loss": 3.0 - 0.2 * s + 0.1 * p,
                    "lr": 1e-4 * min(1, s / 2) * (1 - s / 12),
                    "grad_norm": 1.0, "tokens": 100, "real_tokens": 90, "padding": 0.1, "tokens_per_s": 500.0}
                   for s in range(1, 11)]
        scores = {"checkpoint-5": 0.30 + p, "checkpoint-10": 0.35 + p}
        phase = {"phase": name, "start": "tiny-student", "epochs": 1, "method": "full",
                 "samples": {"total": 6, "validation": 1, "trained": 5}, "skipped": {}, "steps": 10,
                 "total_steps": 10, "last_loss": metrics[-1]["loss"], "select_by": "knowledge_mcq",
                 "scores": scores, "lower_is_better": False, "selected": "checkpoint-10", "finished": True}
        write_jsonl(stage.path / name / "metrics.jsonl", metrics)
        write_json(stage.path / name / "phase.json", phase)
        write_json(stage.path / name / "scores.json", scores)
        phases.append(phase)
    _finish(run, "train", {"phases": 2, "selected": {p["phase"]: p["selected"] for p in phases}}, 3,
            extra={"phases": phases})


def _result(label: str, quality: float, acc: float) -> dict:
    k_leaf, s_leaf = list(LEAVES)
    mcq = {"n": 20, "failed": 0, "acc": acc, "acc_norm": acc, "chance": 0.25}
    return {"label": label, "model": f"models/{label}",
            "mcq": {"headline": "acc", "overall": mcq, "by_leaf": {k_leaf: mcq}},
            "general": {"headline": "acc", "overall": {**mcq, "acc": 0.3}, "by_leaf": {"general": {**mcq, "acc": 0.3}}},
            "judged": {"scale": [1, 5], "overall": {"n": 2, "unscored": 0, "mean_score": quality},
                       "by_leaf": {s_leaf: {"n": 2, "unscored": 0, "mean_score": quality}}}}


def _progression(run: RunDir, labels: list[tuple[str, float, float]], name: str, step: int) -> None:
    results = {label: _result(label, q, a) for label, q, a in labels}
    for i, label in enumerate(results):
        stage = run.stage(f"eval/{label}")
        write_json(stage.file("results.json"), results[label])
        _finish(run, f"eval/{label}", {"mcq": 20}, step + i / 10)
    names = list(results)
    comparison = {"a": {"label": names[-1]}, "b": {"label": names[-2]}, "judge": TEACHER, "tie_band": 0.1,
                  "overall": {"n": 2, "unparseable": 0, "win_rate": 0.75, "wins": 1, "ties": 1, "losses": 0},
                  "by_leaf": {list(LEAVES)[1]: {"n": 2, "unparseable": 0, "win_rate": 0.75, "wins": 1, "ties": 1,
                                                "losses": 0}}}
    write_json(run.path / "eval" / f"{name}.json", {
        "models": {label: f"models/{label}" for label in names}, "results": results,
        "forgetting": {f"{a}->{b}": forgetting_rows(results[a], results[b]) for a, b in zip(names, names[1:])},
        "comparisons": [comparison]})


def _pairs(run: RunDir) -> None:
    stage = run.stage("pairs")
    pairs = [Pair(id=f"p{i}", prompt=[{"role": "user", "content": f"Prompt {i}"}],
                  chosen=[{"role": "assistant", "content": f"good answer {i}"}],
                  rejected=[{"role": "assistant", "content": f"bad answer {i}"}],
                  metadata={"leaf": list(LEAVES)[i % 2], "difficulty": 0.5 if i < 4 else 1.0, "gap": 2 if i < 4 else 1,
                            "chosen_model": "sft", "rejected_model": "base"}) for i in range(6)]
    write_jsonl(stage.file("pairs.jsonl"), pairs[:5])
    write_jsonl(stage.file("heldout_pairs.jsonl"), pairs[5:])
    agreement = {"0>1": {"chosen_model": "sft@1", "rejected_model": "base@2", "pairs": 6, "agree": 4, "disagree": 1,
                         "dropped": 1, "unreadable": 0, "agreement": 0.667, "mean_p_chosen": 0.6}}
    write_json(stage.file("agreement.json"), agreement)
    counts = {"prompts": 6, "ladder": ["sft", "base"], "pairs": 5, "heldout_pairs": 1, "rejected": 1,
              "by_reason": {"identical_answers": 1}, "by_difficulty": {"0.5": 4, "1.0": 1}}
    write_json(stage.file("counts.json"), counts)
    rungs = [{"rung": 0, "model": "sft", "prompts": 2, "scored": 2, "quality": 3.25, "quality_low": 2.5,
              "quality_high": 4.0, "degenerate": 0}]
    _finish(run, "pairs", counts, 6, extra={"rungs": rungs})


def _align(run: RunDir, kto: bool = False) -> None:
    stage = run.stage("align")
    last = {"kl": 0.3} if kto else {"rewards/accuracy": 0.2, "difficulty": 0.5}
    write_jsonl(stage.file("metrics.jsonl"), [
        {"step": s, "loss": 0.69 - 0.02 * s, "rewards/chosen": 0.01 * s, "rewards/rejected": -0.01 * s,
         "rewards/margin": 0.02 * s, **{k: v * s for k, v in last.items()}, "lr": 5e-6} for s in range(1, 6)])
    write_json(stage.file("scores.json"), {"checkpoint-5": 0.8})
    data = ({"desirable": 12, "undesirable": 4, "unpaired_from": "judged", "loss": "kto", "order": "stratified"} if kto
            else {"pairs": 5, "loss": "dpo", "order": "easy_to_hard"})
    _finish(run, "align", {**data, "steps": 5, "selected": "checkpoint-5",
                           "heldout_reward_accuracy": 0.8, "heldout_reward_accuracy_before": 0.4}, 7)


def build_run(root: Path, until: str = "eval-aligned") -> Path:
    """A run directory as the pipeline leaves it after stage `until`."""
    run = RunDir(root / "runs" / "fake")
    done = STAGES[: STAGES.index(until) + 1]
    samples = _generate(run)
    if "curate" in done:
        samples = _curate(run, samples)
    if "mix" in done:
        _mix(run, samples)
    if "train" in done:
        _train(run)
    if "eval" in done:
        _progression(run, [("base", 2.0, 0.25), ("knowledge", 2.5, 0.4), ("skills", 3.0, 0.35)], "sft", 4)
    if "pairs" in done:
        _pairs(run)
    if "align" in done:
        _align(run)
    if "eval-aligned" in done:
        _progression(run, [("base", 2.0, 0.25), ("skills", 3.0, 0.35), ("aligned", 3.4, 0.35)], "aligned", 8)
    return run.path


# ---------------------------------------------------------------- parsing the page

class Page(HTMLParser):
    """Every tag with its attributes, the text of <style> blocks and of <section>s by id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self.section_text: dict[str, str] = {}
        self._in_style = False
        self._section: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        self._in_style = tag == "style"
        if tag == "section":
            self._section = attributes.get("id")
            self.section_text[self._section] = ""

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
        elif self._section:
            self.section_text[self._section] += data


def external_references(html: str) -> list[str]:
    """Everything in the page that would make a browser look outside it."""
    page, found = Page(html), []
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "data", "action", "background"):
            value = attrs.get(name)
            if value is not None and not (value.startswith("data:") or value.startswith("#")):
                found.append(f"<{tag} {name}={value[:80]!r}>")
        if tag == "link":  # a stylesheet, icon, font or preload: the page needs none
            found.append(f"<link {attrs}>")
        for css in [attrs.get("style", "")]:
            found += [f"style url {u}" for u in re.findall(r"url\(\s*['\"]?(?!data:|#)([^)'\"]+)", css)]
    for css in page.styles:
        found += [f"CSS url({u})" for u in re.findall(r"url\(\s*['\"]?(?!data:|#)([^)'\"]+)", css)]
        found += [f"CSS @import {m}" for m in re.findall(r"@import\s+([^;]+)", css)]
    return found


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    run = build_run(tmp_path_factory.mktemp("report"))
    write_report(run)
    return run


# ---------------------------------------------------------------- tests

def test_full_run_has_every_section_with_content(full_run):
    html = (full_run / REPORT_NAME).read_text()
    page = Page(html)
    assert [a["id"] for t, a in page.tags if t == "section"] == list(SECTIONS)
    toc = [a["href"] for t, a in page.tags if t == "a"]
    assert toc[: len(SECTIONS)] == [f"#{s}" for s in SECTIONS]
    assert 'class="note"' not in html and 'class="warn"' not in html, "a full run leaves no section empty"
    images = [a for t, a in page.tags if t == "img"]
    # funnel, judges, mix, two training phases, difficulty, align curves, final comparison
    assert len(images) == 8
    assert all(a["src"].startswith("data:image/png;base64,") and a["alt"] for a in images)
    text = page.section_text
    assert "fake" in text["overview"] and TEACHER in text["overview"] and "(the teacher)" in text["overview"]
    assert "knowledge/geography/" in text["taxonomy"] and "freeform_skill" in text["taxonomy"]
    assert "low_quality" in text["funnel"] and "near_duplicate" in text["funnel"] and "too_similar" in text["funnel"]
    assert "faithfulness" in text["judges"] and "quality" in text["judges"]
    assert "replay:knowledge" in text["mixes"]
    assert "checkpoint-10" in text["training"] and "✓ selected" in text["training"]
    assert "base → knowledge" in text["evaluation"] and "knowledge → skills" in text["evaluation"]
    assert "0>1" in text["pairs"] and "66.7%" in text["pairs"] and "easy_to_hard" in text["pairs"]
    assert "3.25" in text["pairs"] and "2.50 to 4.00" in text["pairs"]  # the rung's measured quality
    assert "aligned" in text["final"] and "75.0%" in text["final"]


def test_gains_and_losses_are_coloured(full_run):
    html = (full_run / REPORT_NAME).read_text()
    evaluation = html[html.index('id="evaluation"'):html.index('id="pairs"')]
    # base -> knowledge: mcq 0.25 -> 0.40 (gain); knowledge -> skills: mcq 0.40 -> 0.35 (loss)
    assert '<td class="num gain">+0.150</td>' in evaluation
    assert '<td class="num loss">-0.050</td>' in evaluation
    assert '<td class="num">+0.000</td>' in evaluation  # general acc unchanged: no colour


def test_report_references_nothing_outside_itself(full_run):
    html = (full_run / REPORT_NAME).read_text()
    assert external_references(html) == []
    assert "<script" not in html.lower().replace("&lt;script", "")
    # the checker itself finds what it looks for
    bad = ('<link rel="stylesheet" href="https://cdn.example/x.css"><img src="plot.png">'
           '<script src="x.js"></script><style>body{background:url(http://x/y.png)}@import "z.css";</style>')
    assert len(external_references(bad)) == 6


def test_sample_text_is_escaped(full_run):
    html = (full_run / REPORT_NAME).read_text()
    assert INJECTED not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not [t for t, _ in Page(html).tags if t == "script"]


def test_partial_run_after_generate_still_renders(tmp_path):
    run = build_run(tmp_path, until="generate")
    html = write_report(run).read_text()
    page = Page(html)
    assert [a["id"] for t, a in page.tags if t == "section"] == list(SECTIONS)
    text = page.section_text
    for section, stage in (("mixes", "mix"), ("training", "train"), ("evaluation", "eval"), ("pairs", "pairs"),
                           ("final", "eval-aligned")):
        assert f"The {stage} stage has not finished" in text[section], section
    assert "The curate stage has not finished" in text["taxonomy"]
    assert "low_quality" in text["funnel"] and "faithfulness" in text["judges"]
    assert "not run" in text["overview"]
    assert external_references(html) == []


def test_partial_run_after_eval_shows_sft_progression(tmp_path):
    html = write_report(build_run(tmp_path, until="eval")).read_text()
    text = Page(html).section_text
    assert "base → knowledge" in text["evaluation"]
    assert "The pairs stage has not finished" in text["pairs"]
    assert "not been evaluated yet" in text["final"] and "skills" in text["final"]


def test_broken_file_becomes_a_warning_not_a_crash(tmp_path):
    run = build_run(tmp_path, until="mix")
    (run / "mix" / "summary.json").write_text('{"phases": ')
    with open(run / "generate" / "rejects.jsonl", "a") as f:
        f.write("not json\n")
    html = write_report(run).read_text()
    assert "mix/summary.json:1: not valid JSON" in html
    assert re.search(r"generate/rejects.jsonl:\d+: not valid JSON", html)
    assert "The mix stage has not finished" not in html  # the stage finished; its file is what is broken
    assert "The outputs of the mix stage could not be read: mix/summary.json:1" in html
    assert 'class="warn"' in html


def test_output_is_deterministic_apart_from_the_time(full_run):
    run = load_run(full_run)
    first = render_html(run, datetime(2030, 1, 1, tzinfo=UTC))
    second = render_html(load_run(full_run), datetime(2030, 1, 1, tzinfo=UTC))
    assert first == second
    assert "generated 2030-01-01 00:00 UTC" in first


def test_missing_run_directory_is_a_clear_error(tmp_path):
    from alignlab.errors import AlignlabError

    with pytest.raises(AlignlabError, match="no such run directory"):
        write_report(tmp_path / "nope")


def test_kto_alignment_shows_its_answers_and_reward_curves(tmp_path):
    run = build_run(tmp_path, until="pairs")
    _align(RunDir(run), kto=True)
    write_report(run)
    page = Page((run / REPORT_NAME).read_text())
    section = next(k for k, v in page.section_text.items() if "Alignment" in v)
    assert "12 desirable + 4 undesirable answers (judged)" in page.section_text[section]
    html = (run / REPORT_NAME).read_text()
    alignment = html[html.index("Alignment"):]
    assert 'alt="Alignment loss, rewards' in alignment  # the reward curves are plotted, as for DPO
