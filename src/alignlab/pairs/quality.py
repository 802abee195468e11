"""Each rung's own quality, measured on the held-out prompts, so the ladder's order is a
measurement, not an assumption.

The judge grades every rung's answer to every held-out prompt with the expected-score quality
judge (`judge_quality`, 1-5; for knowledge prompts it also reads the source chunk). Per rung:
the mean score with its 95 % interval (`stats.mean_interval`, the seeded bootstrap every judged
score in alignlab carries), the number of answers whose text is degenerate (repetition ratio
above `DEGENERATE`), and whether the rung scores below the rung above it, as a ladder
strongest-first should.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alignlab.llm.types import Backend
from alignlab.pairs.construct import prompt_text
from alignlab.pairs.rungs import repetition_ratio
from alignlab.records import Message
from alignlab.sdg.judges import JudgeSpec, run_judge
from alignlab.stats import mean_interval

QUALITY = JudgeSpec("quality", "judge_quality")
DEGENERATE = 0.5  # over half the word 3-grams repeat an earlier one: a loop, not an answer


def rung_quality(judge: Backend, labels: Sequence[str], prompts: Sequence[Sequence[Message]],
                 answers_by_rung: Sequence[Sequence[str | None]], heldout: Sequence[int],
                 chunks: Sequence[str | None]) -> list[dict[str, Any]]:
    """One row per rung (ladder order) over the held-out prompts it answered."""
    rows = []
    for rung, (label, answers) in enumerate(zip(labels, answers_by_rung)):
        index = [k for k in heldout if answers[k]]
        judged = run_judge(judge, QUALITY, [{"question": prompt_text(prompts[k]), "answer": answers[k],
                                             "context": chunks[k] or "", "task_description": ""} for k in index])
        scores = [j.score for j in judged if j.score is not None]
        mean = sum(scores) / len(scores) if scores else None
        low, high = mean_interval(scores) or (None, None)
        repetition = [repetition_ratio(answers[k].split()) for k in index]
        rows.append({"rung": rung, "model": label, "prompts": len(index), "scored": len(scores),
                     "quality": _round(mean), "quality_low": _round(low), "quality_high": _round(high),
                     "degenerate": sum(r > DEGENERATE for r in repetition),
                     "repetition": _round(sum(repetition) / len(repetition) if repetition else None)})
    for above, row in zip(rows, rows[1:]):
        if above["quality"] is not None and row["quality"] is not None:
            row["below_rung_above"] = row["quality"] < above["quality"]
    return rows


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
