"""Preference losses: hand-computed values, agreement with TRL's own DPO loss code, SLiC without
a reference."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from alignlab.train.losses import (
    PreferenceLossConfig, dpo_loss, hinge_loss, ipo_loss, preference_loss, slic_loss,
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
        PreferenceLossConfig(kind="orpo")
    with pytest.raises(ValueError):
        PreferenceLossConfig(kind="dpo", beta=0.1, gamma=1.0)
    assert not PreferenceLossConfig(kind="slic").needs_reference


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
