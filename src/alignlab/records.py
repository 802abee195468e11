"""The rows that flow between stages.

A `Sample` is one training conversation in the messages format InstructLab and TRL both read:
`{"id", "messages": [{"role", "content"}, ...], "unmask", "metadata"}`. A `Pair` is one
preference pair in TRL's conversational form. `metadata` carries the lineage: which taxonomy
leaf, seed, chunk, generator, template hash, teacher and judge scores produced the row.

Lineage keys in `metadata` (every producer fills the ones that apply):
    leaf, leaf_kind        taxonomy leaf path; knowledge | freeform_skill | grounded_skill | general
    leaf_version           the qna.yaml's schema version, as InstructLab read it (1 when it has none)
    seed_index, chunk_id   which seed example / document chunk the row grew from
    generator              e.g. "knowledge_qa", "knowledge_chunk", "freeform", "grounded", "magpie"
    templates              {template name: template hash} of every prompt used
    teacher                model id of the model that wrote it
    judges                 {judge name: {"score", "model", "template", "method"}}
    stage                  the stage that produced the row; `source` once mixed into a phase

Records are plain dataclasses serialised to one JSON object per line; `from_dict` rejects
unknown top-level keys so a malformed file is caught where it is read, not three stages later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": str}

ROLES = ("system", "user", "assistant")


def stable_id(*parts: Any) -> str:
    """A short content-derived id: the same inputs give the same id on every run and machine."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def user_turn(question: str, context: str | None = None) -> str:
    """The user message of a skill example: a grounded skill's context, then its question.
    Generation, training and evaluation all build it here, so they agree."""
    return f"{context}\n\n{question}" if context else question


def check_messages(messages: Any, where: str) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(
                f"{where}: message {i} must be {{'role': one of {ROLES}, 'content': str}}, got {m!r:.120}"
            )
    return messages


@dataclass
class Sample:
    id: str
    messages: list[Message]
    unmask: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def instruction(self) -> str:
        """The last user turn: what dedup, diversity and decontamination compare."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")

    @property
    def response(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "assistant"), "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "sample") -> Sample:
        unknown = set(d) - {"id", "messages", "unmask", "metadata"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        if "messages" not in d:
            raise ValueError(f"{where}: missing 'messages'")
        messages = check_messages(d["messages"], where)
        sid = d.get("id") or stable_id(messages)
        return cls(id=str(sid), messages=messages, unmask=bool(d.get("unmask", False)),
                   metadata=dict(d.get("metadata") or {}))


@dataclass
class Pair:
    id: str
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "pair") -> Pair:
        unknown = set(d) - {"id", "prompt", "chosen", "rejected", "metadata"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("prompt", "chosen", "rejected"):
            if key not in d:
                raise ValueError(f"{where}: missing '{key}'")
            check_messages(d[key], f"{where}.{key}")
        return cls(id=str(d.get("id") or stable_id(d["prompt"], d["chosen"], d["rejected"])),
                   prompt=d["prompt"], chosen=d["chosen"], rejected=d["rejected"],
                   metadata=dict(d.get("metadata") or {}))


@dataclass
class Reject:
    """A row some filter or judge turned down, with the reason, so every decision can be audited."""

    id: str
    reason: str
    stage: str
    record: dict[str, Any]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
