"""Counting decisions: every row kept or rejected is counted per leaf and per reason, and
every rejected row is kept with its reason, so a funnel can always be explained.

Filters everywhere return `(keep, reason)`; the stage feeds each decision to a `Tally`, then
writes `rejects.jsonl` (row, reason, detail) and `counts.json` beside its outputs. An empty
result is never a mystery: the summary says which filter removed what, for which leaf, with an
example.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from alignlab.leaf_table import LeafTable
from alignlab.records import Reject
from alignlab.store import JsonlStream, StageDir, write_json, write_jsonl

Decision = tuple[bool, str]  # (keep, reason); reason is "" when kept


@dataclass
class Tally:
    stage: str
    kept: Counter = field(default_factory=Counter)  # leaf -> rows kept
    rejected: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # reason -> leaf -> n
    rejects: list[Reject] = field(default_factory=list)
    # Where rejects go as they are decided instead of `rejects` (a stage whose rows do not all
    # fit in memory); `write` then finishes that file.
    stream: JsonlStream | None = None

    def keep(self, leaf: str, n: int = 1) -> None:
        self.kept[leaf] += n

    def reject(self, record: Any, reason: str, leaf: str, step: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
        row = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        self.rejected[reason][leaf] += 1
        reject = Reject(id=str(row.get("id", "")), reason=reason, stage=step or self.stage,
                        record=row, detail=detail or {})
        if self.stream is not None:
            self.stream.write(reject)
        else:
            self.rejects.append(reject)

    def merge(self, other: Tally) -> None:
        self.kept.update(other.kept)
        for reason, leaves in other.rejected.items():
            self.rejected[reason].update(leaves)
        self.rejects.extend(other.rejects)

    @property
    def n_kept(self) -> int:
        return sum(self.kept.values())

    @property
    def n_rejected(self) -> int:
        return sum(sum(c.values()) for c in self.rejected.values())

    def counts(self) -> dict[str, Any]:
        leaves = sorted(set(self.kept) | {leaf for c in self.rejected.values() for leaf in c})
        return {
            "kept": self.n_kept,
            "rejected": self.n_rejected,
            "by_reason": {r: sum(c.values()) for r, c in sorted(self.rejected.items())},
            "by_leaf": {leaf: {"kept": self.kept.get(leaf, 0),
                               "rejected": {r: c[leaf] for r, c in sorted(self.rejected.items()) if c.get(leaf)}}
                        for leaf in leaves},
        }

    def example(self, reason: str, leaf: str | None = None) -> Reject | None:
        return next((r for r in self.rejects if r.reason == reason and
                     (leaf is None or r.record.get("metadata", {}).get("leaf") == leaf)), None)

    def write(self, stage_dir: StageDir, prefix: str = "") -> dict[str, Any]:
        counts = self.counts()
        if self.stream is not None:
            self.stream.finish()
        else:
            write_jsonl(stage_dir.file(f"{prefix}rejects.jsonl"), self.rejects)
        write_json(stage_dir.file(f"{prefix}counts.json"), counts)
        return counts

    def table(self, title: str | None = None) -> Table:
        return counts_table(self.counts(), title or self.stage)


def counts_table(counts: dict[str, Any], title: str) -> Table:
    """Per-leaf kept and rejected-by-reason (from `Tally.counts()`), for end-of-command summaries."""
    reasons = sorted(counts["by_reason"])
    table = LeafTable(title=title, title_justify="left")
    table.add_column("leaf")
    table.add_column("kept", justify="right")
    for r in reasons:
        table.add_column(r, justify="right", style="red")
    for leaf, c in counts["by_leaf"].items():
        table.add_row(leaf, str(c["kept"]), *[str(c["rejected"].get(r, 0)) for r in reasons])
    return table
