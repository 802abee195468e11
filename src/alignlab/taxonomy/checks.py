"""Checks the JSON schema cannot express: repeated questions, seeds too long for the teacher,
skills that mix grounded and freeform seeds.

They read the raw YAML data (not a `Leaf`), so they still run on a file the schema rejects
and every problem is reported in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from alignlab.taxonomy.leaf import Problem, problem_at
from alignlab.yamlpos import PositionedYaml

# A seed is shown to the teacher next to instructions, other seeds and room for the answer,
# so one seed may use only a fraction of a small model's window.
DEFAULT_MAX_SEED_TOKENS = 1024

TokenCounter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """About four characters per token: close enough for English when no tokenizer is given."""
    return math.ceil(len(text) / 4)


def _seeds(doc: PositionedYaml) -> Iterator[tuple[int, dict]]:
    seeds = doc.data.get("seed_examples") if isinstance(doc.data, dict) else None
    for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
        if isinstance(seed, dict):
            yield i, seed


def _questions(doc: PositionedYaml) -> Iterator[tuple[tuple, str]]:
    """(key path of the `question`, its text) for every question, skill or knowledge."""
    for i, seed in _seeds(doc):
        if isinstance(seed.get("question"), str):
            yield ("seed_examples", i, "question"), seed["question"]
        qas = seed.get("questions_and_answers")
        for j, qa in enumerate(qas if isinstance(qas, list) else []):
            if isinstance(qa, dict) and isinstance(qa.get("question"), str):
                yield ("seed_examples", i, "questions_and_answers", j, "question"), qa["question"]


def duplicate_questions(doc: PositionedYaml, leaf: str | None) -> list[Problem]:
    """A question asked twice in one leaf teaches nothing new and skews generation."""
    first_line: dict[str, int] = {}
    problems = []
    for keys, question in _questions(doc):
        normal = " ".join(question.split()).casefold()
        if normal in first_line:
            problems.append(problem_at(doc, keys, f"duplicate question (first asked at line "
                                                   f"{first_line[normal]}): {question.strip()[:60]!r}", leaf))
        else:
            first_line[normal] = doc.loc(keys)[0]
    return problems


def _seed_text(seed: dict) -> str:
    parts = [seed.get("context"), seed.get("question"), seed.get("answer")]
    qas = seed.get("questions_and_answers")
    for qa in qas if isinstance(qas, list) else []:
        if isinstance(qa, dict):
            parts += [qa.get("question"), qa.get("answer")]
    return "\n".join(p for p in parts if isinstance(p, str))


def long_seeds(doc: PositionedYaml, leaf: str | None, max_seed_tokens: int | None,
               count_tokens: TokenCounter | None = None) -> list[Problem]:
    """Seeds that would not fit in the teacher's prompt budget for one seed."""
    if max_seed_tokens is None:
        return []
    count = count_tokens or approx_tokens
    problems = []
    for i, seed in _seeds(doc):
        tokens = count(_seed_text(seed))
        if tokens > max_seed_tokens:
            problems.append(problem_at(doc, ("seed_examples", i), (
                f"seed example {i + 1} is {tokens} tokens, more than the {max_seed_tokens} a seed "
                f"may use of the teacher's context; shorten it"), leaf))
    return problems


def mixed_contexts(doc: PositionedYaml, leaf: str | None) -> list[Problem]:
    """A skill's seeds must all have a context (grounded) or none (freeform)."""
    with_context = [i + 1 for i, seed in _seeds(doc) if "context" in seed]
    without = [i + 1 for i, seed in _seeds(doc) if "context" not in seed]
    if not with_context or not without:
        return []
    return [problem_at(doc, ("seed_examples",), (
        f"seed examples {_numbers(with_context)} have a context but {_numbers(without)} do not; "
        f"give every seed a context (grounded skill) or none (freeform skill)"), leaf)]


def _numbers(items: list[int]) -> str:
    return ", ".join(map(str, items))
