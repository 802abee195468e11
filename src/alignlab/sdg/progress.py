"""Live progress of generation: overall and per-leaf bars counting teacher requests, with
accepted/rejected counts, teacher tokens/s and ETA.

Each candidate plans a fixed number of requests (its generator's declared `requests`); a candidate
rejected early gives its remaining requests back, so the totals — and the ETA — shrink to
what is really left.

Per-leaf bars are shown for a taxonomy of up to `MAX_LEAF_BARS` leaves; a larger one shows the
overall bar only (the summary table after the run has every leaf). Each visible bar is redrawn
on every refresh, so a bar per leaf of a thousand-leaf taxonomy would cost the client more than
its requests do, and would not fit a screen anyway.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from rich.progress import Progress, TaskID

from alignlab.llm.types import OnDone, Response
from alignlab.sdg.candidates import Candidate
from alignlab.sdg.generators import generator

MAX_LEAF_BARS = 24


class GenerationProgress:
    def __init__(self, progress: Progress, candidates: Sequence[Candidate]):
        self.progress = progress
        self.started = time.perf_counter()
        self.tokens = 0
        self.rejected: Counter[str] = Counter()
        self.in_flight_limit: Callable[[], int | None] = lambda: None  # a served teacher's current limit
        # Requests each candidate makes if it survives every step, as its generator declares.
        self.left: dict[str, int] = {c.id: generator(c.generator).requests for c in candidates}
        per_leaf: Counter[str] = Counter()
        for c in candidates:
            per_leaf[c.leaf] += self.left[c.id]
        self.overall = progress.add_task("teacher requests", total=sum(per_leaf.values()), status="")
        shown = len(per_leaf) <= MAX_LEAF_BARS
        self.leaves: dict[str, TaskID] = {
            leaf: progress.add_task(f"  {leaf}", total=n, status="", visible=shown)
            for leaf, n in sorted(per_leaf.items())}

    def callback(self, candidates: Sequence[Candidate]) -> OnDone:
        def on_done(i: int, response: Response) -> None:
            c = candidates[i]
            self.left[c.id] -= 1
            self.tokens += sum(ch.completion_tokens for ch in response.choices)
            self.progress.advance(self.leaves[c.leaf])
            self.progress.advance(self.overall)
            self._status()
        return on_done

    def drop(self, c: Candidate) -> None:
        """A rejected candidate will send no more requests: take them off the totals."""
        self.rejected[c.leaf] += 1
        unspent, self.left[c.id] = self.left[c.id], 0
        for task in (self.leaves[c.leaf], self.overall):
            self.progress.update(task, total=self.progress.tasks[task].total - unspent)
        self.progress.update(self.leaves[c.leaf], status=f"rejected {self.rejected[c.leaf]}")
        self._status()

    def settle(self, candidates: Sequence[Candidate]) -> None:
        """A whole shard finished elsewhere (a Ray task): count its candidates as done."""
        for c in candidates:
            unspent, self.left[c.id] = self.left[c.id], 0
            if not c.alive:
                self.rejected[c.leaf] += 1
            self.progress.advance(self.leaves[c.leaf], unspent)
            self.progress.advance(self.overall, unspent)
        self._status()

    def finish_leaf(self, leaf: str, accepted: int) -> None:
        self.progress.update(self.leaves[leaf], status=f"accepted {accepted}, rejected {self.rejected[leaf]}")

    def _status(self) -> None:
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        limit = self.in_flight_limit()
        self.progress.update(self.overall, status=f"rejected {sum(self.rejected.values())}, "
                                                  f"{rate:.0f} teacher tokens/s"
                                                  + (f", in flight <= {limit}" if limit else ""))
