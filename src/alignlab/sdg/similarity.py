"""ROUGE-L between instructions, as Self-Instruct uses it: a new instruction joins a leaf's pool
only when its ROUGE-L F-measure against every instruction already there is below a threshold."""

from __future__ import annotations

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


@dataclass
class NoveltyPool:
    """The instructions of one leaf so far (seeds first); `admit` adds a text only if novel."""

    threshold: float = 0.7
    texts: list[str] = field(default_factory=list)
    _tokens: list[list[str]] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.texts.append(text)
        self._tokens.append(tokens(text))

    def closest(self, text: str) -> tuple[float, str | None]:
        candidate = tokens(text)
        best, match = 0.0, None
        for other, other_tokens in zip(self.texts, self._tokens):
            score = rouge_l(candidate, other_tokens)
            if score > best:
                best, match = score, other
        return best, match

    def admit(self, text: str) -> tuple[bool, float, str | None]:
        """(admitted, best ROUGE-L, the closest instruction); admitted texts join the pool."""
        score, match = self.closest(text)
        if score >= self.threshold:
            return False, score, match
        self.add(text)
        return True, score, match
