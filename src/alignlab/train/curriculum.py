"""The order pairs are played in: a curriculum over their `metadata["difficulty"]`.

Pairs with the same difficulty form a stage; stages are played easy → hard (the default,
following the observation that large-gap pairs teach the direction first and small-gap pairs
refine it), hard → easy, or `mixed` (one stage: a plain seeded shuffle). Within a stage the
order is shuffled with the seed and the epoch, so every epoch plays every pair exactly once, in
stage order, and a rerun with the same seed plays the same order.

Works on anything with `.id` and `.metadata` (a `Pair`, or a tokenised pair carrying its
metadata), so the same order can be applied before or after tokenisation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, get_args

from alignlab.errors import AlignlabError
from alignlab.train.config import CurriculumOrder

ORDERS: tuple[str, ...] = get_args(CurriculumOrder)


class HasMetadata(Protocol):
    id: str
    metadata: dict[str, Any]


P = TypeVar("P", bound=HasMetadata)


def difficulty_of(pair: HasMetadata) -> float:
    value = pair.metadata.get("difficulty")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AlignlabError(f"pair {pair.id}: metadata.difficulty is {value!r}, a number is needed for a "
                            f"curriculum (pairs built by alignlab.pairs carry one; or use order: mixed)")
    return float(value)


def curriculum_stages(pairs: Sequence[P], order: CurriculumOrder = "easy_to_hard") -> list[list[P]]:
    """Pairs grouped by difficulty, the groups in play order (input order inside a group)."""
    if order not in ORDERS:
        raise AlignlabError(f"unknown curriculum order {order!r}; choose one of {', '.join(ORDERS)}")
    if order == "mixed":
        return [list(pairs)] if pairs else []
    groups: dict[float, list[P]] = {}
    for pair in pairs:
        # Rounded so 1/3 computed two ways lands in the same stage.
        groups.setdefault(round(difficulty_of(pair), 9), []).append(pair)
    levels = sorted(groups, reverse=(order == "hard_to_easy"))
    return [groups[level] for level in levels]


def curriculum_order(pairs: Sequence[P], order: CurriculumOrder = "easy_to_hard", seed: int = 0,
                     epoch: int = 0) -> list[P]:
    """Every pair exactly once: stage after stage, shuffled within each stage."""
    return [pair for _, pair in _staged_order(pairs, order, seed, epoch)]


def _staged_order(pairs: Sequence[P], order: CurriculumOrder, seed: int, epoch: int) -> list[tuple[int, P]]:
    """`curriculum_order` with each pair's stage index beside it."""
    ordered: list[tuple[int, P]] = []
    for index, stage in enumerate(curriculum_stages(pairs, order)):
        # Sorting by id first makes the shuffle independent of the order pairs were read in.
        stage = sorted(stage, key=lambda p: p.id)
        random.Random(f"{seed}:{epoch}:{index}").shuffle(stage)
        ordered += [(index, pair) for pair in stage]
    return ordered


def curriculum_batches(pairs: Sequence[P], size: int, length: Callable[[P], int],
                       order: CurriculumOrder = "easy_to_hard", seed: int = 0, epoch: int = 0,
                       window: int = 8) -> list[list[P]]:
    """`curriculum_order` cut into batches of `size`, with less padding: every run of `window`
    batches is re-sorted by (stage, length) before it is cut, so a batch holds pairs of one
    stage and of similar length. A batch is as wide as its longest row, so mixing short and long
    pairs pads them all to the long one: 40 % of the demo's DPO tokens were padding. The stages
    are still played in order and every pair once per epoch; only neighbours within a window
    trade places (as `group_by_length` batching does in Hugging Face's Trainer)."""
    staged = _staged_order(pairs, order, seed, epoch)
    batches: list[list[P]] = []
    for start in range(0, len(staged), size * window):
        chunk = [pair for _, pair in sorted(staged[start:start + size * window],
                                            key=lambda sp: (sp[0], length(sp[1])))]
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    return batches


def stage_sizes(pairs: Sequence[HasMetadata],
                order: CurriculumOrder = "easy_to_hard") -> list[tuple[float | None, int]]:
    """(difficulty, number of pairs) per stage in play order, for the summary line."""
    if order == "mixed":
        return [(None, len(pairs))] if pairs else []
    return [(difficulty_of(stage[0]), len(stage)) for stage in curriculum_stages(pairs, order)]
