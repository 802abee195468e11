"""Evaluation: MCQ scoring and aggregation, teacher-written MCQ, judged prompts, pairwise win
rate and forgetting, on scripted backends (and the tiny model where the answer is fixed by
construction)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import pytest

from alignlab.errors import ConfigError
from alignlab.evaluate.config import JudgedSettings
from alignlab.evaluate.forgetting import forgetting_rows, forgetting_table
from alignlab.evaluate.judged import (
    answer_prompts, judge_answers, judged_summary, pairwise, skill_prompts, win_rate,
)
from alignlab.evaluate.mcq import (
    MCQ, accuracy, general_mcq, load_mcq_file, mcq_summary, score_mcq, taxonomy_mcq,
)
from alignlab.evaluate.teacher_mcq import parse_mcq_reply, teacher_mcq
from alignlab.llm.types import GenerationParams, Request, ScoreRequest
from fakes import FakeBackend, label_choice, user_text


def shown_pair(request: Request) -> tuple[str, str]:
    """The two responses the pairwise judge sees, in the order shown."""
    m = re.search(r"Response A:\n(.*?)\n\nResponse B:\n(.*?)\n\nWhich", user_text(request), re.S)
    assert m, "judge_pairwise template changed: update the fake judge"
    return m.group(1), m.group(2)


def item(question: str, choices: Sequence[str], answer: int, leaf: str = "leaf") -> MCQ:
    return MCQ(id=question, question=question, choices=tuple(choices), answer=answer, leaf=leaf,
               source="test")


# ------------------------------------------------------------------ MCQ


def test_scorer_ranks_the_favoured_option_first_wherever_it_stands():
    favoured = {"Druvik", "Seven", "The Gullwren"}
    backend = FakeBackend(loglik=lambda r: -1.0 if r.continuation in favoured else -9.0)
    items = [item("Capital?", ["Gethwick", "Braskett", "Druvik", "Port Halvenna"], 2),
             item("Days?", ["Seven", "Five", "Ten", "Twelve"], 0),
             item("Ship?", ["The Sennet", "The Gullwren", "The Corvane", "The Lunquist"], 3)]
    rows = score_mcq(backend, items)
    assert [r["pred"] for r in rows] == [2, 0, 1]
    assert [r["correct"] for r in rows] == [True, True, False]
    assert accuracy(rows)["acc"] == pytest.approx(2 / 3)


def test_summed_and_length_normalised_picks_differ_as_defined():
    # "ab" costs 2 nats (1 per character), "abcdefgh" costs 4 (0.5 per character): the summed
    # pick is the short option, the normalised pick the long one.
    cost = {"ab": -2.0, "abcdefgh": -4.0, "xyz": -6.0}
    rows = score_mcq(FakeBackend(loglik=lambda r: cost[r.continuation]),
                     [item("q", ["ab", "abcdefgh", "xyz"], 1)])
    assert (rows[0]["pred"], rows[0]["pred_norm"]) == (0, 1)
    assert (rows[0]["correct"], rows[0]["correct_norm"]) == (False, True)


def test_options_are_scored_as_the_assistant_reply_to_the_question():
    seen: list[ScoreRequest] = []
    backend = FakeBackend(loglik=lambda r: seen.append(r) or 0.0)
    score_mcq(backend, [item("Where is Kelmarra?", ["North", "South"], 0)], formulation="lettered")
    assert [r.continuation for r in seen] == ["North", "South"]
    assert seen[0].context == ({"role": "user", "content": "Where is Kelmarra?\n\nA. North\nB. South"},)


def test_tiny_model_picks_its_own_greedy_continuation(tiny_backend):
    # The correct option is, by construction, what the model itself would say: its greedy
    # continuation of the question. Every token of it is the model's argmax, so it must
    # outscore distractors of the same length; `is_greedy` confirms the construction held.
    questions = ["What is the capital of Kelmarra?", "Name a river.", "Who wrote the psalms?"]
    params = GenerationParams(max_tokens=4, temperature=0.0)
    greedy = [r.text for r in tiny_backend.generate(
        [Request(messages=({"role": "user", "content": q},), params=params) for q in questions])]
    distractors = ["Port Halvenna bay", "a quiet valley", "The Tamsel River", "eleven"]
    items = []
    for k, (q, g) in enumerate(zip(questions, greedy)):
        options = [d for d in distractors if d != g][:3]
        options.insert(k % 4, g)
        items.append(item(q, options, k % 4))
    checks = tiny_backend.loglikelihood([ScoreRequest(({"role": "user", "content": it.question},),
                                                      it.choices[it.answer]) for it in items])
    assert all(s.is_greedy for s in checks), "the greedy text did not re-tokenise to itself"
    rows = score_mcq(tiny_backend, items)
    assert [r["pred"] for r in rows] == [it.answer for it in items]


def test_per_leaf_accuracy_counts_each_leaf_separately():
    def row(leaf, source, item, logprobs, answer=0, error=None):
        pred = max(range(len(logprobs)), key=lambda k: logprobs[k])
        return {"id": item, "leaf": leaf, "source": source, "error": error, "answer": answer,
                "choices": ["x"] * len(logprobs), "logprobs": logprobs, "pred": pred,
                "correct": pred == answer, "correct_norm": pred == answer and item != "a2"}
    rows = [row("a", "heldout", "a1", [-1.0, -3.0, -4.0, -5.0]), row("a", "heldout", "a2", [-2.0, -2.5, -4.0, -5.0]),
            row("a", "heldout", "a3", [-3.0, -1.0, -4.0, -5.0]), row("b", "teacher", "b1", [-1.0, -2.0]),
            {**row("b", "teacher", "b2", [-1.0, -2.0]), "error": "context length exceeded"}]
    summary = mcq_summary(rows, headline="acc")
    a = summary["by_leaf"]["a"]
    assert (a["n"], a["failed"], a["chance"]) == (3, 0, 0.25)
    assert a["acc"] == pytest.approx(2 / 3) and a["acc_norm"] == pytest.approx(1 / 3)
    # Wilson's interval of 2/3 on three questions is wide and stays inside [0, 1].
    assert a["acc_ci"] == pytest.approx((0.2077, 0.9385), abs=1e-4)
    # The margin: the right option's log-likelihood minus the best wrong one's.
    assert a["per_item"]["margin"] == pytest.approx({"a/a1": 2.0, "a/a2": 0.5, "a/a3": -2.0})
    assert a["margin"] == pytest.approx(0.5 / 3)
    # The share of probability on the right option: a softmax over the options' log-likelihoods.
    softmax_first = 1 / (1 + math.exp(-0.5) + math.exp(-2.0) + math.exp(-3.0))
    assert a["per_item"]["p_right"]["a/a2"] == pytest.approx(softmax_first)
    assert 0 < a["p_right_ci"][0] < a["p_right"] < a["p_right_ci"][1] < 1
    assert a["per_item"]["acc"] == {"a/a1": 1, "a/a2": 1, "a/a3": 0}
    assert summary["by_leaf"]["b"]["n"] == 1 and summary["by_leaf"]["b"]["failed"] == 1
    assert summary["by_leaf"]["b"]["acc"] == 1.0
    assert summary["overall"]["acc"] == pytest.approx(3 / 4)
    assert summary["by_source"]["teacher"]["n"] == 1 and summary["by_source"]["heldout"]["n"] == 3


def test_taxonomy_heldout_files_are_found_per_leaf(tmp_path):
    for leaf in ("knowledge/history/kelmarra", "knowledge/science/tides"):
        (tmp_path / leaf).mkdir(parents=True)
        (tmp_path / leaf / "heldout_mcq.jsonl").write_text(
            json.dumps({"id": f"{leaf}-1", "question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}) + "\n")
    items = taxonomy_mcq(tmp_path)
    assert sorted(it.leaf for it in items) == ["knowledge/history/kelmarra", "knowledge/science/tides"]
    assert all(it.source == "heldout" and it.answer == 1 for it in items)


@pytest.mark.parametrize("line, message", [
    ({"question": "Q?", "choices": ["a", "b"], "answer": 2}, "'answer' must be the index"),
    ({"question": "Q?", "choices": ["a", "A"], "answer": 0}, "same option twice"),
    ({"question": "", "choices": ["a", "b"], "answer": 0}, "'question' must be"),
    ({"question": "Q?", "choices": "a b", "answer": 0}, "'choices' must be a list"),
    ({"question": "Q?", "choices": ["a", "b"], "answer": 0, "anwser": 1}, "unknown keys"),
])
def test_bad_mcq_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "mine.jsonl"
    good = {"id": "ok", "question": "Fine?", "choices": ["y", "n"], "answer": 0}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(line) + "\n")
    with pytest.raises(ConfigError, match=rf"mine.jsonl:3: .*{message}"):
        load_mcq_file(path)


def test_shipped_general_set_is_valid_and_balanced():
    items = general_mcq("builtin")
    assert len(items) >= 30 and all(len(it.choices) == 4 for it in items)
    positions = [it.answer for it in items]
    assert max(positions.count(k) for k in range(4)) - min(positions.count(k) for k in range(4)) <= 1


# ------------------------------------------------------------------ teacher-written MCQ

GOOD_REPLY = ("What is the capital of Kelmarra?\nCorrect: Port Halvenna\nWrong: Druvik\n"
              "Wrong: Gethwick\nWrong: Braskett")


def test_parse_reply_keeps_the_strict_format_and_drops_the_rest():
    parsed, reason = parse_mcq_reply("Question: " + GOOD_REPLY)
    assert reason == "" and parsed == {"question": "What is the capital of Kelmarra?",
                                       "correct": "Port Halvenna", "wrong": ["Druvik", "Gethwick", "Braskett"]}
    assert parse_mcq_reply("Question: Q?\nCorrect: A\nWrong: B\nWrong: C")[1] == "fewer_than_3_wrong_answers"
    assert parse_mcq_reply("Question: Q?\nCorrect: A\nWrong: B\nWrong: a\nWrong: C")[1] == "options_not_distinct"
    assert parse_mcq_reply("Question: Q?\nWrong: B\nWrong: a\nWrong: C")[1] == "no_correct_answer"
    assert parse_mcq_reply("The capital is Port Halvenna.")[1] == "no_question"


def test_teacher_mcq_validates_shuffles_and_counts_drops():
    def reply(request: Request) -> str:
        chunk = user_text(request)
        if "garbled" in chunk:
            return "I am not sure what to ask."
        n = int(re.search(r"fact (\d+)", chunk).group(1))
        return f"What is fact {n}?\nCorrect: right {n}\nWrong: wrong {n}a\nWrong: wrong {n}b\nWrong: wrong {n}c"

    chunks = [f"This text states fact {n}." for n in range(8)] + ["garbled text"]
    items, tally = teacher_mcq(FakeBackend(reply=reply), chunks, "knowledge/x", n=9, seed=3)
    assert len(items) == 8 and tally.counts()["by_reason"] == {"no_correct_answer": 1}
    for it in items:
        assert len(set(it.choices)) == 4 and it.choices[it.answer].startswith("right")
        assert it.leaf == "knowledge/x" and it.source == "teacher"
    assert len({it.answer for it in items}) > 1, "the correct option always landed in one place"
    again, _ = teacher_mcq(FakeBackend(reply=reply), chunks, "knowledge/x", n=9, seed=3)
    assert [it.choices for it in again] == [it.choices for it in items]


# ------------------------------------------------------------------ judged prompts


def write_skill_leaves(root) -> None:
    freeform = root / "compositional_skills" / "writing" / "haiku"
    grounded = root / "compositional_skills" / "extraction" / "dates"
    for folder in (freeform, grounded):
        folder.mkdir(parents=True)
    (freeform / "qna.yaml").write_text(
        "version: 2\ntask_description: haiku\ncreated_by: me\nseed_examples:\n"
        + "".join(f"  - question: Write a haiku about {t}.\n    answer: A haiku.\n"
                  for t in ("rain", "snow", "tea", "ink", "moss")))
    (grounded / "qna.yaml").write_text(
        "version: 2\ntask_description: dates\ncreated_by: me\nseed_examples:\n"
        + "".join(f"  - question: When did event {y} happen?\n    context: It happened in {y}.\n"
                  f"    answer: In {y}.\n" for y in (1841, 1842, 1843, 1844, 1845)))


def test_skill_prompts_come_from_seed_examples(tmp_path):
    write_skill_leaves(tmp_path)
    prompts = skill_prompts(tmp_path, max_per_leaf=2)
    assert [p["leaf"] for p in prompts] == ["compositional_skills/extraction/dates"] * 2 + \
        ["compositional_skills/writing/haiku"] * 2
    assert prompts[0]["context"] == "It happened in 1841." and prompts[2]["context"] is None


def test_judged_scores_per_leaf_are_expected_scores_of_the_score_tokens(tmp_path):
    write_skill_leaves(tmp_path)
    prompts = skill_prompts(tmp_path)
    model = FakeBackend(reply=lambda r: "GOOD" if "haiku" in user_text(r) else "bad")
    answers = answer_prompts(model, prompts, max_tokens=16)
    # The judge puts P=0.5 on "4" and "5" for a good answer (expected 4.5), P=1 on "2" otherwise.
    judge = FakeBackend(reply=lambda r: label_choice({"4": 0.5, "5": 0.5} if "Response: GOOD" in user_text(r)
                                                   else {"2": 1.0}))
    rows = judge_answers(judge, prompts, answers, JudgedSettings())
    summary = judged_summary(rows)
    assert summary["by_leaf"]["compositional_skills/writing/haiku"]["mean_score"] == pytest.approx(4.5)
    assert summary["by_leaf"]["compositional_skills/extraction/dates"]["mean_score"] == pytest.approx(2.0)
    assert summary["overall"]["mean_score"] == pytest.approx((5 * 4.5 + 5 * 2.0) / 10)
    assert all(r["method"] == "prefix-logprobs" for r in rows)


PROMPTS = [{"leaf": "skills/a", "question": f"Question {k}?"} for k in range(4)] + \
          [{"leaf": "skills/b", "question": "Other?"}]


def test_win_rate_cancels_a_judge_that_always_prefers_the_first_position():
    judge = FakeBackend(reply=lambda r: label_choice({"A": 0.9, "B": 0.1}))
    result = pairwise(judge, PROMPTS, ["x"] * 5, ["y"] * 5, tie_band=0.1)
    assert result["overall"]["win_rate"] == pytest.approx(0.5)
    assert (result["overall"]["wins"], result["overall"]["ties"], result["overall"]["losses"]) == (0, 5, 0)


def test_win_rate_is_symmetric_and_finds_the_better_model_despite_position_bias():
    def judge_probs(request: Request) -> dict[str, float]:
        first, second = shown_pair(request)
        # Prefers the longer answer, plus a pull towards whatever is shown first.
        p = min(0.99, max(0.01, 0.5 + 0.05 * (len(first) - len(second)) + 0.2))
        return {"A": p, "B": 1 - p}

    judge = FakeBackend(reply=lambda r: label_choice(judge_probs(r)))
    a = ["a long and careful answer", "short", "medium answer", "the best answer of all", "same"]
    b = ["short", "a much longer answer here", "medium answr", "tiny", "same"]
    ab, ba = pairwise(judge, PROMPTS, a, b), pairwise(judge, PROMPTS, b, a)
    assert ab["overall"]["win_rate"] + ba["overall"]["win_rate"] == pytest.approx(1.0)
    for leaf in ab["by_leaf"]:
        assert ab["by_leaf"][leaf]["win_rate"] == pytest.approx(1 - ba["by_leaf"][leaf]["win_rate"])
    assert (ab["overall"]["wins"], ab["overall"]["losses"]) == (ba["overall"]["losses"], ba["overall"]["wins"])
    assert ab["overall"]["win_rate"] > 0.5
    assert ab["rows"][4]["p_a_better"] == pytest.approx(0.5)  # equal answers: the bias cancels


def test_win_rate_counts_with_tie_band():
    assert win_rate([0.9, 0.55, 0.45, 0.2, None], tie_band=0.1) == {
        "n": 4, "unparseable": 1, "win_rate": pytest.approx(0.525), "win_rate_ci": pytest.approx([0.2875, 0.7875]),
        "wins": 1, "ties": 2, "losses": 1}


# ------------------------------------------------------------------ forgetting


def result(mcq: dict[str, float], general: float, judged: dict[str, float]) -> dict:
    return {"mcq": {"headline": "acc", "overall": {"acc": sum(mcq.values()) / len(mcq)},
                    "by_leaf": {k: {"acc": v} for k, v in mcq.items()}},
            "general": {"headline": "acc", "overall": {"acc": general}, "by_leaf": {"general": {"acc": general}}},
            "judged": {"overall": {"mean_score": sum(judged.values()) / len(judged)},
                       "by_leaf": {k: {"mean_score": v} for k, v in judged.items()}}}


def test_forgetting_rows_give_per_leaf_deltas():
    before = result({"knowledge/a": 0.25, "knowledge/b": 0.5}, 0.75, {"skills/x": 3.0})
    after = result({"knowledge/a": 0.75, "knowledge/c": 1.0}, 0.5, {"skills/x": 3.5})
    rows = {(r["leaf"], r["metric"]): r for r in forgetting_rows(before, after)}
    assert rows[("knowledge/a", "mcq_acc")]["delta"] == pytest.approx(0.5)
    assert rows[("general", "general_acc")]["delta"] == pytest.approx(-0.25)
    assert rows[("skills/x", "judge_score")]["delta"] == pytest.approx(0.5)
    assert rows[("knowledge/b", "mcq_acc")]["after"] is None and rows[("knowledge/b", "mcq_acc")]["delta"] is None
    assert rows[("knowledge/c", "mcq_acc")]["before"] is None
    assert rows[("(all)", "mcq_acc")]["delta"] == pytest.approx((0.75 + 1.0) / 2 - 0.375)
    assert forgetting_table(list(rows.values())).row_count == len(rows)


def test_selection_share_keeps_checkpoint_selection_off_the_reported_questions():
    from alignlab.evaluate.stage import split_heldout

    items = [item(f"Question {k}?", ["a", "b"], 0) for k in range(300)]
    select, report = split_heldout(items, 0.33, lambda i: i.id)
    assert not {i.id for i in select} & {i.id for i in report} and len(select) + len(report) == 300
    assert 70 < len(select) < 130  # about a third
    assert split_heldout(items, 0.33, lambda i: i.id) == (select, report)  # fixed by the ids
    assert split_heldout(items, 0.0, lambda i: i.id) == (items, items)
