"""KTO's unpaired answers: where they come from, the mismatched rows of the KL estimate, batches
holding both kinds, and a tiny model trained on accepted/rejected answers."""

from __future__ import annotations

import pytest
import torch

from alignlab.errors import AlignlabError
from alignlab.records import Pair, Reject, Sample
from alignlab.train.config import PreferenceLossConfig
from alignlab.train.preference import sequence_logps
from alignlab.train.unpaired import (
    collate_unpaired, desirable_share, make_kto_loss_fn, precompute_unpaired_reference, stratified_order,
    tokenize_unpaired, unpaired_from_judged, unpaired_from_pairs,
)
from test_curate_fixtures import sample


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _pair(k: int, chosen: str, rejected: str, rungs: tuple[int, int]) -> Pair:
    return Pair(f"p{k}{rungs}", [{"role": "user", "content": f"Question {k}?"}],
                [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}],
                {"chosen_model": f"m{rungs[0]}", "rejected_model": f"m{rungs[1]}", "leaf": "L"})


def _answers(n: int = 8) -> list[Sample]:
    accepted = [sample(f"a{k}", f"What is {k} plus {k}?", f"{k} plus {k} is {2 * k}.") for k in range(n)]
    rejects = [Reject(f"r{k}", "low_quality", "curate",
                      sample(f"r{k}", f"What is {k} times 3?", f"Maybe {k}, or not" + "." * k).to_dict())
               for k in range(n // 2)]
    return unpaired_from_judged(accepted, [r.to_dict() for r in rejects])


def test_pairs_split_into_answers_and_a_middle_rung_has_no_single_label():
    pairs = [_pair(0, "best", "middle", (0, 1)), _pair(0, "best", "worst", (0, 2)), _pair(0, "middle", "worst", (1, 2))]
    answers, ambiguous = unpaired_from_pairs(pairs)
    labels = {a.response: a.metadata["desirable"] for a in answers}
    assert labels == {"best": True, "worst": False} and ambiguous == 1
    assert all(a.messages[0]["content"] == "Question 0?" for a in answers)


def test_judged_answers_are_the_accepted_samples_and_the_low_quality_rejects():
    accepted = [sample("a", "Q1?", "good"), sample("chunk", "doc", "text", unmask=True)]
    rejects = [Reject("r1", "low_quality", "curate", sample("r1", "Q2?", "bad").to_dict()).to_dict(),
               Reject("r2", "near_duplicate", "curate", sample("r2", "Q3?", "dup").to_dict()).to_dict()]
    answers = unpaired_from_judged(accepted, rejects)
    assert {(a.response, a.metadata["desirable"]) for a in answers} == {("good", True), ("bad", False)}
    assert next(a for a in answers if not a.metadata["desirable"]).metadata["reject_reason"] == "low_quality"


def test_kl_rows_pair_each_prompt_with_another_answer_and_batches_hold_both_kinds(tokenizer):
    tokenized = tokenize_unpaired(tokenizer, _answers())
    for k, t in enumerate(tokenized):
        assert t.kl_answer_ids == tokenized[k - 1].answer_ids  # the previous row's answer, in id order
    assert sorted(map(tuple, (t.kl_answer_ids for t in tokenized))) == sorted(map(tuple, (t.answer_ids for t in tokenized)))
    ordered = stratified_order(tokenized, seed=0, epoch=0)
    assert sorted(t.id for t in ordered) == sorted(t.id for t in tokenized)
    assert desirable_share(tokenized) == pytest.approx(8 / 12)
    for start in range(0, 12, 3):  # share 2/3: every batch of 3 has two desirable answers
        assert sum(t.desirable for t in ordered[start:start + 3]) == 2
    assert [t.id for t in stratified_order(tokenized, 0, 1)] != [t.id for t in ordered]  # reshuffled per epoch


def test_kto_trains_on_unpaired_accepted_and_rejected_answers(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    answers = _answers()
    loss_fn = make_kto_loss_fn(PreferenceLossConfig(kind="kto", beta=0.5), 8 / 12)
    with pytest.raises(AlignlabError, match="precompute_unpaired_reference"):
        loss_fn(model, collate_unpaired(tokenize_unpaired(tokenizer, answers), tokenizer.pad_token_id))
    assert precompute_unpaired_reference(model, answers, tokenizer, reference_id="tiny", progress=False) == 12
    assert precompute_unpaired_reference(model, answers, tokenizer, reference_id="tiny", progress=False) == 0
    tokenized = tokenize_unpaired(tokenizer, answers)
    batch = collate_unpaired(tokenized, tokenizer.pad_token_id)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(8):
        loss, metrics = loss_fn(model, batch)
        first = first or metrics
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first["rewards/chosen"] == pytest.approx(0, abs=1e-3)  # the policy starts as its reference
    model.eval()
    with torch.no_grad():
        ratio = sequence_logps(model, batch)[0] - batch["ref_logp"]
    desirable = batch["desirable"]
    assert ratio[desirable].mean() > 0 > ratio[~desirable].mean()  # accepted up, rejected down
    assert metrics["rewards/margin"] > 0 and metrics["rewards/chosen"] > first["rewards/chosen"]
