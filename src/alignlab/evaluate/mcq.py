"""Knowledge by multiple choice: score every option by its log-likelihood as the answer.

An item is `{"id", "question", "choices": [...], "answer": index}`. The question (alone, or
followed by lettered options) is the user turn of a chat, each option text is scored as the
assistant's reply, and the option with the highest log-likelihood is the model's pick. Nothing
is generated, so the result is deterministic and cheap, and it works on any model that gives
log-likelihoods.

Two picks are reported. `acc` takes the option with the highest *summed* log-likelihood, which
favours short options (every extra token costs probability); `acc_norm` divides by the
option's length in characters first, as lm-evaluation-harness does. Characters rather than
tokens keep the figure independent of the tokenizer and comparable with lm-eval's. The
headline is `acc` unless `eval.length_normalise` is set: knowledge answers are short names,
numbers and years of similar length, where dividing by 4-6 characters mostly hands the pick
to the longer option ("Milan" over "Rome"); on the shipped general set the embedded model
scores 0.75 summed and 0.62 normalised, while both sit at chance on unseen facts.

The question goes in alone (`plain`): listing lettered options under it (`lettered`) made the
embedded model mostly pick whichever option was listed first (general set 0.38 instead of
0.75), so `plain` is the default formulation.

Items come from each knowledge leaf's `heldout_mcq.jsonl`, from files named in the config,
from teacher-written questions on held-out chunks (see `teacher_mcq.py`) and from the shipped
general-knowledge set used to measure forgetting.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignlab.errors import ConfigError
from alignlab.llm.types import Backend, ScoreRequest
from alignlab.progress import progress_bar
from alignlab.stats import mean_interval, wilson
from alignlab.taxonomy.leaf import HELDOUT_MCQ
GENERAL_MCQ = Path(__file__).parent / "data" / "general_mcq.jsonl"
LETTERS = "ABCDEFGHIJ"
FORMULATIONS = ("plain", "lettered")
ITEMS_PER_STEP = 16  # items scored per backend call, so the progress bar moves


@dataclass(frozen=True)
class MCQ:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int
    leaf: str  # taxonomy leaf path, or "general", or the file's name for a user file
    source: str  # heldout | teacher | file | general

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "choices": list(self.choices)}


def parse_mcq(row: Any, where: str, leaf: str, source: str) -> MCQ:
    """Validate one item; every problem names its file:line."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: each line must be a JSON object")
    unknown = set(row) - {"id", "question", "choices", "answer", "leaf", "source"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} "
                          f"(an item is {{id, question, choices, answer}})")
    question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: 'question' must be a non-empty string")
    if (not isinstance(choices, list) or len(choices) < 2
            or not all(isinstance(c, str) and c.strip() for c in choices)):
        raise ConfigError(f"{where}: 'choices' must be a list of at least 2 non-empty strings")
    if len({c.strip().lower() for c in choices}) != len(choices):
        raise ConfigError(f"{where}: 'choices' has the same option twice: {choices}")
    if len(choices) > len(LETTERS):
        raise ConfigError(f"{where}: at most {len(LETTERS)} choices, got {len(choices)}")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ConfigError(f"{where}: 'answer' must be the index (0-{len(choices) - 1}) of the "
                          f"correct choice, got {answer!r}")
    item_id = str(row.get("id") or f"{leaf}:{question}")
    return MCQ(item_id, question.strip(), tuple(c.strip() for c in choices), answer,
               str(row.get("leaf") or leaf), str(row.get("source") or source))


def load_mcq_file(path: str | Path, leaf: str | None = None, source: str = "file") -> list[MCQ]:
    """Items of one JSONL file. Read line by line here (not with store.read_jsonl) so that a
    validation error can name the line, not just a JSON syntax error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: MCQ file not found")
    items, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not valid JSON ({e.msg})") from e
            item = parse_mcq(row, where, leaf or path.stem, source)
            if item.id in seen:
                raise ConfigError(f"{where}: id {item.id!r} already used at line {seen[item.id]}")
            seen[item.id] = lineno
            items.append(item)
    return items


def taxonomy_mcq(taxonomy_root: str | Path) -> list[MCQ]:
    """Every leaf's held-out questions; the leaf is the file's folder relative to the root."""
    root = Path(taxonomy_root)
    items: list[MCQ] = []
    for path in sorted(root.glob(f"**/{HELDOUT_MCQ}")):
        leaf = path.parent.relative_to(root).as_posix()
        items.extend(load_mcq_file(path, leaf=leaf, source="heldout"))
    return items


def general_mcq(setting: str | None, base_dir: Path | None = None) -> list[MCQ]:
    """The general-knowledge set: 'builtin' is the shipped file, None disables."""
    if not setting:
        return []
    path = GENERAL_MCQ if setting == "builtin" else Path(setting)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return load_mcq_file(path, leaf="general", source="general")


# ------------------------------------------------------------------ scoring


def mcq_prompt(item: MCQ, formulation: str = "plain") -> str:
    """The user turn. `lettered` lists the options under the question, but the continuation
    scored is still the option text, not its letter: a small model's letter choice is mostly
    position bias, while the text carries what it knows."""
    if formulation == "plain":
        return item.question
    if formulation == "lettered":
        options = "\n".join(f"{LETTERS[k]}. {c}" for k, c in enumerate(item.choices))
        return f"{item.question}\n\n{options}"
    raise ConfigError(f"unknown MCQ formulation {formulation!r} (one of {', '.join(FORMULATIONS)})")


def score_requests(item: MCQ, formulation: str = "plain") -> list[ScoreRequest]:
    context = ({"role": "user", "content": mcq_prompt(item, formulation)},)
    return [ScoreRequest(context=context, continuation=choice) for choice in item.choices]


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda k: values[k])  # first of equals, like numpy


def score_mcq(backend: Backend, items: Sequence[MCQ], formulation: str = "plain",
              description: str = "MCQ") -> list[dict[str, Any]]:
    """One result row per item: the log-likelihood of each option and both picks."""
    rows: list[dict[str, Any]] = []
    with progress_bar(transient=True) as progress:
        task = progress.add_task(description, total=len(items), status="")
        for start in range(0, len(items), ITEMS_PER_STEP):
            chunk = items[start:start + ITEMS_PER_STEP]
            requests = [r for item in chunk for r in score_requests(item, formulation)]
            scores = iter(backend.loglikelihood(requests))
            for item in chunk:
                got = [next(scores) for _ in item.choices]
                rows.append(_result_row(item, got))
            correct = sum(r["correct"] for r in rows if r["error"] is None)
            progress.update(task, advance=len(chunk), status=f"acc {correct / len(rows):.2f}")
    return rows


def _result_row(item: MCQ, scores: Sequence[Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": item.id, "leaf": item.leaf, "source": item.source,
                           "answer": item.answer, "choices": list(item.choices)}
    errors = [s.error for s in scores if s.error]
    if errors:
        return {**row, "error": errors[0], "pred": None, "pred_norm": None,
                "correct": False, "correct_norm": False}
    logprobs = [s.logprob for s in scores]
    normalised = [lp / len(c) for lp, c in zip(logprobs, item.choices)]
    pred, pred_norm = _argmax(logprobs), _argmax(normalised)
    return {**row, "error": None, "logprobs": logprobs, "n_tokens": [s.n_tokens for s in scores],
            "pred": pred, "pred_norm": pred_norm,
            "correct": pred == item.answer, "correct_norm": pred_norm == item.answer}


# ------------------------------------------------------------------ aggregation


def _margin(row: dict[str, Any]) -> float:
    """How far the right option's log-likelihood lies above the best wrong one's (nats): the
    knowledge a model has of an item as a continuous figure, which moves before the pick does."""
    right = row["logprobs"][row["answer"]]
    return right - max(lp for k, lp in enumerate(row["logprobs"]) if k != row["answer"])


def _p_right(row: dict[str, Any]) -> float:
    """The share of probability the model puts on the right option among the item's options
    (a softmax over their log-likelihoods): bounded in [0, 1], so unlike the margin one item
    with a far-off option cannot swing a mean, and it moves before the pick does."""
    top = max(row["logprobs"])
    weights = [math.exp(lp - top) for lp in row["logprobs"]]
    return weights[row["answer"]] / sum(weights)


def _key(row: dict[str, Any]) -> str:
    return f"{row['leaf']}/{row['id']}"


def accuracy(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Accuracies with their 95 % (Wilson) intervals, the mean margin, and each item's outcome
    under `per_item` so that two models can be compared on the same questions."""
    rows = list(rows)
    scored = [r for r in rows if r["error"] is None]
    n = len(scored)
    correct = sum(r["correct"] for r in scored)
    correct_norm = sum(r["correct_norm"] for r in scored)
    margins = [_margin(r) for r in scored]
    p_right = [_p_right(r) for r in scored]
    return {"n": n, "failed": len(rows) - n,
            "acc": correct / n if n else None, "acc_ci": wilson(correct, n),
            "acc_norm": correct_norm / n if n else None, "acc_norm_ci": wilson(correct_norm, n),
            "margin": sum(margins) / n if n else None, "margin_ci": mean_interval(margins),
            "p_right": sum(p_right) / n if n else None, "p_right_ci": mean_interval(p_right),
            "chance": sum(1 / len(r["choices"]) for r in scored) / n if n else None,
            "per_item": {"acc": {_key(r): int(r["correct"]) for r in scored},
                         "acc_norm": {_key(r): int(r["correct_norm"]) for r in scored},
                         "margin": {_key(r): m for r, m in zip(scored, margins)},
                         "p_right": {_key(r): p for r, p in zip(scored, p_right)}}}


def mcq_summary(rows: Sequence[dict[str, Any]], headline: str = "acc") -> dict[str, Any]:
    """Overall (every item counts once) and per-leaf accuracy; `headline` names the metric
    the summaries and checkpoint selection use."""
    by_leaf: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_leaf[r["leaf"]].append(r)
        by_source[r["source"]].append(r)
    return {"headline": headline, "overall": accuracy(rows),
            "by_leaf": {leaf: accuracy(leaf_rows) for leaf, leaf_rows in sorted(by_leaf.items())},
            "by_source": {src: accuracy(src_rows) for src, src_rows in sorted(by_source.items())}}
