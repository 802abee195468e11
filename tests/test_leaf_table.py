"""Leaf paths in the CLI's tables stay on one line in an 80-column terminal, so they copy whole."""

from __future__ import annotations

from rich.console import Console

from alignlab.curate.funnel import funnel_tables
from alignlab.leaf_table import LeafTable
from alignlab.tally import counts_table

LEAVES = ("compositional_skills/writing/product_descriptions", "knowledge/geography/islands/kelmarra")


def printed(renderable, width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text().splitlines()


def test_generate_counts_keep_each_leaf_path_on_one_line_at_80_columns():
    reasons = ("low_question", "low_quality", "truncated", "unparseable")
    counts = {"by_reason": dict.fromkeys(reasons, 1),
              "by_leaf": {leaf: {"kept": 12, "rejected": dict.fromkeys(reasons, 3)} for leaf in LEAVES}}
    lines = printed(counts_table(counts, "generate"), 80)
    assert all(len(line) <= 80 for line in lines)
    for leaf in LEAVES:
        [row] = [line for line in lines if leaf in line]
        assert row.split()[1:] == ["12", "3", "3", "3", "3"]  # every value whole beside it
    assert printed(counts_table(counts, "generate"), 160)[1].startswith("┏")  # room enough: rich's own box


def test_curate_per_leaf_keeps_paths_whole_and_a_path_wider_than_the_screen_folds_uncut():
    steps = [{"step": s, "in": 9, "out": 9, "rejected": 0, "by_reason": {}, "notes": {}, "seconds": 0.1}
             for s in ("dedup", "decontaminate", "quality", "diversity")]
    leaves = {leaf: {"in": 9, "out": 9, "rejected": {}} for leaf in LEAVES}
    _, per_leaf = funnel_tables({"in": 18, "out": 18, "steps": steps, "by_leaf": leaves})
    lines = printed(per_leaf, 80)
    assert all(any(leaf in line for line in lines) for leaf in LEAVES)
    long_leaf = "compositional_skills/" + "very_deep/" * 9 + "leaf"
    table = LeafTable()
    table.add_column("leaf")
    table.add_column("kept", justify="right")
    table.add_row(long_leaf, "1")
    body = printed(table, 80)[2:]  # below the header and its rule
    assert body[0].split()[-1] == "1" and "".join(line.split()[0] for line in body) == long_leaf
