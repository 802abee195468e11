"""The exported MCQ task runs in lm-evaluation-harness and agrees with our own scorer."""

from __future__ import annotations

import pytest
import yaml

from alignlab.errors import AlignlabError, ConfigError
from alignlab.evaluate.lm_eval import export_lm_eval_task, run_lm_eval
from alignlab.evaluate.mcq import general_mcq, score_mcq

pytest.importorskip("lm_eval")


def test_exported_task_gives_our_accuracy_and_log_likelihoods(tmp_path, tiny_model_dir, tiny_backend):
    items = general_mcq("builtin")[:4]
    task_yaml = export_lm_eval_task(items, tmp_path / "tasks", task="alignlab_test_mcq")
    spec = yaml.safe_load(task_yaml.read_text())
    assert spec["output_type"] == "multiple_choice" and spec["dataset_path"] == "json"

    report = run_lm_eval(str(tiny_model_dir), ["alignlab_test_mcq"], include_path=tmp_path / "tasks",
                         limit=4, chat_template=True, batch_size=4, log_samples=True)
    ours = score_mcq(tiny_backend, items)
    theirs = sorted(report["samples"]["alignlab_test_mcq"], key=lambda s: s["doc_id"])
    assert len(theirs) == 4
    assert report["results"]["alignlab_test_mcq"]["acc"] == pytest.approx(
        sum(r["correct"] for r in ours) / len(ours))
    for row, sample in zip(ours, theirs):
        assert sample["doc"]["id"] == row["id"]
        lm_eval_ll = [resp[0][0] for resp in sample["resps"]]
        # lm-eval moves the chat prompt's final newline into every continuation, adding the
        # same log P("\n") to each choice of a document: the differences must be one constant.
        offsets = [a - b for a, b in zip(lm_eval_ll, row["logprobs"])]
        assert max(offsets) - min(offsets) < 1e-3, offsets
        assert sample["acc"] == float(row["correct"])


def test_unknown_task_is_named_with_suggestions(tmp_path):
    export_lm_eval_task(general_mcq("builtin")[:2], tmp_path, task="alignlab_test_mcq")
    with pytest.raises(ConfigError, match="'alignlab_test_mqc' is not known.*alignlab_test_mcq"):
        run_lm_eval("embedded:smollm2-135m", ["alignlab_test_mqc"], include_path=tmp_path)


def test_task_whose_data_is_not_on_disk_fails_with_what_to_do(tmp_path):
    (tmp_path / "remote.yaml").write_text(yaml.safe_dump({
        "task": "alignlab_remote_only", "dataset_path": "alignlab-no-such-org/no-such-dataset",
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "q",
        "doc_to_choice": "c", "doc_to_target": "a"}))
    with pytest.raises(AlignlabError, match="lm-eval task 'alignlab_remote_only': its data could not "
                                            "be loaded offline.*Download it once"):
        run_lm_eval("embedded:smollm2-135m", ["alignlab_remote_only"], include_path=tmp_path)


def test_eval_command_exports_and_runs_the_task_like_our_scorer(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from alignlab.cli import app
    from alignlab.store import read_json, write_jsonl

    leaf = tmp_path / "taxonomy" / "knowledge" / "islands"
    write_jsonl(leaf / "heldout_mcq.jsonl", [it.to_dict() | {"leaf": None, "source": None}
                                             for it in general_mcq("builtin")[4:7]])
    (tmp_path / "alignlab.yaml").write_text("name: lm\neval:\n  general_mcq: null\n")
    result = CliRunner().invoke(app, ["eval", "-c", str(tmp_path / "alignlab.yaml"), "--model",
                                      str(tiny_model_dir), "--label", "tiny", "--no-judged",
                                      "--export-lm-eval", str(tmp_path / "tasks"), "--lm-eval", "alignlab_mcq"])
    assert result.exit_code == 0, result.output
    results = read_json(tmp_path / "runs" / "lm" / "eval" / "tiny" / "results.json")
    assert results["lm_eval"]["alignlab_mcq"]["acc"] == pytest.approx(results["mcq"]["overall"]["acc"])
    assert "lm-eval acc" in result.output
