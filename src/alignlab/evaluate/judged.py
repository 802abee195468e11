"""Judged prompts, MT-Bench style: the model under test answers held-out skill prompts and a
judge grades each answer; two models' answers are compared head to head.

The held-out prompts are the seed examples of every skill leaf (their questions, with the
context for grounded skills): the examples the teacher imitated, never trained on directly.
A grade is the judge's *expected* score read from the score-token probabilities
(`sdg.judges.run_judge`), so even a small judge gives a continuous figure. A pairwise
comparison is asked in both orders (`sdg.judges.compare`), so a judge that prefers whichever
answer it reads first favours neither model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from alignlab.evaluate.config import JudgedSettings
from alignlab.llm.types import Backend, GenerationParams, Request
from alignlab.progress import progress_bar
from alignlab.records import stable_id, user_turn
from alignlab.sdg.judges import Comparison, JudgeSpec, compare, run_judge
from alignlab.stats import mean_interval

STEP = 16  # prompts per judge call, so the progress bar moves

Prompt = dict[str, Any]  # {"leaf", "question", "context"?}


def skill_prompts(taxonomy_root: str | Path, max_per_leaf: int = 20) -> list[Prompt]:
    """The seed questions (and contexts) of every skill leaf: held-out prompts, since training
    data holds only new questions (ROUGE-L filtered against the seeds, then decontaminated)."""
    from alignlab.taxonomy import FREEFORM_SKILL, GROUNDED_SKILL, load_taxonomy

    return [{"leaf": leaf.path, "question": seed.question.strip(),
             "context": seed.context.strip() if seed.context else None}
            for leaf in load_taxonomy(taxonomy_root) if leaf.kind in (FREEFORM_SKILL, GROUNDED_SKILL)
            for seed in leaf.seed_examples[:max_per_leaf]]


def prompt_key(prompt: Prompt) -> str:
    """Names a prompt across models (the same question may come with two contexts)."""
    return stable_id(prompt["question"], prompt.get("context") or "")


def user_message(prompt: Prompt) -> str:
    """What the model under test reads: as in training, a grounded skill's context first."""
    return user_turn(prompt["question"], prompt.get("context"))


def answer_prompts(backend: Backend, prompts: Sequence[Prompt], max_tokens: int,
                   description: str = "answering") -> list[str]:
    """Greedy answers, one batch; a failed request answers "" (graded low, counted)."""
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    requests = [Request(messages=({"role": "user", "content": user_message(p)},), params=params)
                for p in prompts]
    with progress_bar(transient=True) as progress:
        task = progress.add_task(description, total=len(requests), status="")
        responses = backend.generate(requests, on_done=lambda i, r: progress.advance(task))
    return [r.text if r.ok else "" for r in responses]


def judge_answers(judge: Backend, prompts: Sequence[Prompt], answers: Sequence[str],
                  settings: JudgedSettings) -> list[dict[str, Any]]:
    """One row per prompt: the prompt, the answer, and the judge's expected score."""
    spec = JudgeSpec("quality", settings.template)
    items = [{"question": p["question"], "context": p.get("context"), "answer": a}
             for p, a in zip(prompts, answers, strict=True)]
    judgements = []
    with progress_bar(transient=True) as progress:
        task = progress.add_task("judging", total=len(items), status="")
        for start in range(0, len(items), STEP):
            judgements.extend(run_judge(judge, spec, items[start:start + STEP]))
            progress.advance(task, len(items[start:start + STEP]))
    return [{**p, "answer": a, "score": j.score, "method": j.method, "probs": j.probs}
            for p, a, j in zip(prompts, answers, judgements)]


def judged_summary(rows: Sequence[dict[str, Any]], scale: tuple[int, int] = (1, 5)) -> dict[str, Any]:
    """Mean expected score per leaf and overall; unreadable grades are counted, not averaged."""
    def stats(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
        scored = [r for r in group if r["score"] is not None]
        scores = [r["score"] for r in scored]
        return {"n": len(scores), "unscored": len(group) - len(scores),
                "mean_score": mean(scores) if scores else None, "mean_score_ci": mean_interval(scores),
                "per_item": {"mean_score": {prompt_key(r): r["score"] for r in scored}}}

    by_leaf: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_leaf[r["leaf"]].append(r)
    return {"scale": list(scale), "overall": stats(rows),
            "by_leaf": {leaf: stats(group) for leaf, group in sorted(by_leaf.items())}}


# ------------------------------------------------------------------ pairwise


def pairwise(judge: Backend, prompts: Sequence[Prompt], answers_a: Sequence[str],
             answers_b: Sequence[str], tie_band: float = 0.1,
             template: str = "judge_pairwise") -> dict[str, Any]:
    """Win rate of A over B: the mean P(A better) over prompts, each judged in both orders,
    plus wins / ties / losses where a tie is P(A better) within `tie_band` of 0.5."""
    texts = [user_message(p) for p in prompts]
    comparisons: list[Comparison] = []
    with progress_bar(transient=True) as progress:
        task = progress.add_task("comparing", total=len(texts), status="")
        for start in range(0, len(texts), STEP):
            end = start + STEP
            comparisons.extend(compare(judge, texts[start:end], answers_a[start:end],
                                       answers_b[start:end], template=template))
            progress.advance(task, len(texts[start:end]))
    rows = [{"leaf": p["leaf"], "question": p["question"], "answer_a": a, "answer_b": b,
             "p_a_better": c.p_first, "p_a_shown_first": c.p_a_shown_first,
             "p_a_shown_second": c.p_a_shown_second, "method": c.method}
            for p, a, b, c in zip(prompts, answers_a, answers_b, comparisons, strict=True)]
    by_leaf: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_leaf[r["leaf"]].append(r)
    return {"tie_band": tie_band, "overall": win_rate([r["p_a_better"] for r in rows], tie_band),
            "by_leaf": {leaf: win_rate([r["p_a_better"] for r in group], tie_band)
                        for leaf, group in sorted(by_leaf.items())},
            "rows": rows}


def win_rate(p_a_better: Sequence[float | None], tie_band: float = 0.1) -> dict[str, Any]:
    ps = [p for p in p_a_better if p is not None]
    wins = sum(p > 0.5 + tie_band for p in ps)
    losses = sum(p < 0.5 - tie_band for p in ps)
    return {"n": len(ps), "unparseable": len(p_a_better) - len(ps),
            "win_rate": mean(ps) if ps else None, "win_rate_ci": mean_interval(ps),
            "wins": wins, "ties": len(ps) - wins - losses, "losses": losses}
