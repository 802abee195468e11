"""`alignlab eval` on the tiny model in a small workspace: results per model and leaf, re-runs
read back, comparison and lm-eval export written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignlab.cli import app
from alignlab.config import load_config
from alignlab.errors import ConfigError
from alignlab.evaluate.selection import checkpoint_metrics
from alignlab.store import read_json

KNOWLEDGE = "knowledge/geography/kelmarra"
SKILL = "compositional_skills/writing/haiku"


@pytest.fixture
def workspace(tmp_path, tiny_model_dir):
    leaf = tmp_path / "taxonomy" / KNOWLEDGE
    leaf.mkdir(parents=True)
    questions = [("What is the capital of Kelmarra?", ["Druvik", "Port Halvenna", "Gethwick"], 1),
                 ("Which sea surrounds Kelmarra?", ["The Brindic Sea", "The Tamsel Sea", "The Hollin Sea"], 0),
                 ("What is the currency of Kelmarra?", ["The quint", "The crown", "The tessel"], 2)]
    (leaf / "heldout_mcq.jsonl").write_text("".join(
        json.dumps({"id": f"k{n}", "question": q, "choices": c, "answer": a}) + "\n"
        for n, (q, c, a) in enumerate(questions)))
    skill = tmp_path / "taxonomy" / SKILL
    skill.mkdir(parents=True)
    (skill / "qna.yaml").write_text(
        "version: 2\ntask_description: haiku\ncreated_by: me\nseed_examples:\n"
        + "".join(f"  - question: Write a haiku about {t}.\n    answer: A haiku.\n"
                  for t in ("rain", "snow", "tea", "ink", "moss")))
    (tmp_path / "general.jsonl").write_text(
        json.dumps({"id": "g1", "question": "What is 2 plus 2?", "choices": ["4", "5"], "answer": 0}) + "\n")
    (tmp_path / "alignlab.yaml").write_text(
        f"name: t\nmodels:\n  teacher: {tiny_model_dir}\n  judge: {tiny_model_dir}\n"
        "eval:\n  general_mcq: general.jsonl\n  selection_share: 0\n"
        "  judged:\n    max_tokens: 6\n    max_prompts_per_leaf: 2\n")
    return tmp_path


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_eval_writes_results_per_model_and_leaf_and_reuses_them(workspace, tiny_model_dir):
    config = str(workspace / "alignlab.yaml")
    weak = f"{tiny_model_dir}?layers=1"
    out = invoke("eval", "-c", config, "--model", str(tiny_model_dir), "--label", "tiny",
                 "--model", weak, "--label", "weak", "--forgetting",
                 "--compare", str(tiny_model_dir), weak, "--export-lm-eval", str(workspace / "tasks"))
    folder = workspace / "runs" / "t" / "eval"
    results = read_json(folder / "tiny" / "results.json")
    assert set(results["mcq"]["by_leaf"]) == {KNOWLEDGE}
    assert results["mcq"]["by_leaf"][KNOWLEDGE]["n"] == 3 and results["mcq"]["headline"] == "acc"
    assert results["general"]["overall"]["n"] == 1
    judged = results["judged"]["by_leaf"][SKILL]
    assert judged["n"] + judged["unscored"] == 2
    assert (folder / "weak" / "manifest.json").is_file() and (folder / "tiny" / "mcq.jsonl").is_file()
    comparison = read_json(next((folder / "compare").glob("*__vs__*.json")))
    assert comparison["overall"]["n"] + comparison["overall"]["unparseable"] == 2
    assert (workspace / "tasks" / "alignlab_mcq.yaml").is_file()
    assert (workspace / "tasks" / "alignlab_general_mcq.jsonl").is_file()
    assert "tiny -> weak" in out.output and "win rate" in out.output

    manifest = (folder / "tiny" / "manifest.json").read_text()
    again = invoke("eval", "-c", config, "--model", str(tiny_model_dir), "--label", "tiny")
    assert (folder / "tiny" / "manifest.json").read_text() == manifest  # read back, not re-run
    assert KNOWLEDGE in again.output


def test_checkpoint_metric_is_the_headline_mcq_accuracy(workspace, tiny_model_dir):
    cfg = load_config(workspace / "alignlab.yaml")
    metric = checkpoint_metrics(cfg)["knowledge_mcq"]
    invoke("eval", "-c", str(workspace / "alignlab.yaml"), "--model", str(tiny_model_dir),
           "--label", "tiny", "--no-judged")
    results = read_json(workspace / "runs" / "t" / "eval" / "tiny" / "results.json")
    assert metric(tiny_model_dir) == pytest.approx(results["mcq"]["overall"]["acc"])


def test_eval_with_nothing_to_do_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval"])
    assert "give --model SPEC" in str(result.exception)


def test_a_phase_selecting_by_mcq_without_questions_fails_before_training(tmp_path):
    (tmp_path / "alignlab.yaml").write_text("train:\n  phases:\n    - {name: knowledge, select_by: knowledge_mcq}\n")
    with pytest.raises(ConfigError, match="no held-out MCQ to select checkpoints with"):
        checkpoint_metrics(load_config(tmp_path / "alignlab.yaml"))
    cfg = load_config(tmp_path / "alignlab.yaml", overrides={"train": {"phases": [{"name": "knowledge"}]}})
    assert set(checkpoint_metrics(cfg)) == {"knowledge_mcq", "skill_judge"}  # unused: built when called


def test_eval_without_a_model_is_the_pipelines_eval_stage(workspace):
    """`alignlab eval -c CFG` alone runs the pipeline's eval stage, as `eval-aligned` runs its
    own: before training, both say which stage to run first."""
    config = str(workspace / "alignlab.yaml")
    for command in ("eval", "eval-aligned"):
        result = CliRunner().invoke(app, [command, "-c", config])
        assert f" {command} — " in result.output
        assert "has no selected checkpoint" in str(result.exception) and "alignlab train" in str(result.exception)
    result = CliRunner().invoke(app, ["eval", "-c", config, "--label", "x", "--no-judged"])
    assert "--label, --judged apply to --model" in str(result.exception)


def test_validate_is_the_pipelines_validate_stage(workspace):
    result = invoke("validate", "-c", str(workspace / "alignlab.yaml"))
    assert " validate — " in result.output and "taxonomy: 1 leaf valid" in result.output
