"""What a generator declares about itself: `Generator(name, run, requests, shard)`.

Each generator module (knowledge, skills, magpie) holds its own declaration next to its steps;
`sdg.generators.GENERATORS` lists them, one line each. Progress totals and the Ray engine's
shards are read from the declaration, so neither needs to know the generators by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alignlab.sdg.candidates import Candidate
    from alignlab.sdg.steps import GenContext
    from alignlab.taxonomy.leaf import Leaf


def by_leaf(c: Candidate, chunks_per_shard: int) -> tuple:
    return (c.leaf,)


@dataclass(frozen=True)
class Generator:
    name: str  # what its candidates carry as `Candidate.generator`
    run: Callable[[GenContext, Sequence[Candidate], dict[str, Leaf]], None]
    # Teacher and judge requests a candidate sends when it survives every step: the progress
    # bars' totals (a candidate rejected early gives the rest back).
    requests: int
    # Candidates with the same key go to the same Ray task (they share a novelty pool).
    shard: Callable[[Candidate, int], tuple] = by_leaf
