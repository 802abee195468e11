"""Validate a taxonomy tree in one pass: the format (instructlab-schema), our own checks, and
that every knowledge leaf's documents can be found and read.

    problems = validate_taxonomy("taxonomy")
    for p in problems: print(p)          # path:line:col: message
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from alignlab.taxonomy import checks
from alignlab.taxonomy.documents import resolve_documents
from alignlab.taxonomy.leaf import FREEFORM_SKILL, GROUNDED_SKILL, KNOWLEDGE, Leaf, Problem
from alignlab.taxonomy.load import scan_taxonomy


def check_taxonomy(root: str | Path, *, max_seed_tokens: int | None = checks.DEFAULT_MAX_SEED_TOKENS,
                   count_tokens: checks.TokenCounter | None = None,
                   check_documents: bool = True) -> tuple[list[Leaf], list[Problem]]:
    """The leaves that follow the format, and every problem in the tree, sorted by file and line."""
    leaves, problems = scan_taxonomy(root, max_seed_tokens=max_seed_tokens, count_tokens=count_tokens)
    if check_documents:
        for leaf in leaves:
            problems += resolve_documents(leaf)[1]
    problems.sort(key=lambda p: (str(p.path), p.line, p.col))
    return leaves, problems


def validate_taxonomy(root: str | Path, **options) -> list[Problem]:
    """Every problem in the tree (an empty list when it is valid); see `check_taxonomy`."""
    return check_taxonomy(root, **options)[1]


_KIND_NAMES = {KNOWLEDGE: ("knowledge", "knowledge"), FREEFORM_SKILL: ("freeform skill", "freeform skills"),
               GROUNDED_SKILL: ("grounded skill", "grounded skills")}


def count_kinds(leaves: list[Leaf]) -> str:
    """"1 knowledge, 2 freeform skills, 1 grounded skill" (kinds with no leaf left out)."""
    counts = Counter(leaf.kind for leaf in leaves)
    return ", ".join(f"{counts[kind]} {_KIND_NAMES[kind][counts[kind] != 1]}"
                     for kind in _KIND_NAMES if counts[kind])


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"
