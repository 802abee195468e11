"""File by file, `alignlab taxonomy validate` gives InstructLab's own verdict.

InstructLab's `TaxonomyParser` is run here directly, as InstructLab runs it (the version taken
from each file), and its printed errors are compared with what alignlab prints over the same
trees: the same files rejected, and an alignlab error at every line InstructLab names.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from community import COMMUNITY
from instructlab.schema.taxonomy import TaxonomyMessageFormat, TaxonomyParser, TaxonomyReadingException
from typer.testing import CliRunner

from alignlab.cli import app

DATA = Path(__file__).parent / "data"
TREES = [COMMUNITY, DATA / "taxonomy" / "valid", DATA / "taxonomy" / "broken"]
_INSTRUCTLAB_ERROR = re.compile(r"^ERROR: (?P<path>.+?):(?P<line>\d+):(?P<col>\d+) ")
_ALIGNLAB_LINE = re.compile(r"^(?P<path>.+?/qna\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<warning>warning: )?")


@pytest.fixture(autouse=True)
def yamllint_on_path(monkeypatch):
    """InstructLab lints with the `yamllint` command, installed beside this Python."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def instructlab_errors(path: Path, capsys) -> tuple[bool, set[int]]:
    """(rejected, the lines InstructLab names) for one file."""
    parser = TaxonomyParser(schema_version=0, message_format=TaxonomyMessageFormat.STANDARD)
    capsys.readouterr()
    try:
        taxonomy = parser.parse(path)
    except TaxonomyReadingException as e:
        mark = getattr(e.__cause__, "problem_mark", None)
        return True, {mark.line + 1} if isinstance(e.__cause__, yaml.MarkedYAMLError) and mark else set()
    lines = {int(m["line"]) for m in map(_INSTRUCTLAB_ERROR.match, capsys.readouterr().out.splitlines()) if m}
    # Line 1 is also the parser's default when it cannot tell (no working `yq`): not a place.
    return taxonomy.errors > 0, lines - {1}


def alignlab_errors(root: Path, *options: str) -> tuple[int, dict[Path, set[int]], dict[Path, int]]:
    """(exit code, error lines per file, warnings per file) as `alignlab taxonomy validate` prints them."""
    result = CliRunner().invoke(app, ["taxonomy", "validate", str(root), *options])
    errors: dict[Path, set[int]] = {}
    warnings: dict[Path, int] = {}
    for line in result.output.splitlines():
        if m := _ALIGNLAB_LINE.match(line):
            path = Path(m["path"]).resolve()
            if m["warning"]:
                warnings[path] = warnings.get(path, 0) + 1
            else:
                errors.setdefault(path, set()).add(int(m["line"]))
    return result.exit_code, errors, warnings


@pytest.mark.parametrize("root", TREES, ids=lambda p: p.relative_to(DATA).as_posix())
def test_every_file_gets_instructlabs_verdict_and_lines(root, capsys):
    code, errors, _ = alignlab_errors(root, "--offline")
    table = []
    for qna in sorted(root.rglob("qna.yaml")):
        rejected, lines = instructlab_errors(qna, capsys)
        ours = errors.get(qna.resolve(), set())
        table.append((qna.relative_to(root).as_posix(), rejected, bool(ours)))
        assert bool(ours) == rejected, f"{qna}: InstructLab {'rejects' if rejected else 'accepts'} it"
        assert lines <= ours, f"{qna}: InstructLab names lines {sorted(lines)}, alignlab {sorted(ours)}"
    assert code == (1 if any(rejected for _, rejected, _ in table) else 0)
    with capsys.disabled():  # the verdict table, for whoever reads the test log
        print(f"\n{root.relative_to(DATA)}: {len(table)} files, {sum(r for _, r, _ in table)} rejected by "
              f"InstructLab, {sum(a for _, _, a in table)} by alignlab, "
              f"{sum(r != a for _, r, a in table)} disagreements")


def test_the_community_corpus_covers_the_shapes_of_real_trees(capsys):
    """The corpus holds what real community trees hold, so the verdict test means something."""
    accepted, rejected = {}, set()
    for qna in COMMUNITY.rglob("qna.yaml"):
        name = qna.parent.relative_to(COMMUNITY).as_posix()
        if instructlab_errors(qna, capsys)[0]:
            rejected.add(name)
        else:
            accepted[name] = yaml.safe_load(qna.read_text())
    skills = {n: d for n, d in accepted.items() if not n.startswith("knowledge/")}
    v1 = [d for d in skills.values() if "version" not in d]
    assert v1 and all(len(d["seed_examples"]) == 3 for d in v1)  # v1 skills: no version key, 3 seeds
    assert {2, 3} <= {d.get("version") for d in skills.values()}
    assert any(d["task_description"] == "" for d in v1)
    assert {d.get("version", 1) for d in skills.values() if "context" in d["seed_examples"][0]} >= {1, 2, 3}
    [knowledge] = [d for n, d in accepted.items() if n.startswith("knowledge/")]
    assert knowledge["version"] == 3 and knowledge["document_outline"]
    assert knowledge["document"]["repo"].startswith("https://")
    assert "knowledge/history/lighthouses" in rejected  # a v1 knowledge file
    assert "compositional_skills/writing/freeform/riddles" in rejected  # a broken one


def test_the_in_process_lint_finds_what_the_yamllint_command_finds():
    """`instructlab_verdict` lints in this process; InstructLab's parser pipes to the command.
    Every finding, warnings included, must be the same, at the same line and column."""
    from alignlab.logcapture import captured_logs
    from alignlab.taxonomy import instructlab

    def findings(parser_class, path):
        parser = parser_class(schema_version=0, message_format=TaxonomyMessageFormat.LOGGING)
        parser.yq_available = False
        with captured_logs(instructlab._LOGGER.name) as records:
            try:
                parser.parse(path)
            except TaxonomyReadingException:
                pass
        return [f for f in map(instructlab._finding, records) if f]

    files = sorted(p for tree in TREES for p in tree.rglob("qna.yaml"))
    linted = 0
    for path in files:
        ours = findings(instructlab._Parser, path)
        assert ours == findings(TaxonomyParser, path), path
        linted += any(f.yaml_path is None for f in ours)
    assert linted >= 3  # the broken tree has lint findings to compare
