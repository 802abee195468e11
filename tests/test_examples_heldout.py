"""The demo's held-out questions measure what training taught only if there are enough of them
and none is one the student was shown: checked on the shipped Kelmarra leaf."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from alignlab.config import load_config
from alignlab.evaluate.mcq import load_mcq_file
from alignlab.evaluate.stage import reported_items

ROOT = Path(__file__).resolve().parents[1]
LEAF = ROOT / "examples/taxonomy/knowledge/geography/islands/kelmarra"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - {"the", "of", "a", "in", "is", "what", "which", "how"}


def test_kelmarra_ships_enough_distinct_heldout_questions():
    items = load_mcq_file(LEAF / "heldout_mcq.jsonl", leaf="kelmarra")
    assert len(items) >= 120
    assert len({i.question.lower() for i in items}) == len(items)
    assert all(len(i.choices) == 4 for i in items)
    # Reported questions (the share not used for checkpoint selection): one is under 2 points.
    reported = [i for i in reported_items(load_config(ROOT / "examples/alignlab.yaml")) if i.leaf.endswith("kelmarra")]
    assert len(reported) >= 60


def test_no_heldout_question_asks_what_a_seed_answers():
    """A seed Q&A is training data; a held-out question asking the same thing (similar wording,
    and the right option stated in the seed's answer) would measure recall of the seed."""
    seeds = yaml.safe_load((LEAF / "qna.yaml").read_text())["seed_examples"]
    seed_qas = [qa for s in seeds for qa in s["questions_and_answers"]]
    for item in load_mcq_file(LEAF / "heldout_mcq.jsonl", leaf="kelmarra"):
        right = item.choices[item.answer].lower().removeprefix("the ")
        for qa in seed_qas:
            a, b = _words(item.question), _words(qa["question"])
            similar = len(a & b) / len(a | b) >= 0.5
            assert item.question.lower() != qa["question"].lower(), item.id
            assert not (similar and right in qa["answer"].lower()), (item.id, item.question, qa["question"])
