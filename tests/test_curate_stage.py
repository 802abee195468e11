import json
import random
import textwrap

import pytest
from test_curate_fixtures import random_text, sample, vocabulary, write_generate_output

from alignlab.config import load_config
from alignlab.curate.funnel import empty_explanation, funnel_tables
from alignlab.curate.stage import curate
from alignlab.errors import AlignlabError, ConfigError
from alignlab.store import read_jsonl

CONFIG = """\
name: demo
taxonomy: taxonomy
curate:
  steps:
    - dedup: {{jaccard: 0.8}}
    - quality: {{threshold: {threshold}}}
    - decontaminate: {{eval_sets: [evals/extra.jsonl]}}
    - diversity: {{threshold: 0.9, embedder: hashed, dim: 256}}
    - style: {{keep_fraction: 0.9, surprisal: false, group_by: leaf_kind}}
"""


def generated_samples():
    rng = random.Random(0)
    vocab = vocabulary(rng)
    out = []
    for i in range(40):
        leaf, kind = (("knowledge/geo/kel", "knowledge") if i % 2 else
                      ("compositional_skills/writing/poems", "freeform_skill"))
        out.append(sample(f"s{i}", random_text(rng, vocab, 12), random_text(rng, vocab, 60) + ".",
                          leaf=leaf, kind=kind, quality=3.0 if i % 10 == 3 else 4.8))
    out.append(sample("dup", out[0].instruction, out[0].response, leaf=out[0].metadata["leaf"]))
    out.append(sample("contaminated", "Name the longest river that flows across the whole island of Kelmarra "
                                      "from north to south please.", "The Velm.", leaf="knowledge/geo/kel",
                      kind="knowledge"))
    out.append(sample("chunk", "Read this document.", random_text(rng, vocab, 200), leaf="knowledge/geo/kel",
                      kind="knowledge", generator="knowledge_chunk", unmask=True, quality=None))
    return out


def workspace(tmp_path, threshold=4.5):
    (tmp_path / "evals").mkdir(exist_ok=True)
    (tmp_path / "evals/extra.jsonl").write_text(json.dumps(
        {"question": "What is the longest river that flows across the whole island of Kelmarra from north "
                     "to south?", "choices": ["Velm", "Tarn"], "answer": 0}) + "\n")
    (tmp_path / "alignlab.yaml").write_text(CONFIG.format(threshold=threshold))
    cfg = load_config(tmp_path / "alignlab.yaml")
    return cfg


def test_curate_runs_end_to_end_and_is_skipped_on_a_second_call(tmp_path):
    cfg = workspace(tmp_path)
    samples = generated_samples()
    write_generate_output(cfg, samples)
    manifest = curate(cfg)
    out_dir = tmp_path / "runs/demo/curate"
    kept = list(read_jsonl(out_dir / "samples.jsonl"))
    rejects = list(read_jsonl(out_dir / "rejects.jsonl"))
    counts = json.loads((out_dir / "counts.json").read_text())
    assert len(kept) + len(rejects) == len(samples) == counts["in"]
    assert counts["out"] == len(kept) == manifest["counts"]["out"]
    by_id = {r["id"]: r for r in rejects}
    assert by_id["dup"]["stage"] == "dedup" and by_id["dup"]["reason"] == "duplicate"
    assert by_id["contaminated"]["stage"] == "decontaminate" and by_id["contaminated"]["reason"] == "contaminated"
    assert {by_id[f"s{i}"]["reason"] for i in (3, 13, 23, 33)} == {"low_quality"}
    assert any(r["id"] == "chunk" for r in kept)  # chunks are exempt from quality, diversity, style
    steps = counts["steps"]
    assert [s["step"] for s in steps] == ["dedup", "quality", "decontaminate", "diversity", "style"]
    for prev, step in zip(steps, steps[1:]):
        assert step["in"] == prev["out"]
    for step in steps:
        assert step["in"] - step["rejected"] == step["out"]
    assert sum(c["out"] for c in counts["by_leaf"].values()) == len(kept)
    assert funnel_tables(counts) and empty_explanation(counts) is None

    mtime = (out_dir / "samples.jsonl").stat().st_mtime_ns
    again = curate(cfg)
    assert again["fingerprint"] == manifest["fingerprint"]
    assert again["timings"] == manifest["timings"]  # the stage did not run again
    assert (out_dir / "samples.jsonl").stat().st_mtime_ns == mtime
    assert curate(cfg, force=True)["timings"] != manifest["timings"]


def test_a_forced_run_that_fails_leaves_the_stage_unfinished(tmp_path, monkeypatch):
    """--force drops the manifest before the work starts, as changed inputs do: a forced run
    that crashes leaves curate "not finished" for mix, not the old manifest over new files."""
    import alignlab.curate.stage as stage
    from alignlab.stage import finished_stage

    cfg = workspace(tmp_path)
    write_generate_output(cfg, generated_samples())
    curate(cfg)
    assert finished_stage(cfg, "curate").manifest() is not None

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "run_steps", crash)
    with pytest.raises(KeyboardInterrupt):
        curate(cfg, force=True)
    with pytest.raises(AlignlabError, match="'curate' has not finished"):
        finished_stage(cfg, "curate")


def test_changed_settings_or_inputs_rerun_the_stage(tmp_path):
    cfg = workspace(tmp_path)
    write_generate_output(cfg, generated_samples())
    first = curate(cfg)
    stricter = workspace(tmp_path, threshold=4.9)
    second = curate(stricter)
    assert second["fingerprint"] != first["fingerprint"]
    assert second["counts"]["out"] < first["counts"]["out"]
    (tmp_path / "evals/extra.jsonl").write_text('{"question": "another question", "choices": [], "answer": 0}\n')
    assert curate(stricter)["fingerprint"] != second["fingerprint"]


def test_an_empty_result_is_explained_not_a_crash(tmp_path):
    cfg = workspace(tmp_path, threshold=5.0)
    write_generate_output(cfg, [s for s in generated_samples() if not s.unmask])
    counts = curate(cfg)["counts"]
    assert counts["out"] == 0
    explanation = empty_explanation(counts)
    assert "quality removed 40 (low_quality 40)" in explanation and "decontaminate removed 1" in explanation
    assert (tmp_path / "runs/demo/curate/samples.jsonl").read_text() == ""


def test_mix_after_an_empty_curate_stops_with_curates_error(tmp_path):
    from rich.console import Console

    from alignlab.mix.stage import mix
    from alignlab.stage_summaries import say_curate

    cfg = workspace(tmp_path, threshold=5.0)
    write_generate_output(cfg, [s for s in generated_samples() if not s.unmask])
    manifest = curate(cfg)
    with pytest.raises(AlignlabError) as said_by_curate:
        say_curate(Console(file=open("/dev/null", "w")), cfg, manifest)
    with pytest.raises(AlignlabError) as said_by_mix:
        mix(cfg)
    assert str(said_by_mix.value) == str(said_by_curate.value)
    assert str(said_by_mix.value).startswith("curate: no samples left of 42: ")
    assert "loosen the step that removed most" in str(said_by_mix.value)
    assert not (tmp_path / "runs/demo/mix").exists()  # no empty phases for training to fail on


def test_curate_needs_a_finished_generate_stage(tmp_path):
    cfg = workspace(tmp_path)
    with pytest.raises(AlignlabError, match="stage 'generate' has not finished"):
        curate(cfg)


@pytest.mark.parametrize("steps, line, message", [
    ("    - dedup: {}\n    - dedupe: {jaccard: 0.8}\n", 5, "not a step"),
    ("    - dedup:\n        jaccrd: 0.8\n", 5, "unknown key 'jaccrd'"),
    ("    - quality: {threshold: 4}\n    - diversity: {embedder: magic}\n", 5, "embedder"),
    ("    - dedup: {}\n      quality: {}\n", 4, "one single-key mapping"),
])
def test_config_errors_point_at_their_line(tmp_path, steps, line, message):
    (tmp_path / "alignlab.yaml").write_text("name: x\ncurate:\n  steps:\n" + steps)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "alignlab.yaml")
    assert f"alignlab.yaml:{line}:" in str(err.value) and message in str(err.value)


def test_a_missing_eval_set_fails_before_any_work_with_its_line(tmp_path):
    (tmp_path / "alignlab.yaml").write_text(textwrap.dedent("""\
        name: x
        curate:
          steps:
            - dedup: {}
            - decontaminate:
                eval_sets:
                  - evals/there.jsonl
                  - evals/missing.jsonl
        """))
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals/there.jsonl").write_text('{"question": "q", "choices": [], "answer": 0}\n')
    cfg = load_config(tmp_path / "alignlab.yaml")
    write_generate_output(cfg, generated_samples())
    with pytest.raises(ConfigError, match=r"alignlab.yaml:8:\d+: eval set evals/missing.jsonl not found"):
        curate(cfg)
    assert not (tmp_path / "runs/x/curate/samples.jsonl").exists()


@pytest.mark.slow
def test_embedded_model_judges_revises_and_scores_surprisal(tmp_path):
    (tmp_path / "alignlab.yaml").write_text(textwrap.dedent("""\
        name: real
        curate:
          steps:
            - quality: {threshold: 1.0}
            - style: {keep_fraction: 0.67, group_by: all, min_group: 2}
            - critique_revise: {max_tokens: 24}
        """))
    cfg = load_config(tmp_path / "alignlab.yaml")
    write_generate_output(cfg, [
        sample("a", "What is the capital of France?", "Paris is the capital of France.", quality=None),
        sample("b", "Name a primary colour.", "Red is a primary colour.", quality=None),
        sample("c", "What do bees make?", "asdf qwer zxcv", quality=None)])
    counts = curate(cfg)["counts"]
    kept = list(read_jsonl(tmp_path / "runs/real/curate/samples.jsonl"))
    rejects = list(read_jsonl(tmp_path / "runs/real/curate/rejects.jsonl"))
    assert counts["steps"][1]["by_reason"] == {"style_outlier": 1} and len(kept) == 2
    for row in kept + [r["record"] for r in rejects]:
        judged = row["metadata"]["judges"]["quality"]
        assert 1.0 <= judged["score"] <= 5.0 and judged["method"] in ("prefix-logprobs", "text")
    for row in kept:
        assert "revised" in row["metadata"] or "unrevised" in row["metadata"]
