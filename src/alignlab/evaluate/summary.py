"""One-screen summaries of evaluation results: one column per model, one row per leaf and
metric; and the head-to-head comparison of two models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from alignlab.leaf_table import LeafTable
from alignlab.stats import format_interval

ALL = "(all)"


Measured = tuple[float | None, list[float] | None]  # a figure and its 95 % interval


def result_rows(results: Mapping[str, Any]) -> dict[tuple[str, str], Measured]:
    """{(metric, leaf): (value, interval)} of one model's results, in display order."""
    out: dict[tuple[str, str], Measured] = {}

    def add(metric: str, leaf: str, stats: Mapping[str, Any], key: str) -> None:
        out[(metric, leaf)] = (stats.get(key), stats.get(f"{key}_ci"))

    for section in ("mcq", "general"):
        summary = results.get(section)
        if summary:
            metric = f"{section} {summary['headline']}"
            for leaf, stats in summary["by_leaf"].items():
                add(metric, leaf, stats, summary["headline"])
            if len(summary["by_leaf"]) > 1:
                add(metric, ALL, summary["overall"], summary["headline"])
    judged = results.get("judged")
    if judged:
        metric = f"judged score {judged['scale'][0]}-{judged['scale'][1]}"
        for leaf, stats in judged["by_leaf"].items():
            add(metric, leaf, stats, "mean_score")
        if len(judged["by_leaf"]) > 1:
            add(metric, ALL, judged["overall"], "mean_score")
    for task, metrics in (results.get("lm_eval") or {}).items():
        for name in ("acc", "acc_norm", "exact_match"):
            if name in metrics:
                out[(f"lm-eval {name}", task)] = (metrics[name], None)
    return out


def _fmt_measured(measured: Measured | None) -> str:
    value, ci = measured or (None, None)
    return format_interval(value, ci)


def results_table(results_by_label: Mapping[str, Mapping[str, Any]]) -> Table:
    per_model = {label: result_rows(r) for label, r in results_by_label.items()}
    keys = list(dict.fromkeys(k for rows in per_model.values() for k in rows))
    table = LeafTable(title="evaluation (95 % intervals)", title_justify="left", leaf_column=1)
    table.add_column("metric", overflow="fold")
    table.add_column("leaf / task", overflow="fold")
    for label in per_model:
        table.add_column(label, justify="right")
    for metric, leaf in keys:
        table.add_row(metric, leaf, *[_fmt_measured(rows.get((metric, leaf))) for rows in per_model.values()])
    return table


def comparison_table(result: Mapping[str, Any]) -> Table:
    a, b = result["a"]["label"], result["b"]["label"]
    table = LeafTable(title=f"{a} vs {b} (judge {result['judge']}, tie band "
                            f"±{result['tie_band']})", title_justify="left")
    for name in ("leaf", f"win rate of {a} [95 % CI]", "wins", "ties", "losses", "unparseable"):
        table.add_column(name, justify="left" if name == "leaf" else "right", overflow="fold")
    leaves = dict(result["by_leaf"])
    if len(leaves) > 1:
        leaves[ALL] = result["overall"]
    for leaf, s in leaves.items():
        table.add_row(leaf, format_interval(s["win_rate"], s.get("win_rate_ci")), str(s["wins"]), str(s["ties"]),
                      str(s["losses"]), str(s["unparseable"]))
    return table
