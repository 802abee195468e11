"""How many requests a server gets at once: `max_in_flight` is a ceiling, not a target.

Additive increase, multiplicative decrease (as TCP does): every success lets the limit grow by
1/limit (one more slot after a whole window of successes); a 429, a 5xx or a timeout halves
it, at most once per `cooldown` seconds so that one burst of failures (all the requests that
were in flight together) counts as one signal. Optional caps for hosted APIs pace request
starts (`requests_per_minute`) and hold new requests while the last minute's tokens exceed
`tokens_per_minute`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class AdaptiveLimit:
    def __init__(self, ceiling: int, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, cooldown: float = 1.0):
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.active = 0
        self.cooldown = cooldown
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._changed = asyncio.Condition()
        self._last_cut = -float("inf")
        self._next_start = 0.0
        self._tokens: deque[tuple[float, int]] = deque()

    @property
    def current(self) -> int:
        return max(1, int(self.limit))

    async def __aenter__(self) -> AdaptiveLimit:
        async with self._changed:
            try:
                await self._changed.wait_for(lambda: self.active < self.current)
            except asyncio.CancelledError:
                self._changed.notify(1)  # a wake-up this request may have taken goes to the next
                raise
            self.active += 1
        await self._pace()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # One slot freed wakes one waiter: waking all of them (thousands while a step's requests
        # queue behind the limit) made every request cost in proportion to the queue.
        async with self._changed:
            self.active -= 1
            self._changed.notify(1)

    async def _pace(self) -> None:
        if self.requests_per_minute:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 60.0 / self.requests_per_minute
            if start > now:
                await asyncio.sleep(start - now)
        while self.tokens_per_minute and self._spent_last_minute() >= self.tokens_per_minute:
            await asyncio.sleep(max(0.05, self._tokens[0][0] + 60.0 - time.monotonic()))

    def _spent_last_minute(self) -> int:
        cutoff = time.monotonic() - 60.0
        while self._tokens and self._tokens[0][0] < cutoff:
            self._tokens.popleft()
        return sum(n for _, n in self._tokens)

    def spent(self, tokens: int) -> None:
        if self.tokens_per_minute and tokens > 0:
            self._tokens.append((time.monotonic(), tokens))

    def success(self) -> None:
        before = self.current
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        if self.current > before:
            self._wake()

    def overloaded(self) -> None:
        now = time.monotonic()
        if now - self._last_cut >= self.cooldown:
            self._last_cut = now
            self.limit = max(1.0, self.limit / 2)

    def _wake(self) -> None:
        # Growing the limit lets a waiting request start; waking from sync code needs the loop.
        async def notify() -> None:
            async with self._changed:
                self._changed.notify(1)
        try:
            asyncio.get_running_loop().create_task(notify())
        except RuntimeError:
            pass
