"""Checking ladder pairs with a judge, and how often the ladder and the judge agree.

The judge compares chosen and rejected in both presentation orders (`sdg.judges.compare`), so
a preference for the first position cancels out. A pair is dropped (reason
`judge_disagrees`) only when the judge prefers the weaker answer beyond a margin:
P(chosen better) < 0.5 - margin. Pairs the judge is unsure about, or cannot read, keep the
ladder's label. Kept pairs record `verified_by` (the judge's model id) and `judge_p_chosen`.

The agreement summary per rung pair (i, j) says whether the ladder's assumption "rung i
answers better than rung j" holds in the judge's eyes — adjacent rungs of similar strength
agree least, which is exactly what makes their pairs hard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend
from alignlab.pairs.construct import answer_text, prompt_text, reject
from alignlab.records import Pair, Reject
from alignlab.sdg.judges import compare
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
                "dropped": self.dropped, "unreadable": self.unreadable,
                "agreement": None if self.rate is None else round(self.rate, 4),
                "mean_p_chosen": round(self.p_sum / judged, 4) if judged else None}


class Verified(NamedTuple):
    kept: list[Pair]
    rejected: list[Reject]
    agreement: dict[tuple[int | None, int | None], RungAgreement]


def verify_pairs(judge: Backend, pairs: Sequence[Pair], margin: float = 0.1,
                 override_dir: str | None = None) -> Verified:
    if not 0.0 <= margin < 0.5:
        raise AlignlabError(f"verification margin must be in [0, 0.5), got {margin}")
    comparisons = compare(judge, [prompt_text(p.prompt) for p in pairs],
                          [answer_text(p.chosen) for p in pairs],
                          [answer_text(p.rejected) for p in pairs], TEMPLATE, override_dir)
    template_hash = load_template(TEMPLATE, override_dir).hash
    kept: list[Pair] = []
    rejected: list[Reject] = []
    agreement: dict[tuple[int | None, int | None], RungAgreement] = {}
    for pair, c in zip(pairs, comparisons):
        m = pair.metadata
        key = (m.get("chosen_rung"), m.get("rejected_rung"))
        stats = agreement.setdefault(key, RungAgreement(*key, m.get("chosen_model"), m.get("rejected_model")))
        stats.pairs += 1
        if c.p_first is None:
            stats.unreadable += 1
            kept.append(pair)  # the judge could not say; the ladder's label stands
            continue
        stats.p_sum += c.p_first
        stats.agree += c.p_first > 0.5
        stats.disagree += c.p_first < 0.5
        judged = {"verified_by": judge.model_id, "judge_p_chosen": round(c.p_first, 4),
                  "judge_orders": [_round(c.p_a_shown_first), _round(c.p_a_shown_second)],
                  "judge_template": template_hash}
        if c.p_first < 0.5 - margin:
            stats.dropped += 1
            rejected.append(reject({**pair.to_dict(), "metadata": {**m, **judged}}, "judge_disagrees",
                                   p_chosen=judged["judge_p_chosen"], margin=margin))
        else:
            pair.metadata.update(judged)
            kept.append(pair)
    return Verified(kept, rejected, dict(sorted(agreement.items(), key=lambda kv: _sort_key(kv[0]))))


def _round(p: float | None) -> float | None:
    return None if p is None else round(p, 4)


def _sort_key(key: tuple[int | None, int | None]) -> tuple[int, int]:
    return tuple(-1 if k is None else k for k in key)  # type: ignore[return-value]
