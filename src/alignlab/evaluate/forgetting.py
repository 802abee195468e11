"""Forgetting: the same evaluation before and after a training phase, leaf by leaf.

A phase that teaches new knowledge may cost the model what it knew (the general MCQ set) or
skills it had (judged prompts); a phase that teaches skills may cost the knowledge of the phase
before. `forgetting_rows(before, after)` lines up two results of `evaluate_model` and gives
one row per leaf and metric with the change; `forgetting_table` prints them, gains in green
and losses in red.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from alignlab.evaluate.summary import ALL


def _metrics(result: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """{(leaf, metric): value} of one evaluation result."""
    out: dict[tuple[str, str], float | None] = {}
    for section, metric_of in (("mcq", None), ("general", None), ("judged", "mean_score")):
        summary = result.get(section)
        if not summary:
            continue
        metric = metric_of or summary.get("headline", "acc")
        name = {"mcq": f"mcq_{metric}", "general": f"general_{metric}",
                "judged": "judge_score"}[section]
        for leaf, stats in summary.get("by_leaf", {}).items():
            out[(leaf, name)] = stats.get(metric)
        if len(summary.get("by_leaf", {})) > 1:
            out[(ALL, name)] = summary.get("overall", {}).get(metric)
    return out


def forgetting_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows `{leaf, metric, before, after, delta}`; a leaf evaluated only on one side has a
    None on the other and no delta."""
    b, a = _metrics(before), _metrics(after)
    keys = sorted(set(b) | set(a), key=lambda k: (k[1], k[0] == ALL, k[0]))
    rows = []
    for leaf, metric in keys:
        x, y = b.get((leaf, metric)), a.get((leaf, metric))
        rows.append({"leaf": leaf, "metric": metric, "before": x, "after": y,
                     "delta": None if x is None or y is None else y - x})
    return rows


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def forgetting_table(rows: Sequence[dict[str, Any]], before_label: str = "before",
                     after_label: str = "after", tolerance: float = 0.0) -> Table:
    """Gains green, losses (beyond `tolerance`) red."""
    table = Table(title=f"{before_label} -> {after_label}", title_justify="left")
    for name, justify in (("metric", "left"), ("leaf", "left"), (before_label, "right"),
                          (after_label, "right"), ("delta", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        d = r["delta"]
        style = "" if d is None or abs(d) <= tolerance else ("green" if d > 0 else "red")
        table.add_row(r["metric"], r["leaf"], _fmt(r["before"]), _fmt(r["after"]),
                      f"[{style}]{_fmt(d, True)}[/]" if style else _fmt(d, True))
    return table
