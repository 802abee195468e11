"""Running the configured steps in order, counting every decision, and the funnel they make.

Each step gets its own `Tally` (kept per leaf, rejected per reason and leaf, every rejected row
with its reason and detail), so the funnel can say which step removed what, for which leaf.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from alignlab.curate.steps import StepContext, leaf_of
from alignlab.errors import AlignlabError
from alignlab.leaf_table import LeafTable
from alignlab.records import Reject, Sample
from alignlab.tally import Tally

@dataclass
class StepReport:
    label: str
    n_in: int
    tally: Tally
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def counts(self) -> dict[str, Any]:
        c = self.tally.counts()
        return {"step": self.label, "in": self.n_in, "out": c["kept"], "rejected": c["rejected"],
                "by_reason": c["by_reason"], "notes": dict(self.notes), "seconds": round(self.seconds, 3),
                "by_leaf": c["by_leaf"]}


def run_steps(samples: list[Sample], steps: list[Any], labels: list[str],
              ctx: StepContext) -> tuple[list[Sample], list[StepReport]]:
    live, reports = list(samples), []
    for settings, label in zip(steps, labels, strict=True):
        started = time.perf_counter()
        verdicts = settings.function()(live, settings, ctx)  # as curate.config.STEPS names it
        if len(verdicts) != len(live):
            raise RuntimeError(f"curate step {label} returned {len(verdicts)} verdicts for {len(live)} samples")
        report = StepReport(label, len(live), Tally(stage="curate"))
        kept = []
        for sample, verdict in zip(live, verdicts):
            row = verdict.sample or sample
            if verdict.keep:
                report.tally.keep(leaf_of(row))
                kept.append(row)
                if verdict.note:
                    report.notes[verdict.note] += 1
            else:
                report.tally.reject(row, verdict.reason, leaf_of(row), step=label, detail=verdict.detail)
        report.seconds = time.perf_counter() - started
        reports.append(report)
        live = kept
    return live, reports


def all_rejects(reports: list[StepReport]) -> list[Reject]:
    return [r for report in reports for r in report.tally.rejects]


def funnel_counts(samples: list[Sample], survivors: list[Sample], reports: list[StepReport]) -> dict[str, Any]:
    """in -> out overall, per step (with reasons and notes) and per leaf."""
    leaves: dict[str, dict[str, Any]] = {}
    for s in samples:
        leaves.setdefault(leaf_of(s), {"in": 0, "out": 0, "rejected": Counter()})["in"] += 1
    for s in survivors:
        leaves[leaf_of(s)]["out"] += 1
    for report in reports:
        for reason, per_leaf in report.tally.rejected.items():
            for leaf, n in per_leaf.items():
                leaves[leaf]["rejected"][f"{report.label}:{reason}"] += n
    return {"in": len(samples), "out": len(survivors), "steps": [r.counts() for r in reports],
            "by_leaf": {leaf: {**c, "rejected": dict(c["rejected"])} for leaf, c in sorted(leaves.items())}}


def funnel_tables(counts: dict[str, Any]) -> list[Table]:
    """The funnel step by step, then per leaf, for the end-of-command summary."""
    steps = Table(title=f"curate: {counts['in']} in -> {counts['out']} out", title_justify="left")
    for col, justify in (("step", "left"), ("in", "right"), ("out", "right"), ("removed", "right"),
                         ("reasons", "left"), ("seconds", "right")):
        steps.add_column(col, justify=justify)
    for s in counts["steps"]:
        reasons = ", ".join(f"{r} {n}" for r, n in s["by_reason"].items())
        notes = ", ".join(f"{k} {n}" for k, n in s["notes"].items())
        removed = f"[red]{s['rejected']}[/]" if s["rejected"] else "0"
        steps.add_row(escape(s["step"]), str(s["in"]), str(s["out"]), removed,
                      escape("; ".join(x for x in (reasons, notes) if x)), f"{s['seconds']:.1f}")
    leaves = LeafTable(title="per leaf", title_justify="left")
    labels = [s["step"] for s in counts["steps"]]
    leaves.add_column("leaf")
    leaves.add_column("in", justify="right")
    leaves.add_column("out", justify="right")
    for label in labels:
        leaves.add_column(f"-{label}", justify="right", style="red")
    for leaf, c in counts["by_leaf"].items():
        removed = Counter()
        for key, n in c["rejected"].items():
            removed[key.split(":", 1)[0]] += n
        out = str(c["out"]) if c["out"] else "[bold red]0[/]"
        leaves.add_row(escape(leaf), str(c["in"]), out, *[str(removed.get(label, 0)) for label in labels])
    return [steps, leaves]


def empty_explanation(counts: dict[str, Any]) -> str | None:
    """When nothing survived: what each step removed, and why."""
    if counts.get("out") or not counts.get("in"):  # a manifest without the funnel's counts says nothing
        return None
    removed = "; ".join(f"{s['step']} removed {s['rejected']} ("
                        + ", ".join(f"{r} {n}" for r, n in s["by_reason"].items()) + ")"
                        for s in counts["steps"] if s["rejected"])
    return (f"no samples left of {counts['in']}: {removed}. rejects.jsonl holds each one's reason and "
            f"detail; loosen the step that removed most in alignlab.yaml (curate.steps).")


def empty_curate_error(counts: dict[str, Any]) -> AlignlabError | None:
    """The error that ends a run when curate kept nothing: said by curate's summary, and again
    by mix when it is started on that empty output."""
    explanation = empty_explanation(counts)
    return AlignlabError(f"curate: {explanation}") if explanation else None
