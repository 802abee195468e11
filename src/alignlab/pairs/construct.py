"""Pairs from a ladder of models: the stronger model's answer is chosen, the weaker's rejected.

The ladder lists model specs from strongest (rung 0) to weakest (rung n-1), each having
answered the same prompts. Every pair of rungs i < j gives a pair with `gap = j - i`. A large
gap is an easy pair (the answers differ plainly), a gap of one rung the hardest, so

    difficulty = 1 - (gap - 1) / (n_rungs - 1)

lies in (0, 1]: 1.0 for adjacent rungs, 1/(n_rungs - 1) for strongest vs weakest. The
curriculum plays the levels in increasing difficulty. Identical or missing answers give no
pair and are kept as rejects with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alignlab.errors import AlignlabError
from alignlab.records import Message, Pair, Reject, stable_id

STAGE = "pairs"
PromptLike = str | Sequence[Message]


def as_messages(prompt: PromptLike) -> list[Message]:
    """A prompt as chat messages: a plain string is one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def prompt_text(messages: Sequence[Message]) -> str:
    """The prompt as the judge reads it: the user's text, or the conversation for multi-turn."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def answer_text(messages: Sequence[Message]) -> str:
    return "\n\n".join(m["content"] for m in messages if m["role"] == "assistant")


def same_answer(a: str, b: str) -> bool:
    """Equal up to whitespace: such a pair teaches nothing."""
    return a.split() == b.split()


def reject(row: dict[str, Any], reason: str, **detail: Any) -> Reject:
    return Reject(id=str(row.get("id", "")), reason=reason, stage=STAGE, record=row, detail=detail)


def ladder_difficulty(gap: int, n_rungs: int) -> float:
    if not 1 <= gap <= n_rungs - 1:
        raise ValueError(f"gap {gap} is impossible on a ladder of {n_rungs} rungs")
    return 1 - (gap - 1) / (n_rungs - 1)


def _check_shapes(prompts: Sequence[Any], answers_by_rung: Sequence[Sequence[Any]],
                  models: Sequence[str], prompt_metadata: Sequence[dict[str, Any]] | None) -> None:
    if len(models) < 2:
        raise AlignlabError(f"a ladder needs at least two models (strongest first), got {list(models)}")
    if len(answers_by_rung) != len(models):
        raise AlignlabError(f"{len(answers_by_rung)} lists of answers for {len(models)} ladder models; "
                            f"there must be one list per model, strongest first")
    for rung, answers in enumerate(answers_by_rung):
        if len(answers) != len(prompts):
            raise AlignlabError(f"ladder rung {rung} ({models[rung]}): {len(answers)} answers for "
                                f"{len(prompts)} prompts")
    if prompt_metadata is not None and len(prompt_metadata) != len(prompts):
        raise AlignlabError(f"{len(prompt_metadata)} metadata rows for {len(prompts)} prompts")


def construct_pairs(prompts: Sequence[PromptLike], answers_by_rung: Sequence[Sequence[str | None]],
                    models: Sequence[str], *, prompt_metadata: Sequence[dict[str, Any]] | None = None
                    ) -> tuple[list[Pair], list[Reject]]:
    """Every (stronger, weaker) rung pair for every prompt. An answer that is None (its
    generation failed) or empty, or two answers equal up to whitespace, give a reject.

    `prompt_metadata[k]` (e.g. the leaf the prompt came from) is copied into the metadata of
    every pair of prompt k."""
    _check_shapes(prompts, answers_by_rung, models, prompt_metadata)
    n = len(models)
    pairs: list[Pair] = []
    rejects: list[Reject] = []
    for k, prompt in enumerate(prompts):
        messages = as_messages(prompt)
        for i in range(n):
            for j in range(i + 1, n):
                chosen, rejected = answers_by_rung[i][k], answers_by_rung[j][k]
                gap = j - i
                metadata = {
                    **(prompt_metadata[k] if prompt_metadata else {}),
                    "generator": "ladder", "prompt_index": k,
                    "chosen_model": models[i], "rejected_model": models[j],
                    "chosen_rung": i, "rejected_rung": j, "gap": gap,
                    "difficulty": ladder_difficulty(gap, n), "stage": STAGE,
                }
                pair_id = stable_id("ladder", messages, models[i], models[j], chosen, rejected)
                row = {"id": pair_id, "prompt": messages, "chosen": chosen, "rejected": rejected,
                       "metadata": metadata}
                if chosen is None or rejected is None:
                    failed = [models[r] for r, a in ((i, chosen), (j, rejected)) if a is None]
                    rejects.append(reject(row, "answer_failed", models=failed))
                elif not chosen.strip() or not rejected.strip():
                    empty = [models[r] for r, a in ((i, chosen), (j, rejected)) if not a.strip()]
                    rejects.append(reject(row, "empty_answer", models=empty))
                elif same_answer(chosen, rejected):
                    rejects.append(reject(row, "identical_answers", chosen_rung=i, rejected_rung=j))
                else:
                    pairs.append(Pair(id=pair_id, prompt=messages,
                                      chosen=[{"role": "assistant", "content": chosen}],
                                      rejected=[{"role": "assistant", "content": rejected}],
                                      metadata=metadata))
    return pairs, rejects
