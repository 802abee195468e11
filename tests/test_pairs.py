"""Pair construction from a ladder, judge verification, AI-feedback pairs and revision pairs,
with a scripted backend whose judge answers carry label log-probabilities."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest

from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend, Choice, Request, TokenLogprob
from alignlab.pairs.construct import construct_pairs
from alignlab.pairs.feedback import ai_feedback_pairs
from alignlab.pairs.revise import revision_pairs
from alignlab.pairs.verify import verify_pairs
from alignlab.pairs.answers import ladder_answers, two_samples
from alignlab.records import Pair, stable_id
from alignlab.sdg.templates import load_template
from fakes import FakeBackend, label_choice

JUDGE = re.compile(r"Instruction: (.*?)\n\nResponse A:\n(.*?)\n\nResponse B:\n(.*?)\n\nWhich", re.DOTALL)
REVISE = re.compile(r"Instruction: (.*?)\n\nAnswer:\n(.*?)\n\nRewrite", re.DOTALL)


def ScriptedBackend(model_id: str, judge: Callable | None = None, revise: Callable | None = None,
                    answer: Callable | None = None) -> FakeBackend:
    """A backend whose replies come from Python functions:
    judge(prompt, first, second) -> P("A") or None (a reply with no label at all),
    revise(prompt, answer) -> (text, finish_reason) or None (a failed request),
    answer(prompt, sample_seed) -> text for any other request."""

    def reply(request: Request) -> str | Choice | None:
        user = next(m["content"] for m in request.messages if m["role"] == "user")
        if (m := JUDGE.search(user)) and judge:
            p_a = judge(*m.groups())
            if p_a is None:
                return Choice("The answer", logprobs=[TokenLogprob("The", -0.1, [("The", -0.1)])])
            p_a = min(max(p_a, 1e-6), 1 - 1e-6)
            return label_choice({" A": p_a, " B": 1 - p_a})
        if (m := REVISE.search(user)) and revise:
            revised = revise(*m.groups())
            return None if revised is None else Choice(revised[0], finish_reason=revised[1])
        return answer(user, request.params.seed)

    return FakeBackend(reply, model_id=model_id)


def test_scripted_backend_is_a_backend():
    assert isinstance(ScriptedBackend("x"), Backend)


# ---------------------------------------------------------------- construction

MODELS = ["big", "mid", "small", "tiny"]


def test_construct_emits_every_rung_pair_with_gap_and_difficulty():
    prompts = ["q0", "q1", "q2"]
    answers = [[f"{m} answers {q}" for q in prompts] for m in MODELS]
    pairs, rejects = construct_pairs(prompts, answers, MODELS, prompt_metadata=[{"leaf": f"l{k}"} for k in range(3)])
    assert not rejects and len(pairs) == 3 * 6
    seen = {(p.metadata["prompt_index"], p.metadata["chosen_rung"], p.metadata["rejected_rung"]) for p in pairs}
    assert seen == {(k, i, j) for k in range(3) for i in range(4) for j in range(i + 1, 4)}
    for p in pairs:
        m = p.metadata
        i, j = m["chosen_rung"], m["rejected_rung"]
        assert m["gap"] == j - i and m["chosen_model"] == MODELS[i] and m["rejected_model"] == MODELS[j]
        assert p.chosen[0]["content"] == answers[i][m["prompt_index"]]
        assert p.rejected[0]["content"] == answers[j][m["prompt_index"]]
        assert m["leaf"] == f"l{m['prompt_index']}"
    difficulty = {p.metadata["gap"]: p.metadata["difficulty"] for p in pairs}
    assert difficulty == pytest.approx({1: 1.0, 2: 2 / 3, 3: 1 / 3})  # largest gap is easiest
    ids = [p.id for p in pairs]
    assert len(set(ids)) == len(ids)
    assert ids == [p.id for p in construct_pairs(prompts, answers, MODELS)[0]]  # stable across runs
    assert all(Pair.from_dict(p.to_dict()) == p for p in pairs)


def test_construct_rejects_identical_and_missing_answers_with_reasons():
    answers = [["same answer", "a"], ["same  answer\n", "b"], [None, "c"]]
    pairs, rejects = construct_pairs(["q0", "q1"], answers, MODELS[:3])
    reasons = sorted((r.record["metadata"]["prompt_index"], r.record["metadata"]["chosen_rung"],
                      r.record["metadata"]["rejected_rung"], r.reason) for r in rejects)
    assert reasons == [(0, 0, 1, "identical_answers"), (0, 0, 2, "answer_failed"), (0, 1, 2, "answer_failed")]
    assert len(pairs) == 3 and all(p.metadata["prompt_index"] == 1 for p in pairs)
    with pytest.raises(AlignlabError, match="rung 1"):
        construct_pairs(["q0", "q1"], [["a", "b"], ["a"]], MODELS[:2])
    with pytest.raises(AlignlabError, match="at least two"):
        construct_pairs(["q0"], [["a"]], MODELS[:1])


# ---------------------------------------------------------------- verification

def _quality(answer: str) -> float:
    return float(re.search(r"quality (\d+)", answer).group(1))


def _preference(q_first: float, q_second: float) -> float:
    return 1 / (1 + math.exp((q_second - q_first) / 4))


def biased_judge(prompt, first, second):
    """Prefers the higher quality, plus a bias towards whatever is shown first."""
    return _preference(_quality(first), _quality(second)) + 0.15


def test_verify_drops_reversed_pairs_and_counts_agreement_per_rung_pair():
    prompts = ["q0", "q1", "q2"]
    answers = [[f"big quality {q}" for q in (9, 9, 9)],
               [f"mid quality {q}" for q in (6, 3, 6)],  # on q1 the mid model did worse than small
               [f"small quality {q}" for q in (3, 6, 6)]]  # on q2 mid and small tie
    pairs, _ = construct_pairs(prompts, answers, MODELS[:3])
    judge = ScriptedBackend("judge-model", judge=biased_judge)
    kept, rejected, agreement = verify_pairs(judge, pairs, margin=0.1)
    assert len(judge.requests) == 2 * len(pairs)  # both orders
    assert [(r.reason, r.record["metadata"]["prompt_index"], r.record["metadata"]["chosen_rung"],
             r.record["metadata"]["rejected_rung"]) for r in rejected] == [("judge_disagrees", 1, 1, 2)]
    assert len(kept) == len(pairs) - 1
    for p in kept:
        assert p.metadata["verified_by"] == "judge-model"
        q_chosen, q_rejected = _quality(p.chosen[0]["content"]), _quality(p.rejected[0]["content"])
        # the position bias cancels: the recorded P is the unbiased preference
        assert p.metadata["judge_p_chosen"] == pytest.approx(_preference(q_chosen, q_rejected), abs=1e-3)
    tie = next(p for p in kept if p.metadata["prompt_index"] == 2 and p.metadata["chosen_rung"] == 1)
    assert tie.metadata["judge_p_chosen"] == pytest.approx(0.5, abs=1e-3)  # unsure: the ladder's label stands
    summary = {key: (a.pairs, a.agree, a.disagree, a.dropped) for key, a in agreement.items()}
    assert summary == {(0, 1): (3, 3, 0, 0), (0, 2): (3, 3, 0, 0), (1, 2): (3, 1, 1, 1)}
    assert agreement[(1, 2)].rate == pytest.approx(1 / 3)
    assert agreement[(1, 2)].to_dict()["chosen_model"] == "mid"


def test_verify_keeps_pairs_the_judge_cannot_read():
    pairs, _ = construct_pairs(["q"], [["good"], ["bad"]], MODELS[:2])
    kept, rejected, agreement = verify_pairs(ScriptedBackend("j", judge=lambda *a: None), pairs, margin=0.1)
    assert kept == pairs and not rejected and "verified_by" not in kept[0].metadata
    assert agreement[(0, 1)].unreadable == 1 and agreement[(0, 1)].rate is None
    with pytest.raises(AlignlabError, match="margin"):
        verify_pairs(ScriptedBackend("j"), pairs, margin=0.5)


def _reading_judge(request) -> float:
    """A judge's log-likelihood that rises with each answer word the context contains: a
    stand-in for a model that has read the chunk."""
    context = " ".join(m["content"] for m in request.context).lower().split()
    words = request.continuation.lower().split()
    return -float(len(words)) + 2.0 * sum(w in context for w in words)


def test_evidence_drops_pairs_whose_chunk_supports_the_rejected_answer():
    chunks = {"c0": "The lighthouse of Kelmarra was built in 1852 of basalt.",
              "c1": "The harbour of Kelmarra holds forty fishing boats."}
    prompts = ["When was the lighthouse built?", "How many boats does the harbour hold?", "Write a haiku."]
    answers = [["It was built in 1852 of basalt.", "It holds a few ships.", "Snow on the pine"],
               ["It was built long ago by people.", "The harbour holds forty fishing boats.", "A haiku is short"]]
    meta = [{"chunk_id": "c0"}, {"chunk_id": "c1"}, {}]
    pairs, _ = construct_pairs(prompts, answers, MODELS[:2], prompt_metadata=meta)
    judge = FakeBackend(lambda r: label_choice({" A": 0.5, " B": 0.5}), loglik=_reading_judge, model_id="j")
    kept, rejected, agreement = verify_pairs(judge, pairs, margin=0.1, chunks=chunks)
    assert [(r.reason, r.record["metadata"]["prompt_index"]) for r in rejected] == [("evidence_contradicts", 1)]
    assert rejected[0].detail["support_margin"] < 0
    by_prompt = {p.metadata["prompt_index"]: p.metadata for p in kept}
    assert by_prompt[0]["verified_by"] == "evidence:j" and by_prompt[0]["support_chosen"] > by_prompt[0]["support_rejected"]
    assert by_prompt[2]["verified_by"] == "j"  # a skill prompt: no chunk, so the judge compares
    assert len(judge.requests) == 2  # only the skill pair went to the pairwise judge, in both orders
    a = agreement[(0, 1)]
    assert (a.pairs, a.by_evidence, a.agree, a.disagree, a.dropped) == (3, 2, 1, 1, 1)
    # without chunks every pair goes to the judge, which here is unsure: nothing is dropped
    assert not verify_pairs(judge, pairs, margin=0.1).rejected


# ---------------------------------------------------------------- AI feedback

def test_ai_feedback_keeps_only_order_consistent_confident_judgements():
    def judge(prompt, first, second):
        if prompt == "positional":
            return 0.9  # always "A", whatever is shown first
        if prompt == "unsure":
            return 0.6 if first.startswith("one") else 0.4
        better = "one" if prompt == "a wins" else "two"
        return 0.95 if first.startswith(better) else 0.05

    prompts = ["a wins", "b wins", "positional", "unsure", "same"]
    answers_a = ["one: x", "one: y", "one: z", "one: w", "identical"]
    answers_b = ["two: x", "two: y", "two: z", "two: w", " identical "]
    backend = ScriptedBackend("judge-model", judge=judge)
    pairs, rejects = ai_feedback_pairs(backend, prompts, answers_a, answers_b, model="sampler", threshold=0.8,
                                       prompt_metadata=[{"leaf": "x"}] * 5)
    assert len(backend.requests) == 2 * 4  # the identical answers never reach the judge
    assert {r.record["prompt"][0]["content"]: r.reason for r in rejects} == {
        "positional": "order_inconsistent", "unsure": "judge_unsure", "same": "identical_answers"}
    by_prompt = {p.prompt[0]["content"]: p for p in pairs}
    assert by_prompt["a wins"].chosen[0]["content"] == "one: x"
    assert by_prompt["b wins"].chosen[0]["content"] == "two: y"
    for p in pairs:
        m = p.metadata
        assert m["generator"] == "ai_feedback" and m["chosen_model"] == m["rejected_model"] == "sampler"
        assert m["judge_p_chosen"] == pytest.approx(0.95) and m["judge_orders"] == pytest.approx([0.95, 0.95])
        assert m["verified_by"] == "judge-model" and m["difficulty"] == 1.0 and m["leaf"] == "x"
    assert by_prompt["a wins"].id == stable_id("ai_feedback", by_prompt["a wins"].prompt, "sampler",
                                               "one: x", "two: x")


# ---------------------------------------------------------------- revision

def test_revision_pairs_carry_lineage_and_reasons():
    def revise(prompt, answer):
        return {"fix me": ("Revised answer: it is 4, because 2 + 2 = 4.", "stop"),
                "fine": (answer, "stop"),
                "long": ("it is 4 and", "length"),
                "broken": None}[prompt]

    reviser = ScriptedBackend("big", revise=revise)
    prompts = ["fix me", "fine", "long", "broken", "empty"]
    originals = ["it is 5.", "all good", "it is 5", "x", "  "]
    pairs, rejects = revision_pairs(reviser, prompts, originals, answer_model="tiny",
                                    prompt_metadata=[{"leaf": "math"}] * 5)
    assert {r.record["prompt"][0]["content"]: r.reason for r in rejects} == {
        "fine": "revision_unchanged", "long": "revision_truncated", "broken": "revision_failed",
        "empty": "empty_answer"}
    assert len(reviser.requests) == 4  # no request for the empty answer
    [pair] = pairs
    assert pair.chosen[0]["content"] == "it is 4, because 2 + 2 = 4."  # the preamble is dropped
    assert pair.rejected[0]["content"] == "it is 5."
    m = pair.metadata
    assert m["generator"] == "revision" and m["chosen_model"] == "big" and m["rejected_model"] == "tiny"
    assert m["templates"] == {"pairs_revise": load_template("pairs_revise").hash}
    assert m["leaf"] == "math" and 0 < m["similarity"] < 1 and m["difficulty"] == 1.0
    assert "it is 5." in reviser.requests[0].messages[-1]["content"]


# ---------------------------------------------------------------- answers

def test_ladder_answers_and_two_samples():
    rungs = [ScriptedBackend(m, answer=lambda user, seed, m=m: f"{m}:{user}") for m in MODELS[:2]]
    assert ladder_answers(rungs, ["q0", "q1"]) == [["big:q0", "big:q1"], ["mid:q0", "mid:q1"]]
    sampler = ScriptedBackend("s", answer=lambda user, seed: f"{user}#{seed}")
    assert two_samples(sampler, ["q0", "q1"]) == (["q0#0", "q1#0"], ["q0#1", "q1#1"])
