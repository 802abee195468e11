"""A stage's code is the closure of its imports: editing any module it runs re-runs it, editing
one it never reaches does not, and the fingerprint does not move on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_curate_stage import generated_samples, workspace
from test_curate_fixtures import write_generate_output

import alignlab.codedeps as codedeps
from alignlab.codedeps import code_files, module_closure, stage_code_version
from alignlab.curate.stage import curate


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of alignlab's source the closure reads instead of the real one, safe to edit."""
    root = tmp_path / "src" / "alignlab"
    shutil.copytree(codedeps.ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codedeps, "ROOT", root)
    return root


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


def test_the_closure_follows_imports_at_top_level_and_inside_functions():
    curate_code = module_closure(("alignlab.curate.stage",))
    assert {"alignlab.curate.funnel", "alignlab.sdg.judges", "alignlab.store", "alignlab"} <= set(curate_code)
    assert "alignlab.report.render" not in curate_code and "alignlab.cli" not in curate_code
    # train.phases imports the evaluation package's checkpoint metrics inside a function.
    assert "alignlab.evaluate.selection" in module_closure(("alignlab.train.phases",))
    # A package reached through one module brings its __init__, not its other modules.
    align_code = module_closure(("alignlab.train.align",))
    assert "alignlab.pairs" in align_code and "alignlab.pairs.verify" not in align_code


def test_a_package_in_the_closure_brings_its_templates():
    files = code_files("alignlab.sdg.stage")
    assert any(p.name == "judge_quality.jinja" for p in files)


def test_editing_a_module_in_the_closure_changes_the_fingerprint_and_others_do_not(package_copy):
    before = stage_code_version("alignlab.curate.stage")
    assert stage_code_version("alignlab.curate.stage") == before  # stable within a process
    edit(package_copy / "report" / "render.py")
    assert stage_code_version("alignlab.curate.stage") == before
    edit(package_copy / "sdg" / "judges.py")
    assert stage_code_version("alignlab.curate.stage") != before


def test_curate_reruns_when_a_step_it_runs_changes(tmp_path, package_copy):
    cfg = workspace(tmp_path)
    write_generate_output(cfg, generated_samples())
    first = curate(cfg)
    edit(package_copy / "report" / "render.py")
    assert curate(cfg)["timings"] == first["timings"]  # skipped: curate never runs the report
    edit(package_copy / "sdg" / "judges.py")  # another package's module curate imports
    second = curate(cfg)
    assert second["fingerprint"] != first["fingerprint"] and second["timings"] != first["timings"]
    # The steps are imported by name when they run: no import statement leads to dedup.py.
    assert "alignlab.curate.dedup" not in module_closure(("alignlab.curate.stage",))
    edit(package_copy / "curate" / "dedup.py")
    assert curate(cfg)["fingerprint"] != second["fingerprint"]
