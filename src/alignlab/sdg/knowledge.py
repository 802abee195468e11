"""Knowledge generator: question-answer pairs grounded in each chunk of a leaf's documents.

For every chunk, `qa_per_chunk` candidates: the teacher writes a question the chunk answers
(with the leaf's seed Q&A as examples and its outline), a novelty filter drops near-repeats,
a judge checks the question stands alone, the teacher answers from the chunk, and judges check
the answer is faithful to the chunk and relevant to the question. Each chunk is also emitted
itself as a knowledge-infusion sample (`unmask: true`: trained on the whole text), as LAB's
phase-1 data does, and the leaf's seed Q&A join the data as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from alignlab.records import Sample, stable_id
from alignlab.sdg.candidates import Candidate, parse_answer, parse_question
from alignlab.sdg.generator import Generator, PlanInputs
from alignlab.sdg.steps import (
    GenContext, answering, judge_step, novelty_step, questioning, teacher_step,
)
from alignlab.taxonomy.chunking import Chunk
from alignlab.taxonomy.leaf import KNOWLEDGE, Leaf

GENERATOR = "knowledge_qa"
CHUNK_GENERATOR = "knowledge_chunk"
SEED_GENERATOR = "knowledge_seed"


def plan(leaf: Leaf, inputs: PlanInputs) -> list[Candidate]:
    """`qa_per_chunk` candidates for every chunk of the leaf's documents."""
    chunks, qa_per_chunk = inputs.chunks[leaf.path], inputs.cfg.generate.qa_per_chunk
    return [Candidate(leaf=leaf.path, leaf_kind=KNOWLEDGE, generator=GENERATOR,
                      order=(chunk.source, chunk.index, k), context=chunk.text,
                      lineage={"chunk_id": chunk.id, "chunk_index": chunk.index,
                               "document": chunk.source, "sample_index": k, "leaf_version": leaf.version})
            for chunk in chunks for k in range(qa_per_chunk)]


def chunk_samples(leaf: Leaf, chunks: Sequence[Chunk]) -> list[Sample]:
    """The chunks themselves, to be trained on in full."""
    prompt = f"Share what you know about {leaf.domain or leaf.path}."
    return [Sample(id=stable_id(leaf.path, CHUNK_GENERATOR, chunk.id),
                   messages=[{"role": "user", "content": prompt},
                             {"role": "assistant", "content": chunk.text}],
                   unmask=True,
                   metadata={"leaf": leaf.path, "leaf_kind": "knowledge", "leaf_version": leaf.version,
                             "generator": CHUNK_GENERATOR,
                             "chunk_id": chunk.id, "chunk_index": chunk.index, "document": chunk.source,
                             "stage": "generate"})
            for chunk in chunks]


def seed_samples(leaf: Leaf) -> list[Sample]:
    """The leaf's own seed Q&A, written by people: the most reliable knowledge samples there are.
    (Skill seeds are not trained on: they are the held-out prompts skills are judged on.)"""
    return [Sample(id=stable_id(leaf.path, SEED_GENERATOR, seed.index, k),
                   messages=[{"role": "user", "content": qa.question},
                             {"role": "assistant", "content": qa.answer}],
                   metadata={"leaf": leaf.path, "leaf_kind": "knowledge", "leaf_version": leaf.version,
                             "generator": SEED_GENERATOR,
                             "seed_index": seed.index, "qa_index": k, "stage": "generate"})
            for seed in leaf.seed_examples for k, qa in enumerate(seed.questions_and_answers)]


def _examples(leaf: Leaf, chunk_index: int, n: int = 1) -> list[dict]:
    """Seed contexts with their Q&A, rotating with the chunk so prompts vary across chunks.
    One is enough to show the form, and every extra one costs its length on every chunk."""
    seeds = leaf.seed_examples
    picked = [seeds[(chunk_index + k) % len(seeds)] for k in range(min(n, len(seeds)))]
    return [{"context": s.context, "qas": [{"question": qa.question, "answer": qa.answer}
                                           for qa in s.questions_and_answers]} for s in picked]


def run(ctx: GenContext, candidates: Sequence[Candidate], leaves: dict[str, Leaf]) -> None:
    def leaf(c: Candidate) -> Leaf:
        return leaves[c.leaf]

    teacher_step(ctx, candidates, step="question", template="knowledge_question", into="question",
                 parse=parse_question, params=questioning(ctx),
                 variables=lambda c: {"domain": leaf(c).domain, "outline": leaf(c).document_outline,
                                      "examples": _examples(leaf(c), c.lineage["chunk_index"]),
                                      "chunk": c.context})
    seeds = {path: [qa.question for s in lf.seed_examples for qa in s.questions_and_answers]
             for path, lf in leaves.items()}
    # One pool per chunk (seeded with the leaf's questions), so a leaf split into shards of
    # chunks (the Ray engine) filters exactly as it does in one piece.
    novelty_step(ctx, candidates, seeds, pool=lambda c: (c.leaf, c.lineage["chunk_id"]))
    judge_step(ctx, candidates, "standalone", lambda c: {"question": c.question})
    teacher_step(ctx, candidates, step="answer", template="knowledge_answer", into="answer",
                 parse=parse_answer, params=answering(ctx),
                 variables=lambda c: {"domain": leaf(c).domain, "chunk": c.context, "question": c.question})
    judge_step(ctx, candidates, "faithfulness",
               lambda c: {"context": c.context, "question": c.question, "answer": c.answer})
    judge_step(ctx, candidates, "relevance", lambda c: {"question": c.question, "answer": c.answer})


def shard(c: Candidate, chunks_per_shard: int) -> tuple:
    """A leaf with many chunks splits into shards of chunks: its novelty pools are per chunk."""
    return (c.leaf, c.lineage["chunk_index"] // chunks_per_shard)


# question, standalone, answer, faithfulness, relevance
DECLARATION = Generator(GENERATOR, run, requests=5, leaf_kind=KNOWLEDGE, plan=plan, shard=shard)
