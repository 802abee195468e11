"""Uncertainty of the figures alignlab reports: every accuracy, judged score and win rate with
a 95 % interval, every before/after delta with a paired test.

    wilson(30, 41)                       # [0.58, 0.84]: interval of an accuracy of 30/41
    mean_interval([3.1, 2.4, 4.0, ...])  # bootstrap interval of a mean score
    paired_delta(before, after)          # {"delta", "ci", "p", "n", "test"} on the same items
    format_delta(d, points=True)         # "+14.6 points [+3.1, +26.0], p = 0.02"

Why these: an accuracy over a few dozen questions moves by several points between machines
(bf16 kernels differ between CPUs), so a figure without its interval cannot tell an effect from
noise. Wilson's interval behaves at 0 and 1 and on small n, where the normal approximation
gives intervals outside [0, 1]. A delta on the *same* questions is tested paired: McNemar's
exact test counts only the questions that changed (b gained, c lost), which is far more
powerful than comparing two independent intervals; continuous scores use a paired bootstrap.
The bootstrap is seeded, so a figure is reproducible byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_ROUNDS = 2000


def wilson(successes: float, n: int, z: float = Z95) -> list[float] | None:
    """Wilson score interval of a proportion; None when there is nothing to measure."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _bootstrap_means(values: Sequence[float], seed: int, rounds: int) -> list[float]:
    """Sorted means of `rounds` resamples with replacement."""
    data = np.asarray(values, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(data), size=(rounds, len(data)))
    return sorted(data[picks].mean(axis=1).tolist())


def _percentiles(sorted_means: Sequence[float]) -> list[float]:
    rounds = len(sorted_means)
    return [sorted_means[int(0.025 * rounds)], sorted_means[min(rounds - 1, int(0.975 * rounds))]]


def mean_interval(values: Sequence[float], seed: int = 0,
                  rounds: int = BOOTSTRAP_ROUNDS) -> list[float] | None:
    """Percentile bootstrap interval of a mean (judged scores, win rates)."""
    values = [float(v) for v in values]
    if not values:
        return None
    if len(values) == 1:
        return [values[0], values[0]]
    return _percentiles(_bootstrap_means(values, seed, rounds))


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar test: under no effect, each changed item is a fair coin."""
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_delta(before: Sequence[float], after: Sequence[float], seed: int = 0,
                 rounds: int = BOOTSTRAP_ROUNDS) -> dict[str, Any] | None:
    """Mean change over the same items, its 95 % interval and a p-value.

    Values that are all 0/1 (correct or not) get McNemar's exact test; others a paired
    bootstrap of the per-item differences, p being twice the share of resampled means on the
    other side of zero."""
    if len(before) != len(after):
        raise ValueError(f"paired_delta needs the same items: {len(before)} before, {len(after)} after")
    if not before:
        return None
    diffs = [float(a) - float(b) for b, a in zip(before, after)]
    delta = sum(diffs) / len(diffs)
    means = _bootstrap_means(diffs, seed, rounds) if len(diffs) > 1 else [delta]
    binary = all(v in (0, 1, True, False) for v in [*before, *after])
    if binary:
        gained = sum(d > 0 for d in diffs)
        lost = sum(d < 0 for d in diffs)
        p, test = mcnemar_p(gained, lost), "mcnemar"
        extra = {"gained": gained, "lost": lost}
    else:
        below = sum(m <= 0 for m in means) / len(means)
        above = sum(m >= 0 for m in means) / len(means)
        p, test, extra = min(1.0, 2 * min(below, above)), "paired_bootstrap", {}
    return {"delta": delta, "ci": _percentiles(means), "p": p, "n": len(diffs), "test": test, **extra}


def paired_items(before: dict[str, float], after: dict[str, float]) -> dict[str, Any] | None:
    """`paired_delta` over the items both sides have ({item: value} each), in a fixed order."""
    common = sorted(set(before) & set(after))
    return paired_delta([before[k] for k in common], [after[k] for k in common])


def significant(delta: dict[str, Any] | None) -> int:
    """+1 a gain whose interval lies above zero, -1 a loss below it, 0 anything else."""
    if not delta or delta.get("ci") is None:
        return 0
    lo, hi = delta["ci"]
    return 1 if lo > 0 else -1 if hi < 0 else 0


def format_interval(value: float | None, ci: Sequence[float] | None, points: bool = False) -> str:
    """`0.463 [0.316, 0.617]`, or `46.3 % [31.6, 61.7]` with points."""
    if value is None:
        return "-"
    scale, unit = (100, " %") if points else (1, "")
    digits = 1 if points else 3
    text = f"{value * scale:.{digits}f}{unit}"
    if ci is not None:
        text += f" [{ci[0] * scale:.{digits}f}, {ci[1] * scale:.{digits}f}]"
    return text


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def format_delta(d: dict[str, Any] | None, points: bool = False) -> str:
    """`+14.6 points [+3.1, +26.0], p = 0.02` (points: a delta of proportions)."""
    if not d:
        return "-"
    scale, unit, digits = (100, " points", 1) if points else (1, "", 3)
    lo, hi = d["ci"]
    return (f"{d['delta'] * scale:+.{digits}f}{unit} [{lo * scale:+.{digits}f}, {hi * scale:+.{digits}f}], "
            f"{format_p(d['p'])}")
