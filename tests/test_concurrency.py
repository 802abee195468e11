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


def test_a_freed_slot_wakes_one_waiter_and_a_cancelled_waiter_passes_its_turn_on():
    """Each release wakes one waiting request, not all of them (a step's thousands of queued
    requests each re-checked the limit on every release); a waiter cancelled after it was
    woken hands the wake-up to the next, so no request is left waiting with a slot free."""

    async def main() -> tuple[int, list[int]]:
        limit = AdaptiveLimit(1)
        checks = [0]
        counted = limit._changed.wait_for

        async def counting(predicate):
            return await counted(lambda: (checks.__setitem__(0, checks[0] + 1), predicate())[1])
        limit._changed.wait_for = counting
        done: list[int] = []

        async def one(k: int) -> None:
            async with limit:
                await asyncio.sleep(0.001)
            done.append(k)

        holder = asyncio.Event()

        async def hold() -> None:
            async with limit:
                await holder.wait()
        first = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiters = [asyncio.create_task(one(k)) for k in range(50)]
        await asyncio.sleep(0.01)  # all fifty queued behind the held slot
        checks[0] = 0
        holder.set()
        await first
        waiters[0].cancel()  # the one the release woke is cancelled before it runs
        # a lost wake-up would leave the other 49 waiting forever: bounded, it fails instead
        await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), timeout=30)
        return checks[0], done

    checks, done = asyncio.run(main())
    assert sorted(done) == list(range(1, 50))  # every other request went through
    assert checks < 200  # about one check per release, not fifty (was 50 + 49 + ... + 1)
