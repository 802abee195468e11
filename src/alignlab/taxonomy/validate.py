"""Validate a taxonomy tree in one pass: InstructLab's verdict on every file (errors), our own
checks and whether every knowledge leaf's documents can be read now (warnings).

    problems = validate_taxonomy("taxonomy")
    for p in problems: print(p)          # path:line:col: message, or path:line:col: warning: message
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from alignlab.taxonomy import checks
from alignlab.taxonomy.documents import is_git_url, resolve_documents
from alignlab.taxonomy.leaf import FREEFORM_SKILL, GROUNDED_SKILL, KNOWLEDGE, WARNING, Leaf, Problem
from alignlab.taxonomy.load import scan_taxonomy


def check_taxonomy(root: str | Path, *,
                   max_seed_tokens: int | checks.SeedBudget | None = checks.DEFAULT_SEED_BUDGET,
                   count_tokens: checks.TokenCounter | None = None, check_documents: bool = True,
                   offline: bool = False) -> tuple[list[Leaf], list[Problem]]:
    """The leaves InstructLab accepts, and every problem in the tree sorted by file and line.

    Documents that cannot be read are warnings here: validation is about the files' format,
    and a repository out of reach now may be there when `generate` reads it (where it is an
    error). `offline` leaves remote repositories alone (see `remote_leaves`)."""
    leaves, problems = scan_taxonomy(root, max_seed_tokens=max_seed_tokens, count_tokens=count_tokens)
    if check_documents:
        for leaf in leaves:
            if offline and leaf in remote_leaves([leaf]):
                continue
            problems += [replace(p, severity=WARNING) for p in resolve_documents(leaf)[1]]
    problems.sort(key=lambda p: (str(p.path), p.line, p.col))
    return leaves, problems


def validate_taxonomy(root: str | Path, **options) -> list[Problem]:
    """Every problem in the tree (an empty list when it is valid); see `check_taxonomy`."""
    return check_taxonomy(root, **options)[1]


def remote_leaves(leaves: list[Leaf]) -> list[Leaf]:
    """Knowledge leaves whose documents live in a remote git repository (fetched over the network)."""
    return [leaf for leaf in leaves if leaf.document is not None and is_git_url(leaf.document.repo)]


def check_taxonomy_for(root: str | Path, config_file: Path, *, teacher: str | None = None,
                       max_seed_tokens: int | None = None, check_documents: bool = True,
                       offline: bool = False) -> tuple[list[Leaf], list[Problem]]:
    """`check_taxonomy` with the seed budget of the teacher given or configured in
    `config_file`: what `alignlab taxonomy validate` and `alignlab taxonomy show` both count,
    so the two commands never disagree on a tree's warnings."""
    budget = seed_limit(teacher, max_seed_tokens, config_file)
    return check_taxonomy(root, max_seed_tokens=budget, check_documents=check_documents, offline=offline)


def seed_limit(teacher: str | None, max_seed_tokens: int | None,
               config_file: Path) -> int | checks.SeedBudget | None:
    """The seed budget `validate` checks against: a number the user gave, else the teacher's
    (given, or the workspace config's when there is one, else the embedded model)."""
    if max_seed_tokens is not None:
        return max_seed_tokens
    base_dir = None
    if teacher is None and config_file.is_file():
        from alignlab.config import load_config

        cfg = load_config(config_file)
        teacher, base_dir = cfg.models.teacher, cfg.base_dir
    return checks.teacher_seed_budget(teacher or checks.DEFAULT_TEACHER, base_dir)


_KIND_NAMES = {KNOWLEDGE: ("knowledge", "knowledge"), FREEFORM_SKILL: ("freeform skill", "freeform skills"),
               GROUNDED_SKILL: ("grounded skill", "grounded skills")}


def count_kinds(leaves: list[Leaf]) -> str:
    """"1 knowledge, 2 freeform skills, 1 grounded skill" (kinds with no leaf left out)."""
    counts = Counter(leaf.kind for leaf in leaves)
    return ", ".join(f"{counts[kind]} {_KIND_NAMES[kind][counts[kind] != 1]}"
                     for kind in _KIND_NAMES if counts[kind])


def count_problems(problems: list[Problem]) -> str:
    """"2 errors, 1 warning" (a kind with none left out)."""
    errors = sum(p.is_error for p in problems)
    parts = [plural(errors, "error") if errors else "", plural(len(problems) - errors, "warning")
             if len(problems) > errors else ""]
    return ", ".join(part for part in parts if part)


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"
