"""Errors a taxonomy can cause: an invalid tree, an unreadable document, a git ref that is not there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alignlab.errors import AlignlabError

if TYPE_CHECKING:
    from alignlab.taxonomy.leaf import Problem


class TaxonomyError(AlignlabError):
    """The taxonomy tree cannot be read (missing folder, not a git repository, unknown ref)."""


class TaxonomyInvalid(TaxonomyError):
    """One or more qna.yaml files break the format; `problems` lists each as path:line:col."""

    def __init__(self, problems: list[Problem], limit: int = 20):
        self.problems = problems
        lines = [str(p) for p in problems[:limit]]
        if len(problems) > limit:
            lines.append(f"... and {len(problems) - limit} more (run `alignlab taxonomy validate`)")
        super().__init__(f"the taxonomy has {len(problems)} problem(s):\n" + "\n".join(lines))


class DocumentError(TaxonomyError):
    """A knowledge leaf's documents cannot be resolved or read; the message says where."""
