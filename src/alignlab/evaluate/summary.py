"""One-screen summaries of evaluation results: one column per model, one row per leaf and
metric; and the head-to-head comparison of two models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

ALL = "(all)"


def result_rows(results: Mapping[str, Any]) -> dict[tuple[str, str], float | None]:
    """{(metric, leaf): value} of one model's results, in display order."""
    out: dict[tuple[str, str], float | None] = {}
    for section in ("mcq", "general"):
        summary = results.get(section)
        if summary:
            metric = f"{section} {summary['headline']}"
            for leaf, stats in summary["by_leaf"].items():
                out[(metric, leaf)] = stats[summary["headline"]]
            if len(summary["by_leaf"]) > 1:
                out[(metric, ALL)] = summary["overall"][summary["headline"]]
    judged = results.get("judged")
    if judged:
        metric = f"judged score {judged['scale'][0]}-{judged['scale'][1]}"
        for leaf, stats in judged["by_leaf"].items():
            out[(metric, leaf)] = stats["mean_score"]
        if len(judged["by_leaf"]) > 1:
            out[(metric, ALL)] = judged["overall"]["mean_score"]
    for task, metrics in (results.get("lm_eval") or {}).items():
        for name in ("acc", "acc_norm", "exact_match"):
            if name in metrics:
                out[(f"lm-eval {name}", task)] = metrics[name]
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def results_table(results_by_label: Mapping[str, Mapping[str, Any]]) -> Table:
    per_model = {label: result_rows(r) for label, r in results_by_label.items()}
    keys = list(dict.fromkeys(k for rows in per_model.values() for k in rows))
    table = Table(title="evaluation", title_justify="left")
    table.add_column("metric", overflow="fold")
    table.add_column("leaf / task", overflow="fold")
    for label in per_model:
        table.add_column(label, justify="right")
    for metric, leaf in keys:
        table.add_row(metric, leaf, *[_fmt(rows.get((metric, leaf))) for rows in per_model.values()])
    return table


def comparison_table(result: Mapping[str, Any]) -> Table:
    a, b = result["a"]["label"], result["b"]["label"]
    table = Table(title=f"{a} vs {b} (judge {result['judge']}, tie band "
                        f"±{result['tie_band']})", title_justify="left")
    for name in ("leaf", f"win rate of {a}", "wins", "ties", "losses", "unparseable"):
        table.add_column(name, justify="left" if name == "leaf" else "right", overflow="fold")
    leaves = dict(result["by_leaf"])
    if len(leaves) > 1:
        leaves[ALL] = result["overall"]
    for leaf, s in leaves.items():
        table.add_row(leaf, _fmt(s["win_rate"]), str(s["wins"]), str(s["ties"]),
                      str(s["losses"]), str(s["unparseable"]))
    return table
