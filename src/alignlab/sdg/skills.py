"""Skill generators: new tasks like a leaf's seed examples, answered and judged.

Freeform skills: the teacher writes new tasks from the task description and seed questions;
Self-Instruct's ROUGE-L filter drops near-repeats of the leaf's pool; a judge grades the task;
the teacher answers with the seeds as worked examples; a judge grades the answer.

Grounded skills: the same, but first the teacher writes a new context like the seeds'
contexts, and the task and answer are about that context.
"""

from __future__ import annotations

from collections.abc import Sequence

from alignlab.sdg.candidates import Candidate, parse_answer, parse_context, parse_question
from alignlab.sdg.generator import Generator, PlanInputs
from alignlab.sdg.steps import (
    GenContext, answering, judge_step, novelty_step, questioning, sampling, teacher_step,
)
from alignlab.taxonomy.leaf import FREEFORM_SKILL, GROUNDED_SKILL, Leaf

FREEFORM, GROUNDED = "freeform", "grounded"


def plan(leaf: Leaf, inputs: PlanInputs) -> list[Candidate]:
    """`samples_per_seed` new tasks per seed example, of the leaf's kind."""
    generator = GROUNDED if leaf.kind == GROUNDED_SKILL else FREEFORM
    samples_per_seed = inputs.cfg.generate.samples_per_seed
    return [Candidate(leaf=leaf.path, leaf_kind=leaf.kind, generator=generator, order=(seed.index, k),
                      lineage={"seed_index": seed.index, "sample_index": k, "leaf_version": leaf.version})
            for seed in leaf.seed_examples for k in range(samples_per_seed)]


def _rotated(leaf: Leaf, start: int, n: int = 3) -> list:
    seeds = leaf.seed_examples
    return [seeds[(start + k) % len(seeds)] for k in range(min(n, len(seeds)))]


def _worked(leaf: Leaf, start: int) -> list[dict]:
    return [{"context": s.context, "question": s.question, "answer": s.answer}
            for s in _rotated(leaf, start, 2)]


def run(ctx: GenContext, candidates: Sequence[Candidate], leaves: dict[str, Leaf]) -> None:
    """Both kinds in one pass: grounded candidates get a context step first."""
    def leaf(c: Candidate) -> Leaf:
        return leaves[c.leaf]

    def start(c: Candidate) -> int:
        # The samples of one seed share their prompt (only their sampling seeds differ), so the
        # teacher reads it once for all of them.
        return c.lineage["seed_index"]

    grounded = [c for c in candidates if c.generator == GROUNDED]
    freeform = [c for c in candidates if c.generator == FREEFORM]
    teacher_step(ctx, grounded, step="context", template="grounded_context", into="context",
                 parse=parse_context, params=sampling(ctx),
                 variables=lambda c: {"task_description": leaf(c).task_description,
                                      "examples": [s.context for s in _rotated(leaf(c), start(c))]})
    teacher_step(ctx, freeform, step="question", template="freeform_question", into="question",
                 parse=parse_question, params=questioning(ctx),
                 variables=lambda c: {"task_description": leaf(c).task_description,
                                      "examples": [s.question for s in _rotated(leaf(c), start(c))]})
    teacher_step(ctx, grounded, step="question", template="grounded_question", into="question",
                 parse=parse_question, params=questioning(ctx),
                 variables=lambda c: {"task_description": leaf(c).task_description,
                                      "examples": _worked(leaf(c), start(c)), "context": c.context})
    novelty_step(ctx, candidates, {path: [s.question for s in lf.seed_examples] for path, lf in leaves.items()})
    judge_step(ctx, candidates, "question",
               lambda c: {"task_description": leaf(c).task_description, "question": c.question,
                          "context": c.context})
    teacher_step(ctx, candidates, step="answer", template="skill_answer", into="answer",
                 parse=parse_answer, params=answering(ctx),
                 variables=lambda c: {"task_description": leaf(c).task_description,
                                      "examples": _worked(leaf(c), start(c)),
                                      "context": c.context, "question": c.question})
    judge_step(ctx, candidates, "quality",
               lambda c: {"question": c.question, "answer": c.answer, "context": c.context})


# question, question judge, answer, quality judge; grounded writes its context first.
FREEFORM_DECLARATION = Generator(FREEFORM, run, requests=4, leaf_kind=FREEFORM_SKILL, plan=plan)
GROUNDED_DECLARATION = Generator(GROUNDED, run, requests=5, leaf_kind=GROUNDED_SKILL, plan=plan)
