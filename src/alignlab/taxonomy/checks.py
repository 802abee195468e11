"""alignlab's own checks, on top of InstructLab's verdict: repeated questions, seeds too long
for the configured teacher, skills that mix grounded and freeform seeds.

Each finding is a warning: InstructLab accepts these files, and a warning says what would
make the data better without refusing a tree. They read the raw YAML data (not a `Leaf`), so
they also run on a file the schema rejects and every problem is reported in one pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from alignlab.taxonomy.leaf import Problem, problem_at
from alignlab.yamlpos import PositionedYaml

# A seed is shown to the teacher next to the instructions, two other seeds and room for the
# answer, so one seed may use only an eighth of the teacher's window.
SEED_SHARE_OF_CONTEXT = 8
# The embedded models' windows, from their config.json (`max_position_embeddings`), known
# without converting the model.
EMBEDDED_CONTEXT = {"smollm2-135m": 8192}
DEFAULT_TEACHER = "embedded:smollm2-135m"

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class SeedBudget:
    """How many tokens one seed may use, and where that number comes from (said in the warning)."""

    tokens: int
    source: str  # e.g. "a seed may use of embedded:smollm2-135m's 8192-token context"


def teacher_seed_budget(teacher: str, base_dir: Path | None = None) -> SeedBudget | None:
    """The seed budget of a teacher given by its model spec; None when its window is not known
    without asking a server (an `openai:` teacher): no check is better than a guessed one."""
    from alignlab.llm.specs import parse_spec

    spec = parse_spec(teacher, base_dir)
    context = None
    if spec.kind == "embedded":
        context = EMBEDDED_CONTEXT.get(spec.name)
    elif spec.kind == "local":
        try:
            context = json.loads((Path(spec.name) / "config.json").read_text()).get("max_position_embeddings")
        except (OSError, ValueError):
            context = None
    if not isinstance(context, int):
        return None
    return SeedBudget(context // SEED_SHARE_OF_CONTEXT,
                      f"a seed may use of the teacher's context ({teacher}: {context} tokens, "
                      f"1/{SEED_SHARE_OF_CONTEXT} of it per seed)")


DEFAULT_SEED_BUDGET = teacher_seed_budget(DEFAULT_TEACHER)


def seed_budget(max_seed_tokens: int | SeedBudget | None) -> SeedBudget | None:
    """A plain number is a limit the user set."""
    if isinstance(max_seed_tokens, int):
        return SeedBudget(max_seed_tokens, "tokens allowed for one seed (--max-seed-tokens)")
    return max_seed_tokens


def approx_tokens(text: str) -> int:
    """About four characters per token: close enough for English when no tokenizer is given."""
    return math.ceil(len(text) / 4)


def _seeds(doc: PositionedYaml) -> Iterator[tuple[int, dict]]:
    seeds = doc.data.get("seed_examples") if isinstance(doc.data, dict) else None
    for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
        if isinstance(seed, dict):
            yield i, seed


def _questions(doc: PositionedYaml) -> Iterator[tuple[tuple, str, str]]:
    """(key path of the `question`, its text, the context it is asked about) for every question.
    A grounded skill asks the same question of different contexts ("Summarise this email."),
    so there the pair is what must not repeat; knowledge questions stand on their own."""
    for i, seed in _seeds(doc):
        if isinstance(seed.get("question"), str):
            yield ("seed_examples", i, "question"), seed["question"], str(seed.get("context", ""))
        qas = seed.get("questions_and_answers")
        for j, qa in enumerate(qas if isinstance(qas, list) else []):
            if isinstance(qa, dict) and isinstance(qa.get("question"), str):
                yield ("seed_examples", i, "questions_and_answers", j, "question"), qa["question"], ""


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def duplicate_questions(doc: PositionedYaml, leaf: str | None) -> list[Problem]:
    """A question asked twice in one leaf teaches nothing new and skews generation."""
    first_line: dict[tuple[str, str], int] = {}
    problems = []
    for keys, question, context in _questions(doc):
        normal = (_normal(question), _normal(context))
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


def long_seeds(doc: PositionedYaml, leaf: str | None, max_seed_tokens: int | SeedBudget | None,
               count_tokens: TokenCounter | None = None) -> list[Problem]:
    """Seeds that would not fit in the teacher's prompt budget for one seed."""
    budget = seed_budget(max_seed_tokens)
    if budget is None:
        return []
    count = count_tokens or approx_tokens
    problems = []
    for i, seed in _seeds(doc):
        tokens = count(_seed_text(seed))
        if tokens > budget.tokens:
            problems.append(problem_at(doc, ("seed_examples", i), (
                f"seed example {i + 1} is {tokens} tokens, more than the {budget.tokens} "
                f"{budget.source}; shorten it"), leaf))
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
