"""Knowledge rephrasing: each document chunk told again in the teacher's own words.

A fact seen in one wording is learnt as that wording; the same facts in several wordings are
learnt as facts (sdg_hub's document rephrasing, and the knowledge-augmentation result that a
model recalls what it read in varied forms). For every chunk, `rephrase_per_chunk` candidates:
the teacher rewrites the chunk keeping every fact, a rewrite cut off at its token budget is
rejected as truncated, and the faithfulness judge checks every claim against the chunk. A
survivor is a knowledge sample whose answer is the rewrite, so phase 1 trains on it beside the
chunk itself and the generated Q&A. It is a document told again, so it is treated as the
chunk is (`unmask: true`): trained on whole, compared with other samples on its whole text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from alignlab.sdg.candidates import Candidate
from alignlab.sdg.generator import Generator, PlanInputs
from alignlab.sdg.steps import GenContext, judge_step, sampling, teacher_step
from alignlab.taxonomy.leaf import KNOWLEDGE, Leaf

GENERATOR = "knowledge_rephrase"
TASK = "Rewrite the text in your own words, keeping every fact."
MIN_WORDS = 20  # shorter is a summary at best: most of the chunk's facts are gone


def prompt(leaf: Leaf) -> str:
    """The user turn a rewrite answers in training."""
    return f"Tell me what you know about {leaf.domain or leaf.path}."


def plan(leaf: Leaf, inputs: PlanInputs) -> list[Candidate]:
    """`rephrase_per_chunk` candidates for every chunk of the leaf's documents."""
    per_chunk = inputs.cfg.generate.rephrase_per_chunk
    return [Candidate(leaf=leaf.path, leaf_kind=KNOWLEDGE, generator=GENERATOR,
                      order=(chunk.source, chunk.index, k), context=chunk.text, question=prompt(leaf), unmask=True,
                      lineage={"chunk_id": chunk.id, "chunk_index": chunk.index,
                               "document": chunk.source, "sample_index": k, "leaf_version": leaf.version})
            for chunk in inputs.chunks[leaf.path] for k in range(per_chunk)]


_PREAMBLE = re.compile(r"^\s*(?:here is|here's|sure|rewritten|rephrased)[^\n]*:\s*\n", re.IGNORECASE)


def parse_rewrite(text: str) -> str | None:
    """The rewrite without a "Here is the rewritten text:" line; None when too short to hold
    the chunk's facts."""
    rewrite = _PREAMBLE.sub("", text.strip(), count=1).strip().strip('"').strip()
    return rewrite if len(rewrite.split()) >= MIN_WORDS else None


def run(ctx: GenContext, candidates: Sequence[Candidate], leaves: dict[str, Leaf]) -> None:
    # A rewrite is as long as its chunk: the chunk's budget and half again. The first of a
    # chunk is written at the answers' (low) temperature, since invention is what the judge
    # must then remove; further ones are sampled, or they would all be the same text.
    budget = ctx.settings.chunk_tokens * 3 // 2
    first = replace(sampling(ctx, max_tokens=budget), temperature=ctx.settings.answer_temperature)
    for params, mine in ((first, [c for c in candidates if c.lineage["sample_index"] == 0]),
                         (sampling(ctx, max_tokens=budget), [c for c in candidates if c.lineage["sample_index"] > 0])):
        teacher_step(ctx, mine, step="rephrase", template="knowledge_rephrase", into="answer",
                     parse=parse_rewrite, params=params,
                     variables=lambda c: {"domain": leaves[c.leaf].domain or c.leaf, "chunk": c.context})
    judge_step(ctx, candidates, "faithfulness", lambda c: {"context": c.context, "question": TASK, "answer": c.answer})


# rephrase, faithfulness
DECLARATION = Generator(GENERATOR, run, requests=2, leaf_kind=KNOWLEDGE, plan=plan)
