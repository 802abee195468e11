"""What a generator declares about itself: `Generator(name, run, requests, leaf_kind, plan, shard)`.

Each generator module (knowledge, skills, magpie) holds its own declaration next to its steps;
`sdg.generators.GENERATORS` lists them, one line each. The plan (which candidates to make),
progress totals and the Ray engine's shards are read from the declaration, so none of them
needs to know the generators by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alignlab.config import Config
    from alignlab.sdg.candidates import Candidate
    from alignlab.sdg.steps import GenContext
    from alignlab.taxonomy.chunking import Chunk
    from alignlab.taxonomy.leaf import Leaf


@dataclass(frozen=True)
class PlanInputs:
    """What a generator plans its candidates from. The chunks are cut once, by the stage,
    because they are also samples themselves and `chunks.jsonl`."""

    cfg: Config
    chunks: dict[str, list[Chunk]]  # knowledge leaf -> its document chunks


def by_leaf(c: Candidate, chunks_per_shard: int) -> tuple:
    return (c.leaf,)


@dataclass(frozen=True)
class Generator:
    name: str  # what its candidates carry as `Candidate.generator`
    run: Callable[[GenContext, Sequence[Candidate], dict[str, Leaf]], None]
    # Teacher and judge requests a candidate sends when it survives every step: the progress
    # bars' totals (a candidate rejected early gives the rest back).
    requests: int
    # Its candidates are `plan(leaf, inputs)` for every leaf of kind `leaf_kind`, in taxonomy
    # order; a generator of no leaf (`leaf_kind=None`: MAGPIE) is planned once, `plan(None,
    # inputs)`, after every leaf's.
    leaf_kind: str | None
    plan: Callable[[Leaf | None, PlanInputs], list[Candidate]]
    # Candidates with the same key go to the same Ray task (they share a novelty pool).
    shard: Callable[[Candidate, int], tuple] = by_leaf
