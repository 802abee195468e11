"""Preference losses over per-sequence summed log-probabilities.

Every loss takes tensors of shape [B] — log π(y|x) summed over the answer tokens, for the
policy and (except SLiC) the frozen reference — and returns `(loss per pair, chosen rewards,
rejected rewards)`. The rewards are what gets logged: β·log(π/π_ref) for the reference-based
losses (DPO's implicit reward), the policy log-probability itself for SLiC. Switching
algorithm is `PreferenceLossConfig.kind`, nothing else.

    dpo    -(1-ε)·logσ(β·h) - ε·logσ(-β·h)           h = log-ratio(chosen) - log-ratio(rejected)
           (ε = label_smoothing: the conservative DPO of noisy labels; ε = 0 is plain DPO)
    ipo    (h - 1/(2β))²                              IPO, eq. 17 of Azar et al.; with answer
           lengths given, h uses log-ratios per answer token (as TRL and the IPO authors do)
    hinge  max(0, 1 - β·h)                            the reference-normalised hinge of RSO
    slic   max(0, δ - log π(y+|x) + log π(y-|x)) + λ·NLL(y+)    SLiC-HF; no reference model
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from alignlab.train.config import LossKind, PreferenceLossConfig

Tensor = torch.Tensor
__all__ = ["LossKind", "PreferenceLossConfig", "dpo_loss", "hinge_loss", "ipo_loss", "preference_loss", "slic_loss"]


def _log_ratios(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
                ref_rejected: Tensor) -> tuple[Tensor, Tensor]:
    return policy_chosen - ref_chosen, policy_rejected - ref_rejected


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float = 0.1, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    chosen_ratio, rejected_ratio = _log_ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    logits = beta * (chosen_ratio - rejected_ratio)
    # With ε > 0 the label is treated as flipped with probability ε (cDPO), so the loss stops
    # rewarding ever-larger margins on pairs that may be mislabelled.
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def ipo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float = 0.1, chosen_lengths: Tensor | None = None,
             rejected_lengths: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """With lengths given, the log-ratios are averaged per answer token first (as the IPO
    authors did; a summed log-ratio makes the squared loss grow with answer length)."""
    chosen_ratio, rejected_ratio = _log_ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    h_chosen, h_rejected = chosen_ratio, rejected_ratio
    if chosen_lengths is not None and rejected_lengths is not None:
        h_chosen = chosen_ratio / chosen_lengths.clamp(min=1)
        h_rejected = rejected_ratio / rejected_lengths.clamp(min=1)
    losses = (h_chosen - h_rejected - 1 / (2 * beta)) ** 2
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def hinge_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
               beta: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    chosen_ratio, rejected_ratio = _log_ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = torch.relu(1 - beta * (chosen_ratio - rejected_ratio))
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def slic_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_nll: Tensor | None = None,
              delta: float = 1.0, lam: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """SLiC-HF's calibration loss on the policy's own log-probabilities plus λ times the
    chosen answer's negative log-likelihood (whatever normalisation the caller chose:
    `train.preference` passes the mean per answer token)."""
    losses = torch.relu(delta - policy_chosen + policy_rejected)
    if lam:
        if chosen_nll is None:
            raise ValueError("slic with lam > 0 needs the chosen answer's NLL")
        losses = losses + lam * chosen_nll
    return losses, policy_chosen.detach(), policy_rejected.detach()


def preference_loss(cfg: PreferenceLossConfig, policy_chosen: Tensor, policy_rejected: Tensor,
                    ref_chosen: Tensor | None = None, ref_rejected: Tensor | None = None,
                    chosen_nll: Tensor | None = None, *, chosen_lengths: Tensor | None = None,
                    rejected_lengths: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The loss `cfg.kind` names, per pair, with the chosen and rejected rewards."""
    if cfg.kind == "slic":
        return slic_loss(policy_chosen, policy_rejected, chosen_nll, cfg.delta, cfg.lam)
    if ref_chosen is None or ref_rejected is None:
        raise ValueError(f"the {cfg.kind} loss needs reference log-probabilities "
                         f"(compute them once with train.preference.precompute_reference_logps)")
    if cfg.kind == "dpo":
        return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta, cfg.label_smoothing)
    if cfg.kind == "ipo":
        return ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta,
                        chosen_lengths, rejected_lengths)
    return hinge_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta)
