"""ROUGE-L between instructions, as Self-Instruct uses it: a new instruction joins a leaf's pool
only when its ROUGE-L F-measure against every instruction already there is below a threshold."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F-measure (beta = 1) of two token lists."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall)


def occurrences(words: list[str]) -> list[tuple[str, int]]:
    """Each token with its occurrence number ("the", 0), ("the", 1): sets of these intersect
    exactly as the token multisets do, and a common subsequence never exceeds that overlap."""
    seen: dict[str, int] = {}
    out = []
    for w in words:
        out.append((w, seen.get(w, 0)))
        seen[w] = seen.get(w, 0) + 1
    return out


def min_overlap(length: int, threshold: float) -> int:
    """Fewest shared tokens any text must have with a `length`-token text to reach `threshold`.

    F = 2 L / (la + lb) >= t needs L >= t (la + lb) / 2, and L <= lb, so lb >= t la / (2 - t)
    and then L >= t la / (2 - t). Rounded down (and at least 1): a bound taken too low only
    costs a few more exact comparisons, never a missed one."""
    return max(1, math.floor(threshold * length / (2 - threshold) - 1e-9))


@dataclass
class NoveltyPool:
    """The instructions of one leaf so far (seeds first); `admit` adds a text only if novel.

    Comparing a new text with every text in the pool made a leaf's filtering quadratic (10 k
    questions: 50 M ROUGE-L computations). An index from each token occurrence to the texts that
    contain it finds every text that could reach the threshold: such a text shares at least
    `min_overlap` of the new text's `la` token occurrences, so it contains at least one of any
    `la - min_overlap + 1` of them; the rarest are looked up, a text found under too few of them
    to still reach the threshold is passed over, and only the rest are compared exactly. Decisions, and the score and closest text of a rejection, are those of
    the full comparison (`closest`): a text outside the index's answer scores below the
    threshold, so it can be neither the best of a rejection nor tie with it.
    """

    threshold: float = 0.7
    texts: list[str] = field(default_factory=list)
    _tokens: list[list[str]] = field(default_factory=list)
    _postings: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        words = tokens(text)
        index = len(self.texts)
        self.texts.append(text)
        self._tokens.append(words)
        for key in set(occurrences(words)):
            self._postings.setdefault(key, []).append(index)

    def closest(self, text: str) -> tuple[float, str | None]:
        """The best ROUGE-L against the whole pool, by comparing with every text (exact, slow)."""
        candidate = tokens(text)
        best, match = 0.0, None
        for other, other_tokens in zip(self.texts, self._tokens):
            score = rouge_l(candidate, other_tokens)
            if score > best:
                best, match = score, other
        return best, match

    def _reachable(self, words: list[str]) -> list[int]:
        """Indices, in pool order, of every text that could score >= threshold against `words`."""
        keys = occurrences(words)
        la = len(keys)
        probes = la - min_overlap(la, self.threshold) + 1
        rarest = sorted(keys, key=lambda k: len(self._postings.get(k, ())))[:probes]
        hits: dict[int, int] = {}
        for k in rarest:
            for i in self._postings.get(k, ()):
                hits[i] = hits.get(i, 0) + 1
        # A text missing `probes - c` of the probed occurrences shares at most la - probes + c
        # with the new text; it can reach the threshold only if that is >= t (la + lb) / 2.
        t = self.threshold
        return sorted(i for i, c in hits.items()
                      if la - probes + c >= t * (la + len(self._tokens[i])) / 2 - 1e-9)

    def admit(self, text: str) -> tuple[bool, float, str | None]:
        """(admitted, best ROUGE-L, the closest instruction); admitted texts join the pool.
        When admitted, the score and text are the closest among those that could have reached
        the threshold (0.0 and None when none could)."""
        words = tokens(text)
        best, match = 0.0, None
        if words:
            for i in self._reachable(words):
                score = rouge_l(words, self._tokens[i])
                if score > best:
                    best, match = score, self.texts[i]
        if best >= self.threshold:
            return False, best, match
        self.add(text)
        return True, best, match
