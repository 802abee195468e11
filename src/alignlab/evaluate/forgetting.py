"""Forgetting: the same evaluation before and after a training phase, leaf by leaf.

A phase that teaches new knowledge may cost the model what it knew (the general MCQ set) or
skills it had (judged prompts); a phase that teaches skills may cost the knowledge of the phase
before. `forgetting_rows(before, after)` lines up two results of `evaluate_model` and gives
one row per leaf and metric with the change, tested paired on the items both models answered;
`forgetting_table` prints them, gains whose interval lies above zero in green and losses below
it in red.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from alignlab.evaluate.summary import ALL
from alignlab.leaf_table import LeafTable
from alignlab.stats import format_delta, paired_items, significant


def _metrics(result: dict[str, Any]) -> dict[tuple[str, str], tuple[float | None, dict[str, float]]]:
    """{(leaf, metric): (value, {item: value})} of one evaluation result."""
    out: dict[tuple[str, str], tuple[float | None, dict[str, float]]] = {}
    for section in ("mcq", "general", "judged"):
        summary = result.get(section)
        if not summary:
            continue
        metrics = ({"judge_score": "mean_score"} if section == "judged" else
                   {f"{section}_{summary.get('headline', 'acc')}": summary.get("headline", "acc"),
                    f"{section}_margin": "margin", f"{section}_p_right": "p_right"})
        groups = dict(summary.get("by_leaf", {}))
        if len(groups) > 1:
            groups[ALL] = summary.get("overall", {})
        for leaf, stats in groups.items():
            for name, key in metrics.items():
                if key in stats:
                    out[(leaf, name)] = (stats[key], (stats.get("per_item") or {}).get(key, {}))
    return out


def forgetting_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows `{leaf, metric, before, after, delta, paired}`; `paired` is the change on the items
    both models answered, with its 95 % interval and p-value (McNemar for accuracies). A leaf
    evaluated only on one side has a None on the other and no delta."""
    b, a = _metrics(before), _metrics(after)
    keys = sorted(set(b) | set(a), key=lambda k: (k[1], k[0] == ALL, k[0]))
    rows = []
    for leaf, metric in keys:
        (x, items_x), (y, items_y) = b.get((leaf, metric), (None, {})), a.get((leaf, metric), (None, {}))
        paired = paired_items(items_x, items_y)
        rows.append({"leaf": leaf, "metric": metric, "before": x, "after": y,
                     "delta": None if x is None or y is None else y - x, "paired": paired})
    return rows


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def delta_text(row: dict[str, Any], tolerance: float = 0.0) -> str:
    """The change with its interval, coloured only when the interval excludes zero: a delta
    inside the noise is shown as such, not as a gain or a loss."""
    paired, d = row.get("paired"), row["delta"]
    if not paired:
        return _fmt(d, True)
    text = format_delta(paired, points=row["metric"].endswith(("acc", "acc_norm")))
    direction = significant(paired)
    if direction == 0 or abs(paired["delta"]) <= tolerance:
        return text
    return f"[{'green' if direction > 0 else 'red'}]{text}[/]"


def forgetting_table(rows: Sequence[dict[str, Any]], before_label: str = "before",
                     after_label: str = "after", tolerance: float = 0.0) -> Table:
    """Gains green, losses (beyond `tolerance`) red."""
    table = LeafTable(title=f"{before_label} -> {after_label}", title_justify="left", leaf_column=1)
    for name, justify in (("metric", "left"), ("leaf", "left"), (before_label, "right"),
                          (after_label, "right"), ("delta [95 % CI], paired test", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r["metric"], r["leaf"], _fmt(r["before"]), _fmt(r["after"]), delta_text(r, tolerance))
    return table
