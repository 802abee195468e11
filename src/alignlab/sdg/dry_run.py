"""`alignlab generate --dry-run`: what generate would send the teacher and judge, before it does.

    alignlab generate -c alignlab.yaml --dry-run [--leaf 'knowledge/*'] [--probe 4]

Prints, per leaf and in total, the requests and tokens of the plan, the time they would take
at the teacher's measured rate, and their cost when `backend.price_per_million_tokens` is set.
It is generate itself with the models swapped: the real plan (`sdg.stage.plan`) through the
real generators (`sdg.generators.run_generators`) on a `PlanningBackend` (`sdg.planner`), so
the counts are those of the requests generate builds. The time comes from a probe: for each
kind of request (model and parameters: a verdict and an answer cost very different times), a
uniform sample of the planned ones (as long as the plan's: they quote the stand-in's longest
replies) sent to the real model in one batch, bypassing the request cache, and scaled by that
kind's count. Nothing is written: no stage directory, no cache file, no cached answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from alignlab.config import Config
from alignlab.errors import ServerUnreachable
from alignlab.leaf_table import LeafTable
from alignlab.llm.probe import TYPICAL_SERVER
from alignlab.llm.types import Backend
from alignlab.sdg.generators import open_models, run_generators
from alignlab.sdg.judges import backend_judge_method
from alignlab.sdg.planner import PlanningBackend, ProbeSample
from alignlab.sdg.stage import leaf_documents, leaf_windows, plan, select_leaves
from alignlab.sdg.steps import GenContext
from alignlab.sdg.traffic import Traffic, distinct_models, sent_by, since, traffic_line

# Requests of each kind sent to time it: enough to average a kind's replies, few enough that a
# CPU teacher answers the plan's few kinds in a minute or two.
PROBE_PER_KIND = 4


@dataclass
class KindTiming:
    """One kind of request: how many the plan sends, and how long the probe's batch of them took."""

    planned: int
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    width: int = 1  # how many of them a real run works on at once (local batch, requests in flight)


@dataclass
class Probe:
    kinds: list[KindTiming] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(k.sent for k in self.kinds)

    @property
    def failed(self) -> int:
        return sum(k.failed for k in self.kinds)

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kinds)

    def estimate(self) -> tuple[float, float] | None:
        """(low, high) seconds for the whole plan, or None when a kind has no answered probe.
        High: nothing runs more at once than the probe's batch did, so each kind costs its count
        times its time per probed request. Low: a real run's full batch (or full set of requests
        in flight) costs what the probe's batch cost. A model's truth lies between: batching
        more rows or keeping more in flight is cheaper per request, but not free."""
        low = high = 0.0
        for k in self.kinds:
            answered = k.sent - k.failed
            if not answered:
                return None
            high += k.seconds / answered * k.planned
            low += k.seconds * math.ceil(k.planned / max(k.width, k.sent))
        return low, high


@dataclass
class DryRun:
    by_leaf: dict[str, Traffic]
    candidates: dict[str, int]  # leaf -> candidates
    repairs: Traffic  # the most that JSON verdicts failing to parse would add
    probe: Probe
    probe_per_kind: int
    failed_leaves: dict[str, str] = field(default_factory=dict)  # leaf -> why its documents failed
    unreachable: dict[str, str] = field(default_factory=dict)  # model -> what was assumed of it, and why

    @property
    def total(self) -> Traffic:
        total = Traffic()
        for t in self.by_leaf.values():
            total = total.plus(t)
        return total


def dry_run(cfg: Config, *, leaf_pattern: str | None = None, probe_per_kind: int | None = None,
            models: tuple[Backend, Backend] | None = None, console: Console | None = None) -> DryRun:
    """Plan generate without running it; `models` (teacher, judge) replaces the configured ones
    (tests); `probe_per_kind` (requests of each kind sent to time it) defaults to PROBE_PER_KIND."""
    leaves = select_leaves(cfg, leaf_pattern, console)
    documents, failed = leaf_documents(leaves)
    leaves = [leaf for leaf in leaves if leaf.path not in failed]
    teacher, judge = models or open_models(cfg, cached=False)  # a cache would be a trace
    distinct = distinct_models((teacher, judge))  # a teacher that is also the judge is one model
    unreachable = plan_offline(distinct)
    work = plan(cfg, leaves, documents, teacher.count_tokens)
    per_kind = PROBE_PER_KIND if probe_per_kind is None else probe_per_kind
    per_kind = 0 if unreachable else per_kind  # nothing to time
    sample = ProbeSample(per_kind)
    # One planner per distinct model, so a teacher that is also the judge is counted once.
    planners = {id(_model(b)): PlanningBackend(b, cfg.generate, sample) for b in distinct}
    ctx = GenContext(teacher=planners[id(_model(teacher))], judge=planners[id(_model(judge))],
                     settings=cfg.generate)
    by_leaf: dict[str, Traffic] = {}
    candidates: dict[str, int] = {}
    # A window of size 1 is one leaf: novelty pools never cross a leaf, so running the leaves
    # one by one asks what the whole run asks, and says which leaf asks it.
    for window in leaf_windows(work.candidates, 1):
        before = sent_by(planners.values())
        run_generators(ctx, window, work.leaves)
        by_leaf[window[0].leaf] = since(before, planners.values())
        candidates[window[0].leaf] = len(window)
    repairs = Traffic()
    for p in planners.values():
        repairs = repairs.plus(p.repairs)
    return DryRun(by_leaf, candidates, repairs, probe(sample), per_kind, failed, unreachable)


def plan_offline(models: Sequence[Any]) -> dict[str, str]:
    """A server that cannot be reached yet (a fleet still starting) is planned for as the
    usual one (`TYPICAL_SERVER`, under `backend.server:`), its tokens counted here; returns
    model -> what was assumed and why, for the plan to say."""
    unreachable = {}
    for backend in models:
        model = _model(backend)
        try:
            backend_judge_method(model)  # served models ask the server what it can do
        except ServerUnreachable as e:
            model.assume(TYPICAL_SERVER)
            counted = (f"by {model.tokenizer_spec}'s tokenizer" if model.tokenizer is not None else
                       "as 4 characters each (models.teacher_tokenizer counts them exactly)")
            unreachable[model.model_id] = (
                f"{e}\n  so {model.model_id} is planned as a vLLM-like server ({TYPICAL_SERVER.describe()}; "
                f"`backend.server:` says otherwise), its tokens counted {counted}, with no time estimate "
                f"until it answers")
    return unreachable


def _model(backend: Any) -> Any:
    """The model behind a request-cache wrapper: the probe must not write answers into it."""
    return getattr(backend, "backend", backend)


def probe(sample: ProbeSample) -> Probe:
    """Send each kind's sampled requests to its real model in one batch, as generate's steps
    send theirs: a local model batches them together and a server has them in flight at once."""
    result = Probe()
    for kind in sample.kinds.values():
        timing = KindTiming(kind.count, width=kind.model.parallel_width)
        if kind.sample:
            started = time.perf_counter()
            responses = kind.model.generate(kind.sample)
            timing.seconds = time.perf_counter() - started
            timing.sent = len(kind.sample)
            timing.failed = sum(not r.ok for r in responses)
        result.kinds.append(timing)
    return result


def print_dry_run(console: Console, cfg: Config, result: DryRun) -> None:
    price = cfg.backend.price_per_million_tokens
    table = LeafTable(title="generate --dry-run: what generate would send, per leaf", title_justify="left")
    table.add_column("leaf")
    for name in ("candidates", "requests", "prompt tokens", "completion tokens (at most)"):
        table.add_column(name, justify="right")
    if price is not None:
        table.add_column("cost", justify="right")

    def row(name: str, candidates: int, t: Traffic) -> list[str]:
        cells = [name, f"{candidates:,}", f"{t.requests:,}", f"{t.prompt_tokens:,}", f"{t.completion_tokens:,}"]
        if price is not None:
            cells.append(f"{t.cost(price):,.4f}")
        return cells

    for leaf, t in result.by_leaf.items():
        table.add_row(*row(leaf, result.candidates[leaf], t))
    total = result.total
    table.add_row(*[f"[bold]{c}[/]" for c in row("total", sum(result.candidates.values()), total)])
    console.print(table)
    for leaf, why in result.failed_leaves.items():
        console.print(f"[yellow]{leaf}: not planned, its documents cannot be read: {why}[/]", highlight=False)
    for note in result.unreachable.values():
        console.print(note, style="yellow", markup=False, highlight=False)
    console.print(f"generate would send {traffic_line(total, price, completion='completion (at most)')}",
                  highlight=False)
    if result.repairs.requests:
        console.print(f"  and up to {traffic_line(result.repairs, price, completion='completion')} more, "
                      f"for JSON verdicts that do not parse", highlight=False)
    p = result.probe
    if (estimate := p.estimate()) is not None:  # in total only: a few requests per kind time the plan's mix
        low, high = estimate
        widths = sorted({k.width for k in p.kinds})
        console.print(f"about {duration(low)} to {duration(high)}, timed by {p.requests - p.failed} sampled "
                      f"requests of {len(p.kinds)} kinds ({p.seconds:.1f}s, up to {result.probe_per_kind} of a "
                      f"kind at once): the first if a run's batch of {'/'.join(map(str, widths))} takes as long "
                      f"as the probe's, the second if it takes proportionally longer", highlight=False)
    elif p.requests:
        console.print(f"[yellow]no time estimate: every probe request of a kind failed "
                      f"({p.failed} of {p.requests} failed)[/]", highlight=False)
    console.print("[dim]counted as if every candidate passed every step (rejects send fewer), before the "
                  "request cache (answers it holds are not sent again); nothing was written[/]")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
