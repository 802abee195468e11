"""AI-feedback pairs (RLAIF): two sampled answers of the same model, ordered by a judge.

The judge compares the two answers in both presentation orders. A pair is kept only when both
orders prefer the same answer with probability ≥ `threshold`; otherwise it is a reject:
`order_inconsistent` (each order prefers a different answer — the judge followed the position,
not the content), `judge_unsure` (same direction, too little confidence), `judge_unreadable`,
or `identical_answers`. Both answers come from one model, so there is no strength gap: such
pairs sit at the hardest curriculum level (difficulty 1.0, like adjacent ladder rungs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend
from alignlab.pairs.construct import PromptLike, as_messages, prompt_text, reject, same_answer
from alignlab.records import Pair, Reject, stable_id
from alignlab.sdg.judges import compare
from alignlab.sdg.templates import load_template

TEMPLATE = "judge_pairwise"


def ai_feedback_pairs(judge: Backend, prompts: Sequence[PromptLike], answers_a: Sequence[str | None],
                      answers_b: Sequence[str | None], *, model: str, threshold: float = 0.75,
                      prompt_metadata: Sequence[dict[str, Any]] | None = None,
                      override_dir: str | None = None) -> tuple[list[Pair], list[Reject]]:
    """`answers_a[k]` and `answers_b[k]` are two samples of `model` for `prompts[k]`."""
    if not 0.5 < threshold <= 1.0:
        raise AlignlabError(f"AI-feedback threshold must be in (0.5, 1], got {threshold}")
    if not len(prompts) == len(answers_a) == len(answers_b):
        raise AlignlabError(f"{len(prompts)} prompts but {len(answers_a)} and {len(answers_b)} answers")
    if prompt_metadata is not None and len(prompt_metadata) != len(prompts):
        raise AlignlabError(f"{len(prompt_metadata)} metadata rows for {len(prompts)} prompts")
    messages = [as_messages(p) for p in prompts]
    rows = []
    for k in range(len(prompts)):
        rows.append({"id": stable_id("ai_feedback", messages[k], model, answers_a[k], answers_b[k]),
                     "prompt": messages[k], "answers": [answers_a[k], answers_b[k]],
                     "metadata": {**(prompt_metadata[k] if prompt_metadata else {}), "prompt_index": k}})
    unusable = {k: _unusable(answers_a[k], answers_b[k]) for k in range(len(prompts))}
    to_judge = [k for k, why in unusable.items() if why is None]
    comparisons = dict(zip(to_judge, compare(
        judge, [prompt_text(messages[k]) for k in to_judge], [answers_a[k] for k in to_judge],
        [answers_b[k] for k in to_judge], TEMPLATE, override_dir)))
    template_hash = load_template(TEMPLATE, override_dir).hash

    pairs: list[Pair] = []
    rejects: list[Reject] = []
    for k, row in enumerate(rows):
        c = comparisons.get(k)
        if c is None:
            rejects.append(reject(row, unusable[k]))
            continue
        first, second = c.p_a_shown_first, c.p_a_shown_second  # P(a better) in each order
        if first is None or second is None:
            rejects.append(reject(row, "judge_unreadable"))
            continue
        detail = {"p_a_shown_first": round(first, 4), "p_a_shown_second": round(second, 4)}
        if min(first, second) >= threshold:
            winner = 0
        elif max(first, second) <= 1 - threshold:
            winner = 1
        else:
            same_side = (first - 0.5) * (second - 0.5) > 0
            rejects.append(reject(row, "judge_unsure" if same_side else "order_inconsistent",
                                  threshold=threshold, **detail))
            continue
        answers = (answers_a[k], answers_b[k])
        # Probabilities stored as P(chosen better), whichever sample won.
        orders = [first, second] if winner == 0 else [1 - first, 1 - second]
        pairs.append(Pair(
            id=row["id"], prompt=messages[k],
            chosen=[{"role": "assistant", "content": answers[winner]}],
            rejected=[{"role": "assistant", "content": answers[1 - winner]}],
            metadata={**row["metadata"], "generator": "ai_feedback", "chosen_model": model,
                      "rejected_model": model, "chosen_sample": winner, "rejected_sample": 1 - winner,
                      "gap": 0, "difficulty": 1.0, "verified_by": judge.model_id,
                      "judge_p_chosen": round(sum(orders) / 2, 4),
                      "judge_orders": [round(p, 4) for p in orders],
                      "judge_template": template_hash, "stage": "pairs"}))
    return pairs, rejects


def _unusable(a: str | None, b: str | None) -> str | None:
    """Why two samples cannot make a pair, or None when they can."""
    if a is None or b is None:
        return "answer_failed"
    if not a.strip() or not b.strip():
        return "empty_answer"
    return "identical_answers" if same_answer(a, b) else None
