"""`alignlab generate --dry-run`: what generate would send the teacher and judge, before it does.

    alignlab generate -c alignlab.yaml --dry-run [--leaf 'knowledge/*'] [--probe 8]

Prints, per leaf and in total, the requests and tokens of the plan, the time they would take
at the teacher's measured rate, and their cost when `backend.price_per_million_tokens` is set.
It is generate itself with the models swapped: the real plan (`sdg.stage.plan`) through the
real generators (`sdg.generators.run_generators`) on a `PlanningBackend` (`sdg.planner`), so
the counts are those of the requests generate builds. The rate comes from a probe: a uniform
sample of the planned requests (as long as the plan's: they quote the stand-in's longest
replies) sent to the real models, bypassing the request cache. Nothing is written: no stage directory, no cache file, no cached answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from alignlab.config import Config
from alignlab.llm.types import Backend
from alignlab.sdg.generators import open_models, run_generators
from alignlab.sdg.planner import PlanningBackend, ProbeSample
from alignlab.sdg.stage import leaf_documents, leaf_windows, magpie_enabled, plan, select_leaves
from alignlab.sdg.steps import GenContext
from alignlab.sdg.traffic import Traffic, distinct_models, sent_by, since, traffic_line

# Enough requests to see the plan's mix of short verdicts and long answers, few enough that
# a CPU teacher answers them in a minute or so.
PROBE_REQUESTS = 8


@dataclass
class Probe:
    """Planned requests sent to the real models, and how long they took."""

    requests: int = 0
    seconds: float = 0.0
    failed: int = 0

    def seconds_for(self, requests: int) -> float | None:
        answered = self.requests - self.failed
        return self.seconds / answered * requests if answered else None


@dataclass
class DryRun:
    by_leaf: dict[str, Traffic]
    candidates: dict[str, int]  # leaf -> candidates
    repairs: Traffic  # the most that JSON verdicts failing to parse would add
    probe: Probe
    failed_leaves: dict[str, str] = field(default_factory=dict)  # leaf -> why its documents failed

    @property
    def total(self) -> Traffic:
        total = Traffic()
        for t in self.by_leaf.values():
            total = total.plus(t)
        return total


def dry_run(cfg: Config, *, leaf_pattern: str | None = None, probe_requests: int | None = None,
            models: tuple[Backend, Backend] | None = None) -> DryRun:
    """Plan generate without running it; `models` (teacher, judge) replaces the configured ones
    (tests); `probe_requests` defaults to PROBE_REQUESTS."""
    leaves = select_leaves(cfg, leaf_pattern)
    documents, failed = leaf_documents(leaves)
    leaves = [leaf for leaf in leaves if leaf.path not in failed]
    teacher, judge = models or open_models(cfg, cached=False)  # a cache would be a trace
    work = plan(cfg, leaves, documents, teacher.count_tokens, magpie_enabled(cfg))
    sample = ProbeSample(PROBE_REQUESTS if probe_requests is None else probe_requests)
    # One planner per distinct model, so a teacher that is also the judge is counted once.
    planners = {id(_model(b)): PlanningBackend(b, cfg.generate, sample) for b in distinct_models((teacher, judge))}
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
    return DryRun(by_leaf, candidates, repairs, probe(sample), failed)


def _model(backend: Any) -> Any:
    """The model behind a request-cache wrapper: the probe must not write answers into it."""
    return getattr(backend, "backend", backend)


def probe(sample: ProbeSample) -> Probe:
    """Send the sampled requests to their real models, one batch per model and kind of request
    (its parameters but the seed): as generate's steps send theirs, so a local model batches
    like requests together (a 2-token verdict does not wait on a long answer) and a server has
    them in flight."""
    result = Probe()
    batches: dict[tuple, tuple[Any, list]] = {}
    for backend, request in sample.requests:
        model = _model(backend)
        kind = (id(model), replace(request.params, seed=0))
        batches.setdefault(kind, (model, []))[1].append(request)
    for model, requests in batches.values():
        started = time.perf_counter()
        responses = model.generate(requests)
        result.seconds += time.perf_counter() - started
        result.requests += len(requests)
        result.failed += sum(not r.ok for r in responses)
    return result


def print_dry_run(console: Console, cfg: Config, result: DryRun) -> None:
    price = cfg.backend.price_per_million_tokens
    rate = result.probe.seconds_for
    table = Table(title="generate --dry-run: what generate would send, per leaf", title_justify="left")
    table.add_column("leaf", overflow="fold")  # a leaf path has no spaces to wrap at: fold it, never cut it
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
    console.print(f"generate would send {traffic_line(total, price, completion='completion (at most)')}",
                  highlight=False)
    if result.repairs.requests:
        console.print(f"  and up to {traffic_line(result.repairs, price, completion='completion')} more, "
                      f"for JSON verdicts that do not parse", highlight=False)
    p = result.probe
    seconds = rate(total.requests)
    if seconds is not None:  # in total only: a few requests time the plan's mix, not each leaf's
        # The sample's batches are small: a model that batches a whole step (local) or keeps
        # many requests in flight (a server) answers faster than this, so it reads as a bound.
        console.print(f"about {duration(seconds)} at the rate the teacher and judge answered "
                      f"{p.requests - p.failed} sampled requests ({p.seconds:.1f}s; generate batches "
                      f"whole steps, so it is likely faster)", highlight=False)
    elif p.requests:
        console.print(f"[yellow]no time estimate: all {p.requests} probe requests failed[/]", highlight=False)
    console.print("[dim]counted as if every candidate passed every step (rejects send fewer), before the "
                  "request cache (answers it holds are not sent again); nothing was written[/]")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
