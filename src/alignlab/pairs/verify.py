"""Checking ladder pairs with a judge, and how often the ladder and the evidence agree.

Knowledge pairs whose source chunk is known are checked by the evidence (`pairs.evidence`):
which answer the chunk supports, from the judge's log-likelihoods. A pair is dropped (reason
`evidence_contradicts`) when the chunk supports the rejected answer more, beyond
`evidence_margin` nats per token. Such pairs record `verified_by: evidence:<judge>` and
`support_chosen` / `support_rejected`.

Every other pair (skills; knowledge without its chunk) goes to the judge, which compares chosen
and rejected in both presentation orders (`sdg.judges.compare`), so a preference for the first
position cancels out. A pair is dropped (reason `judge_disagrees`) only when the judge prefers
the weaker answer beyond a margin: P(chosen better) < 0.5 - margin. Pairs the judge is unsure
about, or cannot read, keep the ladder's label. Kept pairs record `verified_by` (the judge's
model id) and `judge_p_chosen`.

The agreement summary per rung pair (i, j) says whether the ladder's assumption "rung i
answers better than rung j" holds in the judge's eyes — adjacent rungs of similar strength
agree least, which is exactly what makes their pairs hard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend
from alignlab.pairs.construct import answer_text, prompt_text, reject
from alignlab.pairs.evidence import Support, chunk_support
from alignlab.records import Pair, Reject
from alignlab.sdg.judges import Comparison, compare
from alignlab.sdg.templates import load_template

TEMPLATE = "judge_pairwise"


@dataclass
class RungAgreement:
    chosen_rung: int | None
    rejected_rung: int | None
    chosen_model: str | None
    rejected_model: str | None
    pairs: int = 0
    agree: int = 0  # the judge prefers the ladder's chosen answer: P(chosen better) > 0.5
    disagree: int = 0  # the judge prefers the rejected one: P < 0.5
    dropped: int = 0  # ... beyond the margin, so the pair was removed
    unreadable: int = 0
    by_evidence: int = 0  # of the pairs, how many the chunk's evidence checked (the rest: the judge)
    p_sum: float = 0.0

    @property
    def rate(self) -> float | None:
        """Share of the judged pairs where the judge agrees with the ladder."""
        judged = self.pairs - self.unreadable
        return self.agree / judged if judged else None

    def to_dict(self) -> dict[str, Any]:
        judged = self.pairs - self.unreadable
        return {"chosen_rung": self.chosen_rung, "rejected_rung": self.rejected_rung,
                "chosen_model": self.chosen_model, "rejected_model": self.rejected_model,
                "pairs": self.pairs, "agree": self.agree, "disagree": self.disagree,
                "dropped": self.dropped, "unreadable": self.unreadable, "by_evidence": self.by_evidence,
                "agreement": None if self.rate is None else round(self.rate, 4),
                "mean_p_chosen": round(self.p_sum / judged, 4) if judged else None}


class Verified(NamedTuple):
    kept: list[Pair]
    rejected: list[Reject]
    agreement: dict[tuple[int | None, int | None], RungAgreement]


def verify_pairs(judge: Backend, pairs: Sequence[Pair], margin: float = 0.1,
                 override_dir: str | None = None, *, chunks: Mapping[str, str] | None = None,
                 evidence_margin: float = 0.0) -> Verified:
    """`chunks` (chunk id -> text) turns on the evidence check for the pairs it covers."""
    if not 0.0 <= margin < 0.5:
        raise AlignlabError(f"verification margin must be in [0, 0.5), got {margin}")
    support = chunk_support(judge, pairs, chunks) if chunks else [None] * len(pairs)
    to_judge = [k for k, s in enumerate(support) if s is None]
    comparisons = dict(zip(to_judge, compare(
        judge, [prompt_text(pairs[k].prompt) for k in to_judge], [answer_text(pairs[k].chosen) for k in to_judge],
        [answer_text(pairs[k].rejected) for k in to_judge], TEMPLATE, override_dir)))
    template_hash = load_template(TEMPLATE, override_dir).hash
    kept: list[Pair] = []
    rejected: list[Reject] = []
    agreement: dict[tuple[int | None, int | None], RungAgreement] = {}
    for k, pair in enumerate(pairs):
        m = pair.metadata
        key = (m.get("chosen_rung"), m.get("rejected_rung"))
        stats = agreement.setdefault(key, RungAgreement(*key, m.get("chosen_model"), m.get("rejected_model")))
        stats.pairs += 1
        if support[k] is not None:
            drop = _by_evidence(pair, support[k], judge.model_id, evidence_margin, stats)
        else:
            drop = _by_judge(pair, comparisons[k], judge.model_id, template_hash, margin, stats)
        if drop is None:
            kept.append(pair)
        else:
            stats.dropped += 1
            rejected.append(drop)
    return Verified(kept, rejected, dict(sorted(agreement.items(), key=lambda kv: _sort_key(kv[0]))))


def _by_evidence(pair: Pair, support: Support, judge_id: str, evidence_margin: float,
                 stats: RungAgreement) -> Reject | None:
    """Record the evidence in the pair; a Reject when it contradicts the ladder."""
    stats.by_evidence += 1
    stats.agree += support.margin > 0
    stats.disagree += support.margin < 0
    stats.p_sum += float(support.margin > 0)  # a decided comparison: P(chosen better) is 0 or 1
    found = {"verified_by": f"evidence:{judge_id}", "support_chosen": round(support.chosen, 4),
             "support_rejected": round(support.rejected, 4)}
    if support.margin < -evidence_margin:
        return reject({**pair.to_dict(), "metadata": {**pair.metadata, **found}}, "evidence_contradicts",
                      support_margin=round(support.margin, 4), evidence_margin=evidence_margin)
    pair.metadata.update(found)
    return None


def _by_judge(pair: Pair, c: Comparison, judge_id: str, template_hash: str, margin: float,
              stats: RungAgreement) -> Reject | None:
    """Record the judge's comparison in the pair; a Reject when it confidently reverses it."""
    if c.p_first is None:
        stats.unreadable += 1
        return None  # the judge could not say; the ladder's label stands
    stats.p_sum += c.p_first
    stats.agree += c.p_first > 0.5
    stats.disagree += c.p_first < 0.5
    judged = {"verified_by": judge_id, "judge_p_chosen": round(c.p_first, 4),
              "judge_orders": [_round(c.p_a_shown_first), _round(c.p_a_shown_second)],
              "judge_template": template_hash}
    if c.p_first < 0.5 - margin:
        return reject({**pair.to_dict(), "metadata": {**pair.metadata, **judged}}, "judge_disagrees",
                      p_chosen=judged["judge_p_chosen"], margin=margin)
    pair.metadata.update(judged)
    return None


def _round(p: float | None) -> float | None:
    return None if p is None else round(p, 4)


def _sort_key(key: tuple[int | None, int | None]) -> tuple[int, int]:
    return tuple(-1 if k is None else k for k in key)  # type: ignore[return-value]
