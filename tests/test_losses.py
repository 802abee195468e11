"""Preference losses: hand-computed values, agreement with TRL's own loss code (DPO, IPO, hinge,
SimPO, ORPO, KTO, continued SFT), the reference-free losses without a reference."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from alignlab.train.config import PreferenceLossConfig
from alignlab.train.losses import (
    LOSSES, dpo_loss, hinge_loss, ipo_loss, kto_kl, kto_loss, preference_loss, slic_loss,
)

# policy log-probs -10 (chosen), -12 (rejected); reference -11 for both:
# log-ratio chosen = +1, rejected = -1, so h = 2.
PC, PR, RC, RR = (torch.tensor([v]) for v in (-10.0, -12.0, -11.0, -11.0))


def test_dpo_hand_computed():
    loss, chosen_reward, rejected_reward = dpo_loss(PC, PR, RC, RR, beta=0.5)
    # -log sigmoid(0.5 * 2) = log(1 + e^-1)
    assert loss.item() == pytest.approx(0.3132616875, abs=1e-7)
    assert chosen_reward.item() == pytest.approx(0.5) and rejected_reward.item() == pytest.approx(-0.5)


def test_dpo_label_smoothing_hand_computed():
    loss, _, _ = dpo_loss(PC, PR, RC, RR, beta=0.5, label_smoothing=0.1)
    # 0.9 * log(1 + e^-1) + 0.1 * log(1 + e^1)
    assert loss.item() == pytest.approx(0.9 * 0.3132616875 + 0.1 * 1.3132616875, abs=1e-7)


def test_ipo_hand_computed():
    loss, _, _ = ipo_loss(PC, PR, RC, RR, beta=0.5)
    assert loss.item() == pytest.approx((2 - 1 / (2 * 0.5)) ** 2)  # = 1
    # Per-token: 1/4 - (-1/2) = 0.75; (0.75 - 1)^2
    loss, _, _ = ipo_loss(PC, PR, RC, RR, beta=0.5, chosen_lengths=torch.tensor([4]),
                          rejected_lengths=torch.tensor([2]))
    assert loss.item() == pytest.approx(0.0625)


def test_hinge_hand_computed():
    assert hinge_loss(PC, PR, RC, RR, beta=0.25)[0].item() == pytest.approx(0.5)  # 1 - 0.25 * 2
    assert hinge_loss(PC, PR, RC, RR, beta=1.0)[0].item() == 0.0  # margin met


def test_slic_hand_computed():
    # max(0, 1 - (-10) + (-9.5)) = 1.5; plus 0.1 * NLL 2.0
    loss, chosen, rejected = slic_loss(torch.tensor([-10.0]), torch.tensor([-9.5]), torch.tensor([2.0]),
                                       delta=1.0, lam=0.1)
    assert loss.item() == pytest.approx(1.7)
    assert chosen.item() == -10.0 and rejected.item() == -9.5  # rewards are the policy log-probs
    loss, _, _ = slic_loss(PC, PR, torch.tensor([2.0]), delta=1.0, lam=0.0)
    assert loss.item() == 0.0  # margin of 2 already beyond delta


def test_slic_needs_no_reference_and_trains_both_answers():
    cfg = PreferenceLossConfig(kind="slic", delta=1.0, lam=0.5)
    chosen = torch.tensor([-10.0, -8.0], requires_grad=True)
    rejected = torch.tensor([-9.5, -8.2], requires_grad=True)
    nll = -chosen / 5
    losses, _, _ = preference_loss(cfg, chosen, rejected, None, None, nll)
    losses.sum().backward()
    assert torch.all(chosen.grad < 0)  # raising log π(y+) lowers the loss
    assert torch.all(rejected.grad > 0)  # lowering log π(y-) lowers the loss


def test_reference_losses_refuse_missing_reference():
    with pytest.raises(ValueError, match="reference"):
        preference_loss(PreferenceLossConfig(kind="dpo"), PC, PR, None, None)


def test_config_is_checked():
    with pytest.raises(ValueError, match="label_smoothing"):
        PreferenceLossConfig(kind="ipo", label_smoothing=0.1)
    with pytest.raises(ValueError):
        PreferenceLossConfig(kind="rlhf")
    with pytest.raises(ValueError, match="gamma applies to the simpo loss only"):
        PreferenceLossConfig(kind="dpo", beta=0.1, gamma=1.0)
    with pytest.raises(ValueError, match="desirable_weight"):
        PreferenceLossConfig(kind="dpo", desirable_weight=2.0)
    dumped = PreferenceLossConfig(kind="slic").model_dump()
    assert PreferenceLossConfig.model_validate(dumped).kind == "slic"  # a saved config reloads
    assert not any(PreferenceLossConfig(kind=k).needs_reference for k in ("slic", "simpo", "orpo", "sft"))
    assert PreferenceLossConfig(kind="kto").needs_reference and PreferenceLossConfig(kind="kto").unpaired


def test_the_table_is_what_the_config_accepts_and_kto_is_its_one_unpaired_loss():
    assert [k for k, loss in LOSSES.items() if not loss.paired] == ["kto"]
    for kind in LOSSES:
        assert PreferenceLossConfig(kind=kind).kind == kind
    with pytest.raises(ValueError, match="unknown loss 'dop': the losses are dpo, ipo, .*train/losses.py"):
        PreferenceLossConfig(kind="dop")
    with pytest.raises(ValueError, match="unpaired"):
        preference_loss(PreferenceLossConfig(kind="kto"), PC, PR, RC, RR)


@pytest.mark.parametrize("kind", ["simpo", "orpo"])
def test_reference_free_losses_train_both_answers_without_a_reference(kind):
    chosen = torch.tensor([-10.0, -8.0], requires_grad=True)
    rejected = torch.tensor([-9.5, -8.2], requires_grad=True)
    losses, _, _ = preference_loss(PreferenceLossConfig(kind=kind), chosen, rejected,
                                   chosen_lengths=torch.tensor([5, 4]), rejected_lengths=torch.tensor([5, 4]))
    losses.sum().backward()
    assert torch.all(chosen.grad < 0) and torch.all(rejected.grad > 0)
    with pytest.raises(ValueError, match="lengths"):
        preference_loss(PreferenceLossConfig(kind=kind), chosen, rejected)


def test_kto_pushes_desirable_up_and_undesirable_down():
    policy = torch.tensor([-10.0, -10.0], requires_grad=True)
    losses, good, bad = kto_loss(policy, torch.tensor([-11.0, -9.0]), torch.tensor([True, False]),
                                 torch.tensor(0.0), beta=0.5)
    # log-ratios +1 (desirable) and -1 (undesirable): both losses are 1 - sigmoid(0.5)
    assert losses.tolist() == pytest.approx([1 - 1 / (1 + math.exp(-0.5))] * 2)
    assert good.tolist() == [0.5] and bad.tolist() == [-0.5]
    losses.sum().backward()
    assert policy.grad[0] < 0 < policy.grad[1]
    assert kto_kl(torch.tensor([-3.0, -5.0]), torch.tensor([-2.0, -2.0])).item() == 0.0  # clamped at 0


# ---------------------------------------------------------------- against TRL


def _trl_loss(loss_type: str, beta: float, policy: tuple[float, float], ref: tuple[float, float],
              lengths: tuple[int, int]) -> tuple[float, float, float]:
    """Run TRL's DPOTrainer._compute_loss on one pair whose per-token log-probs sum to the given
    values, with the reference log-probs precomputed (so no model is needed for them)."""
    from trl.trainer.dpo_trainer import DPOTrainer

    width = max(lengths) + 3
    completion_mask = torch.zeros(2, width, dtype=torch.long)
    per_token = torch.zeros(2, width - 1)
    for row, (logp, n) in enumerate(zip(policy, lengths)):
        completion_mask[row, 2:2 + n] = 1
        per_token[row, 1:1 + n] = logp / n  # shifted: position t-1 predicts token t

    def model(**kwargs):
        return SimpleNamespace(log_probs=per_token, entropy=torch.zeros(2, width - 1),
                               mean_logits=torch.zeros(2, width - 1),
                               is_top1=torch.zeros(2, width - 1, dtype=torch.bool))

    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t, gather_for_metrics=lambda t: t)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False,
        precompute_ref_logps=True, ld_alpha=None, f_divergence_type="reverse_kl", loss_types=[loss_type],
        loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.zeros(2, width, dtype=torch.long), "attention_mask": torch.ones(2, width),
              "completion_mask": completion_mask, "ref_chosen_logps": torch.tensor([ref[0]]),
              "ref_rejected_logps": torch.tensor([ref[1]])}
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    metrics = trainer._metrics["train"]
    return loss.item(), metrics["rewards/chosen"][0], metrics["rewards/rejected"][0]


@pytest.mark.parametrize("kind, trl_name", [("dpo", "sigmoid"), ("ipo", "ipo"), ("hinge", "hinge")])
def test_matches_trl(kind, trl_name):
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        policy = (-40 * torch.rand(2, generator=generator) - 5).tolist()
        ref = (-40 * torch.rand(2, generator=generator) - 5).tolist()
        lengths = tuple(int(n) for n in torch.randint(3, 20, (2,), generator=generator))
        beta = float(torch.rand(1, generator=generator)) * 0.5 + 0.05
        expected, trl_chosen, trl_rejected = _trl_loss(trl_name, beta, policy, ref, lengths)
        cfg = PreferenceLossConfig(kind=kind, beta=beta)
        losses, chosen, rejected = preference_loss(
            cfg, torch.tensor([policy[0]]), torch.tensor([policy[1]]), torch.tensor([ref[0]]),
            torch.tensor([ref[1]]), chosen_lengths=torch.tensor([lengths[0]]),
            rejected_lengths=torch.tensor([lengths[1]]))
        assert losses.item() == pytest.approx(expected, abs=1e-5), (policy, ref, lengths, beta)
        assert chosen.item() == pytest.approx(trl_chosen, abs=1e-5)
        assert rejected.item() == pytest.approx(trl_rejected, abs=1e-5)
    assert not math.isnan(expected)


def test_continued_sft_matches_trl_and_trains_the_chosen_answer_only():
    generator = torch.Generator().manual_seed(2)
    for _ in range(6):
        policy = (-40 * torch.rand(2, generator=generator) - 5).tolist()
        lengths = tuple(int(n) for n in torch.randint(3, 20, (2,), generator=generator))
        expected, _, _ = _trl_loss("sft", 0.1, policy, (0.0, 0.0), lengths)
        losses, _, _ = preference_loss(PreferenceLossConfig(kind="sft"), torch.tensor([policy[0]]),
                                       torch.tensor([policy[1]]), chosen_lengths=torch.tensor([lengths[0]]))
        assert losses.item() == pytest.approx(expected, abs=1e-5)
    # Over a batch: the mean is per chosen token (as SFT's), not per answer; rejected untouched.
    chosen = torch.tensor([-12.0, -2.0], requires_grad=True)
    rejected = torch.tensor([-9.0, -8.0], requires_grad=True)
    losses, _, _ = preference_loss(PreferenceLossConfig(kind="sft"), chosen, rejected,
                                   chosen_lengths=torch.tensor([6, 2]))
    assert losses.mean().item() == pytest.approx(14 / 8)
    losses.mean().backward()
    assert rejected.grad is None or torch.all(rejected.grad == 0)
    assert torch.all(chosen.grad < 0)


# ---------------------------------------------------------------- reference-free and unpaired, against TRL

def _random_pairs(generator, n=6):
    for _ in range(n):
        lengths = torch.randint(3, 20, (2,), generator=generator)
        means = -3 * torch.rand(2, generator=generator) - 0.05  # log-prob per answer token
        beta = float(torch.rand(1, generator=generator)) * 2 + 0.05
        yield means, lengths, beta


def _ours(kind, means, lengths, **settings):
    return preference_loss(PreferenceLossConfig(kind=kind, **settings), means[:1] * lengths[:1],
                           means[1:] * lengths[1:], chosen_lengths=lengths[:1], rejected_lengths=lengths[1:])


def test_simpo_matches_trl():
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    generator = torch.Generator().manual_seed(1)
    for means, lengths, beta in _random_pairs(generator):
        gamma = float(torch.rand(1, generator=generator))
        trainer = SimpleNamespace(alpha=0.0, loss_type="simpo", simpo_gamma=gamma, beta=beta, label_smoothing=0.0,
                                  accelerator=SimpleNamespace(device=torch.device("cpu")))
        expected = CPOTrainer.cpo_loss(trainer, means[:1], means[1:])
        got = _ours("simpo", means, lengths, beta=beta, gamma=gamma)
        for ours, theirs in zip(got, expected):
            assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


def test_orpo_matches_trl():
    """TRL returns the odds-ratio term and adds the NLL outside; here the NLL is the chosen
    answer's per token, so ours minus that NLL must be TRL's term."""
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer

    generator = torch.Generator().manual_seed(2)
    for means, lengths, beta in _random_pairs(generator):
        trainer = SimpleNamespace(beta=beta, accelerator=SimpleNamespace(device=torch.device("cpu")))
        term, trl_chosen, trl_rejected, _, _ = ORPOTrainer.odds_ratio_loss(trainer, means[:1], means[1:])
        losses, chosen, rejected = _ours("orpo", means, lengths, beta=beta)
        nll = -means[0]
        assert (losses - nll).item() == pytest.approx(-term.item(), abs=1e-5)
        assert chosen.item() == pytest.approx(trl_chosen.item(), abs=1e-5)
        assert rejected.item() == pytest.approx(trl_rejected.item(), abs=1e-5)


def _trl_kto(labels, policy, ref, policy_kl, ref_kl, lengths, beta, weights):
    """TRL's KTOTrainer._compute_loss on a batch whose per-token log-probs sum to the given
    values (reference precomputed), the KL rows answered by a second fake forward."""
    from trl.trainer.kto_trainer import KTOTrainer

    n, width = len(labels), max(lengths) + 3
    completion_mask = torch.zeros(n, width, dtype=torch.long)
    per_token, per_token_kl = torch.zeros(n, width - 1), torch.zeros(n, width - 1)
    for row, length in enumerate(lengths):
        completion_mask[row, 2:2 + length] = 1
        per_token[row, 1:1 + length] = policy[row] / length
        per_token_kl[row, 1:1 + length] = policy_kl[row] / length
    kl_ids = torch.ones(n, width, dtype=torch.long)

    def model(**kwargs):
        values = per_token_kl if kwargs["input_ids"] is kl_ids else per_token
        return SimpleNamespace(log_probs=values, entropy=torch.zeros(n, width - 1),
                               mean_logits=torch.zeros(n, width - 1))

    accelerator = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda t: t)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False, calculate_KL=True,
        precompute_ref_logps=True, loss_type="kto", beta=beta, desirable_weight=weights[0],
        undesirable_weight=weights[1], _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    trainer._compute_kl_logps = lambda m, batch: KTOTrainer._compute_kl_logps(trainer, m, batch)
    inputs = {"input_ids": torch.zeros(n, width, dtype=torch.long), "attention_mask": torch.ones(n, width),
              "completion_mask": completion_mask, "label": torch.tensor(labels), "ref_logps": torch.tensor(ref),
              "ref_KL_logps": torch.tensor(ref_kl), "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones(n, width),
              "KL_completion_mask": completion_mask}
    loss = KTOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    metrics = trainer._metrics["train"]
    return loss.item(), metrics["rewards/chosen"][0], metrics["rewards/rejected"][0], metrics["kl"][0]


def test_kto_matches_trl():
    generator = torch.Generator().manual_seed(3)
    for _ in range(6):
        n = 5
        labels = [True, False] + (torch.rand(n - 2, generator=generator) > 0.5).tolist()
        policy, ref, policy_kl, ref_kl = ((-40 * torch.rand(n, generator=generator) - 5).tolist() for _ in range(4))
        lengths = torch.randint(3, 20, (n,), generator=generator).tolist()
        beta = float(torch.rand(1, generator=generator)) * 0.5 + 0.05
        weights = (float(torch.rand(1, generator=generator)) + 0.5, float(torch.rand(1, generator=generator)) + 0.5)
        expected, trl_good, trl_bad, trl_kl = _trl_kto(labels, policy, ref, policy_kl, ref_kl, lengths, beta, weights)
        kl = kto_kl(torch.tensor(policy_kl), torch.tensor(ref_kl))
        losses, good, bad = kto_loss(torch.tensor(policy), torch.tensor(ref), torch.tensor(labels), kl, beta, *weights)
        assert kl.item() == pytest.approx(trl_kl, abs=1e-5)
        assert losses.mean().item() == pytest.approx(expected, abs=1e-5), (labels, policy, ref, beta)
        assert good.mean().item() == pytest.approx(trl_good, abs=1e-5)
        assert bad.mean().item() == pytest.approx(trl_bad, abs=1e-5)
