"""A candidate: one would-be training sample on its way through the generation steps.

Generators create candidates up front (their ids and seeds fixed by the leaf, seed example or
chunk, and sample number, never by batch position), then each step fills a field or rejects
the candidate with a reason. At the end, survivors become `Sample`s with full lineage and
rejects become `Reject` rows — so for every generator, accepted + rejected = candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from alignlab.records import Sample, stable_id, user_turn


@dataclass
class Candidate:
    leaf: str
    leaf_kind: str
    generator: str
    order: tuple  # position within its leaf, for a deterministic output order
    lineage: dict[str, Any] = field(default_factory=dict)  # seed_index, chunk_id, ...
    context: str | None = None
    question: str | None = None
    answer: str | None = None
    raw: dict[str, str] = field(default_factory=dict)  # teacher replies per step
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)
    rejected: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    unmask: bool = False  # the sample trains on its whole text, as a document chunk does

    @property
    def id(self) -> str:
        return stable_id(self.leaf, self.generator, self.order)

    @property
    def seed(self) -> int:
        """The sampling seed of every request this candidate makes: fixed by what it is."""
        return int(self.id[:8], 16)

    @property
    def alive(self) -> bool:
        return self.rejected is None

    def reject(self, reason: str, **detail: Any) -> None:
        self.rejected, self.detail = reason, detail

    def messages(self) -> list[dict[str, str]]:
        context = self.context if self.leaf_kind == "grounded_skill" else None
        return [{"role": "user", "content": user_turn(self.question or "", context)},
                {"role": "assistant", "content": self.answer or ""}]

    def metadata(self, teacher: str) -> dict[str, Any]:
        return {"leaf": self.leaf, "leaf_kind": self.leaf_kind, "generator": self.generator,
                **self.lineage, "templates": dict(self.templates), "teacher": teacher,
                "judges": dict(self.judges), "stage": "generate"}

    def to_sample(self, teacher: str) -> Sample:
        return Sample(id=self.id, messages=self.messages(), unmask=self.unmask, metadata=self.metadata(teacher))

    def to_reject_record(self, teacher: str) -> dict[str, Any]:
        """What a reject keeps: everything produced so far, raw teacher text included."""
        return {"id": self.id, "context": self.context, "question": self.question,
                "answer": self.answer, "raw": dict(self.raw), "metadata": self.metadata(teacher)}


# ---------------------------------------------------------------- parsing teacher replies

MAX_QUESTION_CHARS = 600  # a longer "question" is a teacher that ran on
_LABEL = re.compile(r"^\s*(?:\d+[.)]\s*|[-*]\s*)?(?:question|instruction|q)\s*[:.]\s*", re.IGNORECASE)


def parse_question(text: str) -> str | None:
    """The question a teacher wrote: its first paragraph, labels and quotes removed."""
    first = text.strip().split("\n\n", 1)[0].strip()
    first = _LABEL.sub("", first).strip().strip('"').strip()
    # A reply that runs on into its own answer ("Answer: ...") keeps only the question.
    first = re.split(r"\n\s*(?:answer|a)\s*:", first, maxsplit=1, flags=re.IGNORECASE)[0].strip()
    if len(first.split()) < 3 or len(first) > MAX_QUESTION_CHARS:
        return None
    return first


def parse_answer(text: str) -> str | None:
    answer = re.sub(r"^\s*answer\s*:\s*", "", text.strip(), flags=re.IGNORECASE).strip()
    return answer if len(answer.split()) >= 2 else None


def parse_context(text: str) -> str | None:
    context = re.sub(r"^\s*(?:context|text|passage)\s*:\s*", "", text.strip(), flags=re.IGNORECASE)
    context = context.strip().strip('"').strip()
    return context if len(context.split()) >= 12 else None
