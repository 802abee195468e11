"""`alignlab taxonomy validate|show|diff`: exit codes and the lines users read."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from alignlab.cli import app
from alignlab.taxonomy import TaxonomyError

DATA = Path(__file__).parent / "data" / "taxonomy"
runner = CliRunner()


def test_validate_a_valid_tree_exits_0_with_a_summary():
    result = runner.invoke(app, ["taxonomy", "validate", str(DATA / "valid")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "4 leaves valid: 1 knowledge, 2 freeform skills, 1 grounded skill"


def test_validate_defaults_to_taxonomy_in_the_working_directory(tmp_path, monkeypatch):
    shutil.copytree(DATA / "valid" / "compositional_skills", tmp_path / "taxonomy" / "compositional_skills")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["taxonomy", "validate"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "2 leaves valid: 1 freeform skill, 1 grounded skill"


def test_without_a_folder_the_taxonomy_commands_read_the_one_alignlab_yaml_names(tmp_path, monkeypatch):
    shutil.copytree(DATA / "valid" / "compositional_skills", tmp_path / "tax2" / "compositional_skills")
    (tmp_path / "alignlab.yaml").write_text("taxonomy: tax2\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["taxonomy", "validate", "--no-documents"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "2 leaves valid: 1 freeform skill, 1 grounded skill"
    shown = runner.invoke(app, ["taxonomy", "show"])
    assert shown.exit_code == 0 and "tax2" in shown.output and "2 leaves" in shown.output, shown.output


def test_validate_a_broken_tree_exits_1_with_one_line_per_problem(tmp_path, monkeypatch):
    shutil.copytree(DATA / "broken", tmp_path / "taxonomy")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["taxonomy", "validate", "taxonomy", "--max-seed-tokens", "300"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "taxonomy/compositional_skills/duplicate_key/qna.yaml:9:5: YAML lint: duplication of key " \
           '"answer" in mapping (key-duplicates)' in lines
    assert "taxonomy/compositional_skills/syntax_error/qna.yaml:8:25: YAML syntax: mapping values are " \
           "not allowed here" in lines
    assert "taxonomy/compositional_skills/long_seed/qna.yaml:9:5: warning: seed example 3 is 353 tokens, " \
           "more than the 300 tokens allowed for one seed (--max-seed-tokens); shorten it" in lines
    assert lines[-1] == "10 errors, 10 warnings; 6 of 13 leaves invalid"
    assert len(lines) == 21  # one line per problem, then the count


def test_show_prints_the_tree_with_kinds_and_seed_counts():
    result = runner.invoke(app, ["taxonomy", "show", str(DATA / "valid")])
    assert result.exit_code == 0, result.output
    assert "haiku  freeform skill 5 seeds" in result.output
    assert "dates  grounded skill 5 seeds" in result.output
    assert "tides  knowledge 5 contexts, 15 Q&A" in result.output
    assert result.output.strip().splitlines()[-1] == "4 leaves: 1 knowledge, 2 freeform skills, 1 grounded skill"


def test_show_marks_leaves_that_do_not_load():
    result = runner.invoke(app, ["taxonomy", "show", str(DATA / "broken")])
    assert result.exit_code == 0, result.output
    assert "syntax_error  invalid 1 error" in result.output
    assert "duplicate_question  freeform skill 5 seeds 1 warning" in result.output
    assert " ".join(result.output.split()).endswith("; 10 errors, 9 warnings, run `alignlab taxonomy validate`")


def test_show_counts_the_problems_validate_counts(tmp_path, monkeypatch):
    """One set of checks (documents and the configured teacher's seed budget included) for both."""
    shutil.copytree(DATA / "broken", tmp_path / "taxonomy")
    qna = next((tmp_path / "taxonomy" / "knowledge").rglob("qna.yaml"))
    for leaf in (DATA / "valid" / "knowledge").rglob("qna.yaml"):  # a valid knowledge leaf with a document
        shutil.copytree(leaf.parent, qna.parent.parent / "with_document")
    (tmp_path / "alignlab.yaml").write_text("taxonomy: taxonomy\n")
    monkeypatch.chdir(tmp_path)
    validated = runner.invoke(app, ["taxonomy", "validate"]).output.strip().splitlines()[-1]
    shown = " ".join(runner.invoke(app, ["taxonomy", "show"]).output.split())
    counts = validated.split(";")[0]
    assert "warning" in counts and shown.endswith(f"; {counts}, run `alignlab taxonomy validate`"), (validated, shown)


def test_diff_lists_every_leaf_against_an_empty_base():
    result = runner.invoke(app, ["taxonomy", "diff", "--base", "empty", str(DATA / "valid")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "added      compositional_skills/extraction/dates"
    assert lines[-1] == "4 leaves changed since an empty taxonomy"


def test_a_missing_folder_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["taxonomy", "validate", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert isinstance(result.exception, TaxonomyError)
    assert "not found" in str(result.exception)


def test_one_leaf_or_its_qna_yaml_validates_as_part_of_its_taxonomy(tmp_path):
    shutil.copytree(DATA / "valid", tmp_path / "taxonomy")
    leaf = sorted((tmp_path / "taxonomy" / "compositional_skills").rglob("qna.yaml"))[0].parent
    for given in (leaf, leaf / "qna.yaml", tmp_path / "taxonomy" / "compositional_skills"):
        result = runner.invoke(app, ["taxonomy", "validate", str(given), "--strict", "--no-documents"])
        assert result.exit_code == 0 and "not a taxonomy folder" not in result.output, (given, result.output)
        assert "valid: " in result.output


def test_python_dash_m_alignlab_is_the_command():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "alignlab", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "taxonomy" in out.stdout and "run" in out.stdout
