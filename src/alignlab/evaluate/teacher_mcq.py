"""Teacher-written multiple-choice questions on document chunks held out from training.

The teacher reads one chunk and writes a question, its correct answer and three wrong ones in
a strict line format (template `eval_mcq_question`). A reply is kept only if it parses and
gives four distinct options; the options are then shuffled with a seed so the correct one is
not always first. Every reply dropped is counted with its reason (and kept in the tally's
rejects), so a leaf with few questions can be explained.

    items, tally = teacher_mcq(backend, chunks, leaf="knowledge/geography/islands/kelmarra", n=10)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from alignlab.evaluate.mcq import MCQ
from alignlab.llm.types import Backend, GenerationParams, Request
from alignlab.records import stable_id
from alignlab.sdg.templates import load_template
from alignlab.tally import Tally

TEMPLATE = "eval_mcq_question"
PREFILL = "Question:"  # the template's assistant prefill; the reply continues it
_LINE = re.compile(r"^\s*(?:[-*]\s*)?(question|correct|wrong)\s*(?:answer)?\s*:\s*(.*?)\s*$",
                   re.IGNORECASE | re.MULTILINE)


def parse_mcq_reply(text: str) -> tuple[dict[str, object] | None, str]:
    """(question, correct, wrong answers) from a reply, or (None, reason it was dropped)."""
    fields: dict[str, list[str]] = {"question": [], "correct": [], "wrong": []}
    for key, value in _LINE.findall(text):
        if value:
            fields[key.lower()].append(value)
    if not fields["question"]:
        return None, "no_question"
    if not fields["correct"]:
        return None, "no_correct_answer"
    if len(fields["wrong"]) < 3:
        return None, "fewer_than_3_wrong_answers"
    options = [fields["correct"][0], *fields["wrong"][:3]]
    if len({o.lower().rstrip(".") for o in options}) < 4:
        return None, "options_not_distinct"
    return {"question": fields["question"][0], "correct": options[0], "wrong": options[1:]}, ""


def _chunk_counts(n: int, n_chunks: int) -> list[int]:
    """How many questions each chunk gets: spread evenly, every chunk once before any twice."""
    counts = [n // n_chunks] * n_chunks
    extra = n % n_chunks
    for k in range(extra):
        counts[k * n_chunks // extra] += 1
    return counts


def teacher_mcq(backend: Backend, chunks: Sequence[str], leaf: str, n: int, seed: int = 0,
                max_tokens: int = 160, override_dir: str | None = None) -> tuple[list[MCQ], Tally]:
    """Up to `n` validated items for `leaf` from its held-out `chunks` (plain strings)."""
    tally = Tally("eval.teacher_mcq")
    chunks = [c for c in chunks if c.strip()]
    if n <= 0 or not chunks:
        return [], tally
    template = load_template(TEMPLATE, override_dir)
    requests = []
    for chunk, count in zip(chunks, _chunk_counts(n, len(chunks))):
        if count:
            # One greedy question per chunk; several questions from one chunk need sampling.
            params = GenerationParams(max_tokens=max_tokens, n=count, seed=seed,
                                      temperature=0.0 if count == 1 else 0.8)
            requests.append((chunk, Request(messages=tuple(template.messages(chunk=chunk)), params=params)))
    responses = backend.generate([r for _, r in requests])
    items: list[MCQ] = []
    seen: set[str] = set()
    for (chunk, _), response in zip(requests, responses):
        record = {"leaf": leaf, "chunk": chunk[:200]}
        if not response.ok:
            tally.reject({**record, "reply": ""}, "request_failed", leaf, detail={"error": response.error})
            continue
        for choice in response.choices:
            text = f"{PREFILL} {choice.text.strip()}"
            parsed, reason = parse_mcq_reply(text)
            if parsed is None:
                tally.reject({**record, "reply": text}, reason, leaf)
                continue
            question = str(parsed["question"])
            if question.lower() in seen:
                tally.reject({**record, "reply": text}, "duplicate_question", leaf)
                continue
            seen.add(question.lower())
            items.append(shuffled_item(question, str(parsed["correct"]), list(parsed["wrong"]),
                                       leaf, seed))
            tally.keep(leaf)
    return items, tally


def shuffled_item(question: str, correct: str, wrong: list[str], leaf: str, seed: int) -> MCQ:
    """The options in a seeded order that depends on the question, so the correct answer's
    position is spread over A-D and is the same on every run."""
    options = [correct, *wrong]
    rng = random.Random(stable_id(seed, leaf, question))
    rng.shuffle(options)
    return MCQ(id=f"teacher-{stable_id(leaf, question, options)}", question=question,
               choices=tuple(options), answer=options.index(correct), leaf=leaf, source="teacher")
