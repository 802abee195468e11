"""Drawing each phase's rows: exact sizes, deterministic for the seed.

Every source draws with its own generator seeded by (seed, phase, source position), so editing
one source leaves the others' draws unchanged. A drawn subset keeps the source's order; the
phase is then shuffled with its own seeded generator (unless `shuffle: false`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fnmatch import fnmatch

from alignlab.errors import ConfigError
from alignlab.mix.config import Phase, Select, Source
from alignlab.mix.recipe import ResolvedRecipe
from alignlab.records import Sample


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
    request: str  # "ratio 0.2" | "count 50"


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


def mix_phase(i: int, phase: Phase, curated: list[Sample], done: dict[str, PhaseMix],
              resolved: ResolvedRecipe) -> PhaseMix:
    out = PhaseMix(phase.name)
    seen: dict[str, int] = {}
    for j, source in enumerate(phase.sources):
        pool = _pool(source, curated, done, resolved)
        k = requested(source, len(pool))
        if k > len(pool) and not source.replace:
            raise ConfigError(f"{resolved.where(('phases', i, 'sources', j))}: phase '{phase.name}' asks "
                              f"{source.label()} for {k} rows but it holds {len(pool)}; ask for fewer or "
                              f"set `replace: true` to repeat rows")
        rows = draw(pool, k, random.Random(f"{resolved.seed}:{phase.name}:{j}"))
        label = source.label()
        out.rows += [_tagged(s, label, phase.name, seen) for s in rows]
        out.sources.append(SourceDraw(label, source.kind, len(pool), out.rows[-len(rows):] if rows else [],
                                      f"count {k}" if source.count is not None
                                      else f"ratio {source.ratio if source.ratio is not None else 1.0}"))
    if phase.shuffle:
        random.Random(f"{resolved.seed}:{phase.name}:shuffle").shuffle(out.rows)
    return out


def mix_phases(curated: list[Sample], resolved: ResolvedRecipe) -> list[PhaseMix]:
    """Every phase in order; a size error stops before anything is written."""
    done: dict[str, PhaseMix] = {}
    for i, phase in enumerate(resolved.recipe.phases):
        done[phase.name] = mix_phase(i, phase, curated, done, resolved)
    return list(done.values())
