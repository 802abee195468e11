"""The in-flight limit: a ceiling that halves on overload, grows back by successes, and paces
requests under per-minute caps."""

from __future__ import annotations

import asyncio
import time

from alignlab.llm.concurrency import AdaptiveLimit


def test_overload_halves_once_per_burst_and_successes_grow_it_back():
    limit = AdaptiveLimit(8, cooldown=60.0)
    limit.overloaded()
    limit.overloaded()  # the same burst: every request that was in flight together fails
    assert limit.current == 4
    limit.cooldown = 0.0
    limit.overloaded()
    assert limit.current == 2
    for _ in range(3):  # +1/limit each: about a window of successes adds one slot
        limit.success()
    assert limit.current == 3
    for _ in range(100):
        limit.success()
    assert limit.current == 8  # never above the ceiling


def test_no_more_requests_in_flight_than_the_current_limit():
    async def main() -> tuple[int, int]:
        limit = AdaptiveLimit(6, cooldown=0.0)
        peak_after = 0

        async def request(k: int) -> None:
            nonlocal peak_after
            async with limit:
                if k == 0:
                    limit.overloaded()  # 6 -> 3
                    limit.overloaded()  # 3 -> 1
                await asyncio.sleep(0.01)
                if k > 6:
                    peak_after = max(peak_after, limit.active)

        await asyncio.gather(*(request(k) for k in range(30)))
        return peak_after, limit.current

    peak_after, current = asyncio.run(main())
    assert peak_after <= 2 and current >= 1


def test_requests_per_minute_paces_the_starts():
    async def main() -> float:
        limit = AdaptiveLimit(10, requests_per_minute=600)  # one start per 0.1 s
        started = time.monotonic()

        async def request() -> None:
            async with limit:
                pass

        await asyncio.gather(*(request() for _ in range(5)))
        return time.monotonic() - started

    assert asyncio.run(main()) >= 0.38
