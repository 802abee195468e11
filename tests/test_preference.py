"""Preference batches on a tiny model: answer-only labels, summed log-probs, the reference
computed once, the loss_fn the training loop calls, and held-out reward accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from alignlab.errors import AlignlabError
from alignlab.records import Pair
from alignlab.train.curriculum import curriculum_order
from alignlab.train.config import PreferenceLossConfig
from alignlab.train.preference import (
    IGNORE, collate_pairs, make_loss_fn, pair_logps, precompute_reference_logps, preference_batches,
    reward_accuracy, sequence_logps, tokenize_pair, tokenize_pairs,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


def _pairs(n: int = 6) -> list[Pair]:
    out = []
    for k in range(n):
        out.append(Pair(
            id=f"p{k}", prompt=[{"role": "user", "content": f"What is {k} plus {k}?" + " Explain." * (k % 3)}],
            chosen=[{"role": "assistant", "content": f"{k} plus {k} is {2 * k}."}],
            rejected=[{"role": "assistant", "content": f"I think it is {2 * k + 1}, maybe more" + "." * k}],
            metadata={"difficulty": [1 / 3, 0.5, 1.0][k % 3]}))
    return out


class CountingModel(torch.nn.Module):
    """Counts forward passes of the wrapped model."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, **kwargs):
        self.calls += 1
        return self.model(**kwargs)


def test_labels_fall_on_answer_tokens_only(tokenizer):
    pair = _pairs()[2]
    tp = tokenize_pair(tokenizer, pair)
    prompt = tokenizer.apply_chat_template(pair.prompt, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(tp.prompt_ids) == prompt
    assert tokenizer.decode(tp.chosen_ids).startswith(pair.chosen[0]["content"] + tokenizer.eos_token)
    tokenized = tokenize_pairs(tokenizer, _pairs()[:3])
    batch = collate_pairs(tokenized, tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 6  # chosen rows, then rejected rows
    labels = batch["labels"]
    rows = [(t, t.chosen_ids) for t in tokenized] + [(t, t.rejected_ids) for t in tokenized]
    for row, (tpair, answer) in enumerate(rows):
        assert labels[row][labels[row] != IGNORE].tolist() == answer
        assert (labels[row, :len(tpair.prompt_ids)] == IGNORE).all()
        assert batch["attention_mask"][row].sum() == len(tpair.prompt_ids) + len(answer)


def test_truncation_keeps_prompt_end_and_answer_start(tokenizer):
    pair = _pairs()[1]
    pair.prompt[0]["content"] = "word " * 300
    full = tokenize_pair(tokenizer, pair, max_length=4096)
    cut = tokenize_pair(tokenizer, pair, max_length=64)
    assert len(cut.prompt_ids) + max(len(cut.chosen_ids), len(cut.rejected_ids)) <= 64
    assert cut.prompt_ids == full.prompt_ids[-len(cut.prompt_ids):]
    assert cut.chosen_ids == full.chosen_ids[:len(cut.chosen_ids)] and cut.chosen_ids


def test_padded_batch_logps_match_each_sequence_alone(tiny_model_dir, tokenizer):
    model = _model(tiny_model_dir)
    tokenized = tokenize_pairs(tokenizer, _pairs()[:3])
    with torch.no_grad():
        logps, n_tokens = sequence_logps(model, collate_pairs(tokenized, tokenizer.pad_token_id))
        for row, (tp, answer) in enumerate([(t, t.chosen_ids) for t in tokenized]
                                           + [(t, t.rejected_ids) for t in tokenized]):
            ids = torch.tensor([tp.prompt_ids + answer])
            token_logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            targets = ids[0, 1:]
            expected = token_logps.gather(-1, targets[:, None])[len(tp.prompt_ids) - 1:].sum()
            assert logps[row].item() == pytest.approx(expected.item(), abs=1e-3)
            assert n_tokens[row] == len(answer)


def test_reference_logps_are_computed_once(tiny_model_dir, tokenizer):
    reference = CountingModel(_model(tiny_model_dir))
    pairs = _pairs()
    computed = precompute_reference_logps(reference, pairs, tokenizer, reference_id="tiny", batch_size=4,
                                          progress=False)
    assert computed == len(pairs) and reference.calls == 2  # 6 pairs in batches of 4
    stored = [p.metadata["ref_chosen_logp"] for p in pairs] + [p.metadata["ref_rejected_logp"] for p in pairs]
    chosen, rejected = pair_logps(reference.model, tokenize_pairs(tokenizer, pairs), pad_id=tokenizer.pad_token_id)
    assert stored == pytest.approx(chosen + rejected, abs=1e-4)

    assert precompute_reference_logps(reference, pairs, tokenizer, reference_id="tiny", progress=False) == 0
    assert reference.calls == 2  # stored values reused, no forward pass
    # A different reference (or truncation) invalidates the stored values.
    assert precompute_reference_logps(reference, pairs[:2], tokenizer, reference_id="tiny", max_length=512,
                                      progress=False) == 2
    assert reference.calls == 3
    # Batches carry the stored values, so the training loop never sees the reference model.
    batch = next(preference_batches(tokenize_pairs(tokenizer, pairs[2:]), 4, tokenizer.pad_token_id))
    assert batch["ref_chosen_logp"].tolist() == pytest.approx(stored[2:6])


def test_loss_fn_trains_towards_chosen(tiny_model_dir, tokenizer):
    torch.manual_seed(0)
    model = _model(tiny_model_dir)
    pairs = _pairs(4)
    precompute_reference_logps(model, pairs, tokenizer, reference_id="policy@0", progress=False)
    tokenized = tokenize_pairs(tokenizer, pairs)
    loss_fn = make_loss_fn(PreferenceLossConfig(kind="dpo", beta=0.5))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for epoch in range(4):
        for batch in preference_batches(curriculum_order(tokenized, "easy_to_hard", 0, epoch), 4,
                                        tokenizer.pad_token_id):
            loss, metrics = loss_fn(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(metrics)
    # The policy starts equal to the reference: zero rewards, loss log 2.
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert history[0]["rewards/margin"] == pytest.approx(0.0, abs=1e-4)
    assert history[-1]["rewards/margin"] > 0.1 and history[-1]["rewards/accuracy"] == 1.0
    assert history[-1]["loss"] < history[0]["loss"]
    assert set(history[0]) >= {"rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy"}


def test_loss_fn_needs_reference_except_slic(tiny_model_dir, tokenizer):
    model = _model(tiny_model_dir)
    batch = collate_pairs(tokenize_pairs(tokenizer, _pairs(2)), tokenizer.pad_token_id)
    assert "ref_chosen_logp" not in batch
    with pytest.raises(AlignlabError, match="precompute_reference_logps"):
        make_loss_fn(PreferenceLossConfig(kind="dpo"))(model, batch)
    loss, metrics = make_loss_fn(PreferenceLossConfig(kind="slic", delta=1.0, lam=0.1))(model, batch)
    loss.backward()
    assert loss.item() > 0 and metrics["rewards/chosen"] == pytest.approx(metrics["logps/chosen"])
    assert model.model.embed_tokens.weight.grad is not None


def test_reward_accuracy_on_held_out_pairs(tiny_model_dir, tokenizer):
    policy = _model(tiny_model_dir)
    pairs = _pairs(4)
    tokenized = tokenize_pairs(tokenizer, pairs)
    pc, pr = map(torch.tensor, pair_logps(policy, tokenized, pad_id=tokenizer.pad_token_id))
    slic = reward_accuracy(policy, pairs, tokenizer, PreferenceLossConfig(kind="slic"))
    assert slic == pytest.approx(float((pc > pr).float().mean()))

    dpo = PreferenceLossConfig(kind="dpo")
    with pytest.raises(AlignlabError, match="reference"):
        reward_accuracy(policy, pairs, tokenizer, dpo)
    # Stored reference values: here made so that exactly pairs 0 and 1 favour chosen.
    for k, pair in enumerate(pairs):
        shift = -1.0 if k < 2 else 1.0
        pair.metadata.update(ref_chosen_logp=float(pc[k]) + shift, ref_rejected_logp=float(pr[k]))
    assert reward_accuracy(policy, pairs, tokenizer, dpo) == pytest.approx(0.5)
    # A reference model equal to the policy ties on every pair: half of each, chance.
    bare = _pairs(4)
    assert reward_accuracy(policy, bare, tokenizer, dpo, reference=_model(tiny_model_dir)) == 0.5


def test_adapter_disabled_model_is_the_reference(tiny_model_dir, tokenizer):
    from peft import LoraConfig, get_peft_model

    base_logps = pair_logps(_model(tiny_model_dir), tokenize_pairs(tokenizer, _pairs(3)),
                            pad_id=tokenizer.pad_token_id)
    model = get_peft_model(_model(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a trained adapter: B no longer zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    pairs = _pairs(3)
    precompute_reference_logps(model, pairs, tokenizer, reference_id="base", disable_adapter=True, progress=False)
    assert [p.metadata["ref_chosen_logp"] for p in pairs] == pytest.approx(base_logps[0], abs=1e-4)
    adapted = pair_logps(model, tokenize_pairs(tokenizer, pairs), pad_id=tokenizer.pad_token_id)
    assert adapted[0] != pytest.approx(base_logps[0], abs=1e-3)
    with pytest.raises(AlignlabError, match="peft"):
        precompute_reference_logps(_model(tiny_model_dir), _pairs(1), tokenizer, reference_id="x",
                                   disable_adapter=True, progress=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_policy_equal_to_its_stored_reference_has_chance_reward_accuracy(tiny_model_dir, tokenizer, precision):
    # The align stage reports the start's accuracy as 0.5 without scoring it: that holds only
    # when the reference was computed at the precision the policy is scored at.
    model = _model(tiny_model_dir)
    pairs = _pairs(4)
    precompute_reference_logps(model, pairs, tokenizer, reference_id=f"tiny|{precision}", progress=False,
                               precision=precision)
    dpo = PreferenceLossConfig(kind="dpo")
    assert reward_accuracy(model, pairs, tokenizer, dpo, precision=precision) == 0.5  # every pair ties


def test_bf16_reference_logps_run_under_autocast(tiny_model_dir, tokenizer):
    model = _model(tiny_model_dir)
    seen: list[torch.dtype] = []
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    pairs = _pairs(2)
    for precision in ("fp32", "bf16"):
        precompute_reference_logps(model, pairs, tokenizer, reference_id=f"tiny|{precision}", progress=False,
                                   precision=precision)
    assert set(seen[:len(seen) // 2]) == {torch.float32}
    assert set(seen[len(seen) // 2:]) == {torch.bfloat16}
    assert all(isinstance(p.metadata["ref_chosen_logp"], float) for p in pairs)
