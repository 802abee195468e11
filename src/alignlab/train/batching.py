"""Which samples share a micro-batch.

`token_budget_batches` groups samples of similar length, so that a batch's padded size (rows x
longest row) stays within a token budget and padding is a small share, the way a multipack
sampler does; the order of the batches is shuffled per epoch with the seed, and every sample
lands in exactly one batch per epoch. `fixed_size_batches` is the plain alternative (shuffle,
cut every `batch_size` rows), kept for comparison in benchmarks/train_throughput.py.

Batches are lists of sample indices; `LazyBatches` turns them into tensors only when the loop
reaches them, so an epoch of batches costs no memory up front.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any


def _epoch_rng(seed: int, epoch: int) -> random.Random:
    # One stream per (seed, epoch): an epoch's batches never depend on how many came before,
    # so a resumed run rebuilds exactly the batches of the run it continues.
    return random.Random(f"{seed}:{epoch}")


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int, epoch: int
                         ) -> list[list[int]]:
    """Batches of indices into `lengths` with `len(batch) * max(lengths in batch) <= max_tokens`.

    Samples are sorted by length (ties in a seeded random order, so equal-length samples
    meet different neighbours each epoch) and cut greedily: a batch grows while the next,
    longer sample still fits the budget at its own length. The batch order is then shuffled.
    """
    too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
    if too_long:
        raise ValueError(f"{len(too_long)} samples are longer than the batch budget of "
                         f"{max_tokens} tokens (first: index {too_long[0]}, "
                         f"{lengths[too_long[0]]} tokens); filter them out first")
    rng = _epoch_rng(seed, epoch)
    keys = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], keys[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # `order` is ascending, so sample i is the longest of the batch once added.
        if current and (len(current) + 1) * lengths[i] > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def fixed_size_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffle the samples and cut every `batch_size` rows: each batch pads to its longest row."""
    order = list(range(n))
    _epoch_rng(seed, epoch).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def padding_share(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Padding tokens as a share of all tokens the batches feed through the model."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 1 - real / padded if padded else 0.0


class LazyBatches(Sequence):
    """A sequence of batches: index lists, collated into tensors when they are read."""

    def __init__(self, batches: list[list[int]], collate: Callable[[list[int]], dict[str, Any]]):
        self.indices = batches
        self.collate = collate

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.collate(b) for b in self.indices[i]]
        return self.collate(self.indices[i])
