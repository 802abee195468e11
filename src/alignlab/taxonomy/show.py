"""The taxonomy as a rich Tree: folders, then each leaf with its kind and seed counts."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.tree import Tree

from alignlab.taxonomy.leaf import KNOWLEDGE, Leaf, Problem
from alignlab.taxonomy.validate import count_problems

_STYLE = {"knowledge": "green", "freeform_skill": "cyan", "grounded_skill": "magenta"}


def leaf_label(leaf: Leaf) -> str:
    kind = leaf.kind.replace("_", " ")
    if leaf.kind == KNOWLEDGE:
        qas = sum(len(s.questions_and_answers) for s in leaf.seed_examples)
        counts = f"{len(leaf.seed_examples)} contexts, {qas} Q&A"
        if leaf.document:  # always set once the schema passed; checked for the type's sake
            patterns = ", ".join(leaf.document.patterns)
            counts += f", documents from {escape(leaf.document.repo)} ({escape(patterns)})"
    else:
        counts = f"{len(leaf.seed_examples)} seeds"
    extra = ", held-out MCQ" if leaf.heldout_mcq else ""
    return f"[{_STYLE[leaf.kind]}]{kind}[/] [dim]{counts}{extra}[/]"


def taxonomy_tree(root: str | Path, leaves: list[Leaf], problems: list[Problem]) -> Tree:
    """Folders nest as in the tree; a leaf shows its errors and warnings, one InstructLab
    rejects (or that holds nothing) shows as invalid, and a folder not read as a leaf (its
    file is named qna.yml) as not read."""
    labels = {leaf.path: leaf_label(leaf) for leaf in leaves}
    by_leaf: dict[str, list[Problem]] = {}
    for p in problems:
        if p.leaf:
            by_leaf.setdefault(p.leaf, []).append(p)
    for path, found in by_leaf.items():
        broken = any(p.is_error for p in found)
        note = f"[{'red' if broken else 'yellow'}]{count_problems(found)}[/]"
        unread = "[red]invalid[/]" if broken else "[yellow]not read[/]"  # e.g. a qna.yml
        labels[path] = f"{labels[path]} {note}" if path in labels else f"{unread} {note}"
    tree = Tree(f"[bold]{escape(str(root))}[/]")
    nodes: dict[str, Tree] = {}
    for path in sorted(labels):
        parent, prefix = tree, ""
        parts = [] if path == "." else path.split("/")
        for depth, part in enumerate(parts):
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix not in nodes:
                label = f"[bold]{escape(part)}[/]" if depth == len(parts) - 1 else escape(part) + "/"
                nodes[prefix] = parent.add(label)
            parent = nodes[prefix]
        parent.label = f"{parent.label}  {labels[path]}"
    return tree
