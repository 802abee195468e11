"""Requests and tokens sent to the teacher and judge, and what they cost: one form for the
dry run's plan (`sdg.dry_run`) and the real run's summary (`sdg.stage`), so the predicted and
the measured figures read the same and can be compared line by line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from alignlab.llm.types import Backend


@dataclass
class Traffic:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0  # in a plan: each request's max_tokens, the most it can cost

    def add(self, requests: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests += requests
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def plus(self, other: Traffic) -> Traffic:
        return Traffic(self.requests + other.requests, self.prompt_tokens + other.prompt_tokens,
                       self.completion_tokens + other.completion_tokens)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def cost(self, price_per_million_tokens: float | None) -> float | None:
        return None if price_per_million_tokens is None else self.tokens * price_per_million_tokens / 1e6

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def distinct_models(backends: Iterable[Backend]) -> list[Backend]:
    """Teacher and judge are often one model behind two wrappers: count its figures once."""
    return list({id(getattr(b, "backend", b)): b for b in backends}.values())


def sent_by(backends: Iterable[Backend]) -> Traffic:
    """What the models have sent so far, by their own counters (cache hits are not sent)."""
    total = Traffic()
    for b in distinct_models(backends):
        total.add(b.stats.requests, b.stats.prompt_tokens, b.stats.completion_tokens)
    return total


def since(before: Traffic, backends: Iterable[Backend]) -> Traffic:
    now = sent_by(backends)
    return Traffic(now.requests - before.requests, now.prompt_tokens - before.prompt_tokens,
                   now.completion_tokens - before.completion_tokens)


def traffic_line(t: Traffic, price: float | None, completion: str = "completion") -> str:
    """`12 requests, 3,400 prompt + 900 completion tokens[, cost 0.0043]`."""
    cost = t.cost(price)
    return (f"{t.requests:,} requests, {t.prompt_tokens:,} prompt + {t.completion_tokens:,} {completion} tokens"
            + ("" if cost is None else f", cost {cost:,.4f} (at {price:g} per million tokens)"))


def from_counts(counts: dict[str, Any]) -> Traffic | None:
    sent = counts.get("sent")
    return Traffic(**sent) if sent else None
