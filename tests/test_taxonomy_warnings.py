"""Warnings do not refuse a tree InstructLab accepts; `--strict` makes them errors; documents
out of reach are warnings at validate time, and `--offline` does not reach for them at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from community import REMOTE_COMMIT, REMOTE_REPO, accepted_copy, no_network
from typer.testing import CliRunner

from alignlab.cli import app

runner = CliRunner()


@pytest.fixture
def accepted_tree(tmp_path, monkeypatch) -> Path:
    """The community corpus without the files InstructLab rejects, on a machine with no network:
    every request goes to a proxy nothing listens on."""
    root = accepted_copy(tmp_path / "taxonomy")
    # A second knowledge leaf with its documents in the same remote repository.
    shutil.copytree(root / "knowledge/science/astronomy/jupiter_moons", root / "knowledge/science/moons_again")
    no_network(monkeypatch)
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path / "home"))
    return root


def test_warnings_keep_exit_0_and_are_counted(accepted_tree):
    result = runner.invoke(app, ["taxonomy", "validate", str(accepted_tree), "--offline"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    warnings = [line for line in lines if ": warning: " in line]
    assert warnings and all(line.split(":")[1].isdigit() for line in warnings)  # path:line:col: warning:
    assert any("duplicate question" in line for line in warnings)
    assert any("town_report/qna.yaml:9:5: warning: seed example 2 is 2594 tokens" in line for line in warnings)
    # A version 1 file is not linted by InstructLab, so a repeated key is only alignlab's warning.
    assert any("synonyms/qna.yaml:10:3: warning: duplicate key 'answer' in seed_examples[2]" in line
               for line in warnings)
    assert lines[-1].startswith("12 leaves valid: ") and lines[-1].endswith(f"({len(warnings)} warnings)")


def test_strict_turns_warnings_into_errors(accepted_tree):
    result = runner.invoke(app, ["taxonomy", "validate", str(accepted_tree), "--offline", "--strict"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert not [line for line in lines if ": warning: " in line]
    assert any(line.endswith("duplicate question (first asked at line 5): 'How many Centimetres are in 3 "
                             "metres?'") for line in lines)
    assert lines[-1] == "3 errors; 3 of 12 leaves invalid"


def test_an_unreachable_remote_repo_is_one_warning_per_leaf(accepted_tree):
    result = runner.invoke(app, ["taxonomy", "validate", str(accepted_tree)])
    assert result.exit_code == 0, result.output
    clone = [line for line in result.output.splitlines() if "cannot clone" in line]
    assert sorted(line.split("/qna.yaml")[0].rsplit("/", 1)[1] for line in clone) == ["jupiter_moons", "moons_again"]
    for line in clone:
        assert f": warning: cannot clone {REMOTE_REPO} (for commit {REMOTE_COMMIT})" in line
        assert "point document.repo at the local clone" in line


def test_offline_fetches_nothing_and_says_so_once(accepted_tree):
    result = runner.invoke(app, ["taxonomy", "validate", str(accepted_tree), "--offline"])
    assert result.exit_code == 0, result.output
    assert "cannot clone" not in result.output
    notes = [line for line in result.output.splitlines() if line.startswith("offline:")]
    assert notes == ["offline: documents of 2 leaves in remote git repositories not fetched"]
    assert not (accepted_tree.parent / "home" / "repos").exists() or \
        not any((accepted_tree.parent / "home" / "repos").iterdir())


def test_the_seed_warning_names_the_teacher_and_its_limit(tmp_path):
    leaf = tmp_path / "compositional_skills" / "long"
    leaf.mkdir(parents=True)
    seed = " ".join(["word"] * 1200)  # ~1,500 tokens at four characters each: over 1/8 of 8192, under 1/8 of 32768
    seeds = "".join(f"  - question: Question number {i}?\n    answer: {seed if i == 2 else 'An answer.'}\n"
                    for i in range(5))
    (leaf / "qna.yaml").write_text(f"version: 3\ncreated_by: me\ntask_description: Answer.\nseed_examples:\n{seeds}")
    result = runner.invoke(app, ["taxonomy", "validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.output.splitlines() if "warning:" in line]
    assert "qna.yaml:9:5: warning: seed example 3 is 1505 tokens, more than the 1024 a seed may use of the " \
           "teacher's context (embedded:smollm2-135m: 8192 tokens, 1/8 of it per seed)" in warning
    model = tmp_path / "big_teacher"
    model.mkdir()
    (model / "config.json").write_text('{"max_position_embeddings": 32768}')
    result = runner.invoke(app, ["taxonomy", "validate", str(tmp_path), "--teacher", str(model)])
    assert "warning:" not in result.output
