"""Diversity selection (Deita): best first, accept a sample only if its cosine similarity to
every sample accepted so far is at most θ, until the budget is spent.

Order: by a score, highest first (ties keep the input order).
    quality             the judge's score
    complexity          a cheap proxy for Deita's complexity scorer, from the instruction alone:
                        1 + ln(1 + words) + 0.5 per extra sentence, question, list item or line.
                        Longer instructions with more parts and constraints rank higher.
    quality_complexity  their product (Deita's evol score is quality × complexity)
    none                the input order
A sample without a judge score ranks as quality 0 (last).

Speed: vectors are normalised, the accepted ones kept in one growing matrix. Candidates are
embedded and compared a block at a time: one matrix product against everything accepted
before the block, then a small in-block similarity matrix settles the order inside the block,
so the result is exactly the sequential greedy one. Cost is O(candidates × accepted × dim);
a budget bounds it. Document chunks are exempt and do not count against the budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from alignlab.curate.config import DiversityStep
from alignlab.curate.embed import Embedder, make_embedder
from alignlab.curate.quality import judge_score
from alignlab.curate.steps import KEEP, StepContext, Verdict, leaf_of, reject
from alignlab.curate.text import field_text, words
from alignlab.llm.specs import parse_spec
from alignlab.records import Sample

BLOCK = 512
_PARTS = re.compile(r"[.!?](?:\s|$)|\n\s*(?:[-*•]|\d+[.)])\s|\n")


def complexity(instruction: str) -> float:
    parts = len(_PARTS.findall(instruction.strip()))
    return 1.0 + math.log1p(len(words(instruction))) + 0.5 * max(parts - 1, 0)


def priority(sample: Sample, settings: DiversityStep) -> float:
    quality = judge_score(sample, settings.judge) or 0.0
    if settings.score == "quality":
        return quality
    if settings.score == "complexity":
        return complexity(sample.instruction)
    if settings.score == "quality_complexity":
        return quality * complexity(sample.instruction)
    return 0.0


@dataclass(frozen=True)
class Choice:
    accepted: bool
    nearest: int = -1  # index (in the given order) of the most similar accepted sample
    cosine: float = 0.0
    over_budget: bool = False


def nearest_accepted(vecs: np.ndarray, accepted: np.ndarray, chunk: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's highest cosine to the accepted rows, and which row: one matrix product per
    chunk of accepted rows, so the similarity block stays small (block x chunk floats)."""
    best = np.full(len(vecs), -np.inf, dtype=np.float32)
    who = np.zeros(len(vecs), dtype=np.int64)
    for start in range(0, len(accepted), chunk):
        sims = vecs @ accepted[start:start + chunk].T
        arg = sims.argmax(axis=1)
        top = sims[np.arange(len(vecs)), arg]
        better = top > best
        best[better], who[better] = top[better], arg[better] + start
    return best, who


def select_diverse(texts: Sequence[str], embedder: Embedder, threshold: float,
                   budget: int | None = None, block: int = BLOCK,
                   advance: Callable[..., None] | None = None) -> list[Choice]:
    """Greedy selection over `texts` in the given (priority) order."""
    choices: list[Choice] = []
    accepted = np.zeros((0, 0), dtype=np.float32)
    accepted_ids: list[int] = []
    for start in range(0, len(texts), block):
        if budget is not None and len(accepted_ids) >= budget:
            break
        vecs = embedder.embed(texts[start:start + block])
        n_acc = len(accepted_ids)
        if not accepted.size:
            # Room for every sample that could be accepted, allocated once: np.zeros maps pages
            # lazily, so only rows actually written use memory, and nothing is ever copied.
            accepted = np.zeros((min(len(texts), budget or len(texts)), vecs.shape[1]), np.float32)
        prev_best, prev_who = nearest_accepted(vecs, accepted[:n_acc])
        inner = vecs @ vecs.T
        newly: list[int] = []
        for b in range(len(vecs)):
            if budget is not None and n_acc + len(newly) >= budget:
                choices.append(Choice(False, over_budget=True))
                continue
            best, who = float(prev_best[b]), accepted_ids[prev_who[b]] if n_acc else -1
            if newly:
                row = inner[b, newly]
                j = int(row.argmax())
                if row[j] > best:
                    best, who = float(row[j]), start + newly[j]
            if best > threshold:
                choices.append(Choice(False, who, best))
            else:
                choices.append(Choice(True, who, max(best, 0.0) if who >= 0 else 0.0))
                newly.append(b)
        accepted[n_acc:n_acc + len(newly)] = vecs[newly]
        accepted_ids += [start + b for b in newly]
        if advance:
            advance(len(vecs), accepted=len(accepted_ids))
    if advance and len(texts) > len(choices):
        advance(len(texts) - len(choices))
    choices += [Choice(False, over_budget=True)] * (len(texts) - len(choices))
    return choices


def diversity(samples: list[Sample], settings: DiversityStep, ctx: StepContext) -> list[Verdict]:
    embedder = make_embedder(settings.embedder, dim=settings.dim,
                             model=parse_spec(settings.model, ctx.cfg.base_dir),
                             batch_size=settings.batch_size, max_tokens=settings.max_tokens)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if not s.unmask:
            groups.setdefault(leaf_of(s) if settings.per_leaf else "", []).append(i)
    verdicts: list[Verdict] = [KEEP] * len(samples)
    advance = ctx.track("diversity", total=sum(map(len, groups.values())))
    for members in groups.values():
        scores = [priority(samples[i], settings) for i in members]
        order = [members[k] for k in sorted(range(len(members)), key=lambda k: -scores[k])]
        texts = [field_text(samples[i], settings.field) for i in order]
        for rank, (i, choice) in enumerate(zip(order, select_diverse(
                texts, embedder, settings.threshold, settings.budget, advance=advance))):
            if choice.over_budget:
                verdicts[i] = reject("over_budget", budget=settings.budget, rank=rank)
            elif not choice.accepted:
                verdicts[i] = reject("too_similar", to=samples[order[choice.nearest]].id,
                                     cosine=round(choice.cosine, 4))
    return verdicts
