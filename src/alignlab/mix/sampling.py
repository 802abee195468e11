"""Drawing each phase's rows: exact sizes, deterministic for the seed.

Every source draws with its own generator seeded by (seed, phase, source position), so editing
one source leaves the others' draws unchanged. A drawn subset keeps the source's order; the
phase is then shuffled with its own seeded generator (unless `shuffle: false`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch

from alignlab.errors import ConfigError
from alignlab.mix.config import Phase, Select, Source
from alignlab.mix.recipe import ResolvedRecipe
from alignlab.records import Sample

TokenCounter = Callable[[list[Sample]], list[int]]  # tokens of each sample, in order


def matches(sample: Sample, select: Select) -> bool:
    for name, want in select.model_dump(exclude_none=True).items():
        if name == "unmask":
            if sample.unmask != want:
                return False
            continue
        wanted = [str(v) for v in (want if isinstance(want, list) else [want])]
        have = str(sample.metadata.get(name, ""))
        if not (any(fnmatch(have, w) for w in wanted) if name == "leaf" else have in wanted):
            return False
    return True


def requested(source: Source, available: int) -> int:
    """Rows asked of a source holding `available`: a count exactly, a ratio rounded half up."""
    if source.count is not None:
        return source.count
    return math.floor((source.ratio if source.ratio is not None else 1.0) * available + 0.5)


def draw_tokens(pool: list[Sample], lengths: list[int], budget: int, rng: random.Random) -> list[Sample]:
    """Rows in a seeded order until their tokens reach `budget` (the last row may pass it:
    a row is never cut), returned in pool order."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    picked, total = [], 0
    for i in order:
        if total >= budget:
            break
        picked.append(i)
        total += lengths[i]
    return [pool[i] for i in sorted(picked)]


def draw(pool: list[Sample], k: int, rng: random.Random) -> list[Sample]:
    """k rows of the pool: each row ⌊k/n⌋ times, plus k mod n distinct rows, in pool order."""
    if k == 0 or not pool:
        return []
    repeats, rest = divmod(k, len(pool))
    picked = sorted(list(range(len(pool))) * repeats + rng.sample(range(len(pool)), rest))
    return [pool[i] for i in picked]


@dataclass
class SourceDraw:
    label: str
    kind: str
    available: int
    rows: list[Sample]
    request: str  # "ratio 0.2" | "count 50" | "tokens 2000" | "token_ratio 0.5"


@dataclass
class PhaseMix:
    name: str
    rows: list[Sample] = field(default_factory=list)
    sources: list[SourceDraw] = field(default_factory=list)


def _pool(source: Source, curated: list[Sample], done: dict[str, PhaseMix], resolved: ResolvedRecipe) -> list[Sample]:
    if source.select is not None:
        return [s for s in curated if matches(s, source.select)]
    if source.phase is not None:
        return done[source.phase].rows
    return resolved.files[source.file]


def _tagged(sample: Sample, label: str, phase: str, seen: dict[str, int]) -> Sample:
    """The row as written to the phase file: `source` and `phase` in its metadata, and an id
    made unique within the phase when a row is repeated."""
    seen[sample.id] = seen.get(sample.id, 0) + 1
    sid = sample.id if seen[sample.id] == 1 else f"{sample.id}#{seen[sample.id]}"
    return Sample(sid, sample.messages, sample.unmask, {**sample.metadata, "source": label, "phase": phase})


def _draw_source(i: int, j: int, phase: Phase, source: Source, pool: list[Sample], resolved: ResolvedRecipe,
                 count_tokens: TokenCounter | None) -> list[Sample]:
    rng = random.Random(f"{resolved.seed}:{phase.name}:{j}")
    where = resolved.where(("phases", i, "sources", j))
    if source.by_tokens:
        if count_tokens is None:
            raise ConfigError(f"{where}: sizing a source by tokens needs the student's tokenizer")
        lengths = count_tokens(pool)
        budget = source.tokens if source.tokens is not None else math.ceil(source.token_ratio * sum(lengths))
        if budget > sum(lengths):
            raise ConfigError(f"{where}: phase '{phase.name}' asks {source.label()} for {budget:,} tokens but "
                              f"it holds {sum(lengths):,}; ask for fewer")
        return draw_tokens(pool, lengths, budget, rng)
    k = requested(source, len(pool))
    if k > len(pool) and not source.replace:
        raise ConfigError(f"{where}: phase '{phase.name}' asks {source.label()} for {k} rows but it holds "
                          f"{len(pool)}; ask for fewer or set `replace: true` to repeat rows")
    return draw(pool, k, rng)


def mix_phase(i: int, phase: Phase, curated: list[Sample], done: dict[str, PhaseMix],
              resolved: ResolvedRecipe, count_tokens: TokenCounter | None = None) -> PhaseMix:
    out = PhaseMix(phase.name)
    seen: dict[str, int] = {}
    for j, source in enumerate(phase.sources):
        pool = _pool(source, curated, done, resolved)
        rows = _draw_source(i, j, phase, source, pool, resolved, count_tokens)
        label = source.label()
        out.rows += [_tagged(s, label, phase.name, seen) for s in rows]
        out.sources.append(SourceDraw(label, source.kind, len(pool), out.rows[-len(rows):] if rows else [],
                                      source.size_label()))
    if phase.shuffle:
        random.Random(f"{resolved.seed}:{phase.name}:shuffle").shuffle(out.rows)
    return out


def mix_phases(curated: list[Sample], resolved: ResolvedRecipe,
               count_tokens: TokenCounter | None = None) -> list[PhaseMix]:
    """Every phase in order; a size error stops before anything is written."""
    done: dict[str, PhaseMix] = {}
    for i, phase in enumerate(resolved.recipe.phases):
        done[phase.name] = mix_phase(i, phase, curated, done, resolved, count_tokens)
    return list(done.values())
