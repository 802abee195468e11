"""The records a taxonomy is read into: a `Leaf` per qna.yaml, its seed examples, and `Problem`s.

A leaf is a folder holding a `qna.yaml`. Its kind comes from the top folder and the seeds:
`knowledge/...` is knowledge; `compositional_skills/...` and `foundational_skills/...` are
grounded skills when their seed examples carry a `context`, freeform skills otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from alignlab.yamlpos import PositionedYaml

KNOWLEDGE, FREEFORM_SKILL, GROUNDED_SKILL = "knowledge", "freeform_skill", "grounded_skill"
KINDS = (KNOWLEDGE, FREEFORM_SKILL, GROUNDED_SKILL)
KIND_FOLDERS = ("knowledge", "compositional_skills", "foundational_skills")
HELDOUT_MCQ = "heldout_mcq.jsonl"


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    line: int  # line of the `question` key in qna.yaml


@dataclass(frozen=True)
class SeedExample:
    """One seed: a skill's question/answer (with a context when grounded), or a knowledge
    context with its 3+ questions and answers."""

    index: int  # 0-based position in seed_examples
    line: int  # line where the item starts in qna.yaml
    context: str | None
    questions_and_answers: tuple[QA, ...]

    @property
    def question(self) -> str:
        return self.questions_and_answers[0].question

    @property
    def answer(self) -> str:
        return self.questions_and_answers[0].answer


@dataclass(frozen=True)
class DocumentSettings:
    """`document:` of a knowledge leaf: where the documents live and which files to read."""

    repo: str
    commit: str
    patterns: tuple[str, ...]


@dataclass
class Leaf:
    path: str  # folder relative to the taxonomy root, e.g. "compositional_skills/writing/haiku"
    kind: str  # one of KINDS
    qna_path: Path
    version: int
    created_by: str
    task_description: str  # "" for knowledge (version 3 has none)
    domain: str | None
    seed_examples: list[SeedExample]
    document: DocumentSettings | None = None
    document_outline: str | None = None
    extra_files: tuple[Path, ...] = ()  # other files beside qna.yaml (held-out sets, notes)
    yaml: PositionedYaml | None = field(default=None, repr=False, compare=False)

    @property
    def folder(self) -> Path:
        return self.qna_path.parent

    @property
    def tree(self) -> str:
        """The top folder: knowledge, compositional_skills or foundational_skills."""
        return self.path.split("/", 1)[0]

    @property
    def heldout_mcq(self) -> Path | None:
        """The leaf's held-out multiple-choice questions (`heldout_mcq.jsonl`), if it has them."""
        path = self.folder / HELDOUT_MCQ
        return path if path in self.extra_files else None

    def where(self, keys: tuple | list = ()) -> str:
        """`qna.yaml:line:col` of a key path such as ("seed_examples", 2, "answer")."""
        if self.yaml is None:
            return f"{self.qna_path}:1:1"
        return self.yaml.where(keys)


ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a taxonomy, printed as `path:line:col: message`, or
    `path:line:col: warning: message` for what InstructLab accepts but alignlab would point out."""

    path: Path
    line: int
    col: int
    message: str
    leaf: str | None = None  # the leaf's path, when the problem belongs to one
    severity: str = ERROR  # ERROR | WARNING

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def as_error(self) -> Problem:
        """The same problem, counted as an error (`--strict`)."""
        return replace(self, severity=ERROR)

    def __str__(self) -> str:
        prefix = "" if self.is_error else "warning: "
        return f"{self.path}:{self.line}:{self.col}: {prefix}{self.message}"


def problem_at(doc: PositionedYaml, keys: tuple | list, message: str, leaf: str | None,
               severity: str = WARNING) -> Problem:
    """A problem at a key; alignlab's own checks are warnings unless they say otherwise."""
    line, col = doc.loc(keys)
    return Problem(doc.path, line, col, message, leaf, severity)
