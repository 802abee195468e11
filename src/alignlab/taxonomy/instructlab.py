"""InstructLab's own verdict on one qna.yaml: `instructlab.schema.taxonomy.TaxonomyParser`, run
as InstructLab runs it, with what it reports captured instead of printed.

    verdict = instructlab_verdict(Path("taxonomy/compositional_skills/haiku/qna.yaml"))
    verdict.valid, verdict.version, verdict.findings   # each finding: severity, line, col, path, text

The parser picks the schema version from the file (`schema_version=0`: a missing `version` is
version 1), lints files of version 2 and later with yamllint, and validates against its JSON
schemas. It asks the `yq` command for line numbers; when `yq` is missing or cannot answer, it
gives no line (`line` is None here) and alignlab places the finding itself.

The yamllint pass runs in this process (`_Parser`): the same linter, configuration and messages
as the `yamllint -f parsable -` command the parser starts, without starting a Python process per
file, which took about 0.2 s per leaf and most of the time to load a taxonomy of many leaves.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from instructlab.schema.taxonomy import (
    Taxonomy, TaxonomyMessageFormat, TaxonomyParser, TaxonomyReadingException,
)
from yamllint import linter
from yamllint.config import YamlLintConfig

from alignlab.logcapture import captured_logs
from alignlab.taxonomy.leaf import ERROR, WARNING

_LOGGER = logging.getLogger("instructlab.schema.taxonomy")
# Messages about the file start with "path:line:col"; the parser logs its own troubles
# (e.g. "could not run yq command") on the same logger without that prefix.
_FILE_PREFIX = "%s:%s:%s "


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR | WARNING
    message: str
    line: int | None = None  # None when InstructLab gave no line of its own
    col: int | None = None
    yaml_path: str | None = None  # e.g. "seed_examples[2]" for a schema error, None for lint


@dataclass
class Verdict:
    version: int  # the schema version InstructLab validated against (0 if it never got that far)
    findings: list[Finding] = field(default_factory=list)
    exception: BaseException | None = None  # what made the parser give up (syntax, encoding)

    @property
    def valid(self) -> bool:
        return self.exception is None and not any(f.severity == ERROR for f in self.findings)


@contextlib.contextmanager
def _tools_on_path() -> Iterator[None]:
    """The parser runs `yamllint` as a command; it is installed beside this Python, which is not
    on PATH when alignlab runs from a virtualenv that was never activated."""
    here = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    if here in old.split(os.pathsep):
        yield
        return
    os.environ["PATH"] = here + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _finding(record: logging.LogRecord) -> Finding | None:
    """A finding from one of the parser's log records; None for its notes about its own tools."""
    msg, args = str(record.msg), tuple(record.args or ())
    if not msg.startswith(_FILE_PREFIX) or len(args) < 3:
        return None
    rest, args = msg[len(_FILE_PREFIX):], args[1:]
    line, col, args = args[0], args[1], args[2:]
    yaml_path = None
    if rest.startswith("[%s] "):
        yaml_path, rest, args = str(args[0]), rest[len("[%s] "):], args[1:]
    # A line InstructLab found (from yamllint or yq) arrives as text; its default is the int 1.
    return Finding(ERROR if record.levelno >= logging.ERROR else WARNING, rest % args if args else rest,
                   int(line) if isinstance(line, str) else None,
                   int(col) if isinstance(col, str) else None, yaml_path)


@functools.cache
def _lint_config(text: str) -> YamlLintConfig:
    return YamlLintConfig(content=text)


class _Parser(TaxonomyParser):
    def _yamllint(self, text: str, taxonomy: Taxonomy) -> None:
        """As the parser's own, which pipes `text` to `yamllint -f parsable -d <config> -`
        and reports each line it prints (line and column as text) at its level."""
        for problem in linter.run(io.BytesIO(text.encode("utf-8")), _lint_config(self.yamllint_config), ""):
            report = taxonomy.error if self.yamllint_strict or problem.level == "error" else taxonomy.warning
            report(problem.message, line=str(problem.line), col=str(problem.column))


@functools.cache
def _yq_answers_lines() -> bool:
    """Whether the `yq` on PATH can tell a node's line. Another `yq` (the jq wrapper) fails on
    every error it is asked about, noisily; InstructLab then gives no line, exactly as without one."""
    try:
        out = subprocess.run(["yq", ". | line"], input="a: 1\n", text=True, capture_output=True, check=False)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip().isdigit()


def instructlab_verdict(path: Path) -> Verdict:
    """Parse one qna.yaml with InstructLab's parser, each schema version by its own rules."""
    parser = _Parser(schema_version=0, message_format=TaxonomyMessageFormat.LOGGING)
    parser.yq_available = _yq_answers_lines()
    with _tools_on_path(), captured_logs(_LOGGER.name) as records:
        try:
            taxonomy = parser.parse(path)
        except TaxonomyReadingException as e:
            return Verdict(0, [f for f in map(_finding, records) if f], e.__cause__ or e)
    return Verdict(taxonomy.version, [f for f in map(_finding, records) if f])


def exception_place(exception: BaseException) -> tuple[int, int] | None:
    """Line and column of a YAML syntax error the parser stopped at, as PyYAML marks it."""
    if isinstance(exception, yaml.MarkedYAMLError):
        mark = exception.problem_mark or exception.context_mark
        if mark is not None:
            return mark.line + 1, mark.column + 1
    return None
