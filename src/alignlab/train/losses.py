"""Preference losses over per-sequence summed log-probabilities.

Every paired loss takes tensors of shape [B] — log π(y|x) summed over the answer tokens, for the
policy and (for the reference-based losses) the frozen reference — and returns `(loss per pair,
chosen rewards, rejected rewards)`. The rewards are what gets logged: β·log(π/π_ref) for the
reference-based losses (DPO's implicit reward), the policy's own log-probability for the
reference-free ones (β times its mean per answer token for SimPO and ORPO, as TRL logs them).
Switching algorithm is `PreferenceLossConfig.kind`, nothing else: `LOSSES` is the one table.

    dpo    -(1-ε)·logσ(β·h) - ε·logσ(-β·h)           h = log-ratio(chosen) - log-ratio(rejected)
           (ε = label_smoothing: the conservative DPO of noisy labels; ε = 0 is plain DPO)
    ipo    (h - 1/(2β))²                              IPO, eq. 17 of Azar et al.; with answer
           lengths given, h uses log-ratios per answer token (as TRL and the IPO authors do)
    hinge  max(0, 1 - β·h)                            the reference-normalised hinge of RSO
    slic   max(0, δ - log π(y+|x) + log π(y-|x)) + λ·NLL(y+)    SLiC-HF; no reference model
    simpo  -logσ(β·(ℓ+ - ℓ-) - γ)                     SimPO; ℓ = mean log-prob per answer token
    orpo   NLL(y+) - β·logσ(log odds(y+) - log odds(y-))        ORPO; odds = p/(1-p), p = e^ℓ
    sft    NLL(y+) per chosen token over the batch         continued SFT on the chosen answers only:
           the baseline a contrastive loss must beat on the same pairs and compute
    kto    unpaired (see `kto_loss`): 1 - σ(β·(log-ratio - z)) for a desirable answer,
           1 - σ(β·(z - log-ratio)) for an undesirable one; z = the policy/reference KL estimate
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# torch is imported inside the functions: the config validates `kind` against `LOSSES`, and
# loading alignlab.yaml must not import torch.
if TYPE_CHECKING:
    from torch import Tensor

Rewarded = tuple["Tensor", "Tensor", "Tensor"]
# train.config.PreferenceLossConfig, which reads this table and so is not imported here.
LossSettings = Any
__all__ = ["LOSSES", "Loss", "PairLogps", "dpo_loss", "hinge_loss", "ipo_loss", "kto_kl", "kto_loss",
           "orpo_loss", "preference_loss", "simpo_loss", "slic_loss", "chosen_nll_loss"]


def _log_ratios(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
                ref_rejected: Tensor) -> tuple[Tensor, Tensor]:
    return policy_chosen - ref_chosen, policy_rejected - ref_rejected


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float = 0.1, label_smoothing: float = 0.0) -> Rewarded:
    import torch.nn.functional as F

    chosen_ratio, rejected_ratio = _log_ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    logits = beta * (chosen_ratio - rejected_ratio)
    # With ε > 0 the label is treated as flipped with probability ε (cDPO), so the loss stops
    # rewarding ever-larger margins on pairs that may be mislabelled.
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def ipo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float = 0.1, chosen_lengths: Tensor | None = None,
             rejected_lengths: Tensor | None = None) -> Rewarded:
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
               beta: float = 0.1) -> Rewarded:
    import torch

    chosen_ratio, rejected_ratio = _log_ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = torch.relu(1 - beta * (chosen_ratio - rejected_ratio))
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def slic_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_nll: Tensor | None = None,
              delta: float = 1.0, lam: float = 0.1) -> Rewarded:
    """SLiC-HF's calibration loss on the policy's own log-probabilities plus λ times the
    chosen answer's negative log-likelihood (whatever normalisation the caller chose:
    `train.preference` passes the mean per answer token)."""
    import torch

    losses = torch.relu(delta - policy_chosen + policy_rejected)
    if lam:
        if chosen_nll is None:
            raise ValueError("slic with lam > 0 needs the chosen answer's NLL")
        losses = losses + lam * chosen_nll
    return losses, policy_chosen.detach(), policy_rejected.detach()


def chosen_nll_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_lengths: Tensor | None) -> Rewarded:
    """Continued SFT: the chosen answers' NLL averaged over all their tokens in the batch (as
    TRL's `loss_type="sft"` and supervised training do), spread over the pairs so that their
    mean is that average; the rejected answers get no gradient."""
    if chosen_lengths is None:
        raise ValueError("sft needs the chosen answers' lengths (the NLL is a mean per token)")
    losses = -policy_chosen * (len(policy_chosen) / chosen_lengths.sum().clamp(min=1))
    return losses, policy_chosen.detach(), policy_rejected.detach()


def simpo_loss(chosen_mean: Tensor, rejected_mean: Tensor, beta: float = 2.0, gamma: float = 0.5) -> Rewarded:
    """SimPO on the log-probabilities *per answer token*: the length-normalised likelihood is
    the reward itself, so no reference model is needed, and γ is the target margin."""
    import torch.nn.functional as F

    losses = -F.logsigmoid(beta * (chosen_mean - rejected_mean) - gamma)
    return losses, beta * chosen_mean.detach(), beta * rejected_mean.detach()


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - e^x) for x < 0, without cancellation on either side of -ln 2."""
    import torch

    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(chosen_mean: Tensor, rejected_mean: Tensor, beta: float = 0.1) -> Rewarded:
    """ORPO: the chosen answer's NLL per token plus β times the odds-ratio term, on
    log-probabilities per answer token (the odds of a whole long answer would underflow to 0).
    The NLL covers the answer tokens only, as every other loss here (TRL's covers the prompt too)."""
    import torch.nn.functional as F

    log_odds = (chosen_mean - rejected_mean) - (_log1mexp(chosen_mean) - _log1mexp(rejected_mean))
    losses = -chosen_mean - beta * F.logsigmoid(log_odds)
    return losses, beta * chosen_mean.detach(), beta * rejected_mean.detach()


def kto_kl(policy_mismatched: Tensor, ref_mismatched: Tensor) -> Tensor:
    """KTO's reference point z: the batch's KL(π‖π_ref) estimated on mismatched (prompt, other
    answer) rows, clamped at 0 and detached (it shifts the loss but is not trained)."""
    return (policy_mismatched - ref_mismatched).mean().detach().clamp(min=0)


def kto_loss(policy: Tensor, ref: Tensor, desirable: Tensor, kl: Tensor, beta: float = 0.1,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> Rewarded:
    """KTO (eq. 7 of Ethayarajh et al.) on *unpaired* answers: `desirable` [N] says which answer
    was accepted. Returns the weighted loss per answer (in input order) and the rewards
    β·log(π/π_ref) of the desirable and of the undesirable answers."""
    import torch

    ratio = policy - ref
    desirable = desirable.bool()
    losses = torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))))
    rewards = beta * ratio.detach()
    return losses, rewards[desirable], rewards[~desirable]


@dataclass
class PairLogps:
    """What a paired loss may read: summed log-probs [B], answer lengths, the reference's
    log-probs (None for the reference-free losses) and the chosen answer's NLL per token."""

    chosen: Tensor
    rejected: Tensor
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None
    chosen_nll: Tensor | None = None
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None

    def means(self) -> tuple[Tensor, Tensor]:
        if self.chosen_lengths is None or self.rejected_lengths is None:
            raise ValueError("simpo and orpo need the answer lengths (log-probs per answer token)")
        return self.chosen / self.chosen_lengths.clamp(min=1), self.rejected / self.rejected_lengths.clamp(min=1)


@dataclass(frozen=True)
class Loss:
    """A row of `LOSSES`: how the loss is computed from the batch's log-probs (None: it trains
    on unpaired answers, in `train.unpaired`), whether it reads a reference model's log-probs
    (computed once before training), and the settings only it reads (the config refuses them
    for another loss)."""

    compute: Callable[[LossSettings, PairLogps], Rewarded] | None
    reference: bool = True
    settings: tuple[str, ...] = ()
    note: str = ""  # shown after its name in the config reference

    @property
    def paired(self) -> bool:
        return self.compute is not None


# The one table of losses: a new loss is a function above and one line here; the config's
# `align.loss.kind` is validated against it.
LOSSES: dict[str, Loss] = {
    "dpo": Loss(lambda c, x: dpo_loss(x.chosen, x.rejected, x.ref_chosen, x.ref_rejected, c.beta,
                                      c.label_smoothing), settings=("label_smoothing",)),
    "ipo": Loss(lambda c, x: ipo_loss(x.chosen, x.rejected, x.ref_chosen, x.ref_rejected, c.beta,
                                      x.chosen_lengths, x.rejected_lengths)),
    "hinge": Loss(lambda c, x: hinge_loss(x.chosen, x.rejected, x.ref_chosen, x.ref_rejected, c.beta)),
    "slic": Loss(lambda c, x: slic_loss(x.chosen, x.rejected, x.chosen_nll, c.delta, c.lam),
                 reference=False, settings=("delta", "lam")),
    "simpo": Loss(lambda c, x: simpo_loss(*x.means(), c.beta, c.gamma), reference=False, settings=("gamma",)),
    "orpo": Loss(lambda c, x: orpo_loss(*x.means(), c.beta), reference=False),
    "kto": Loss(None, settings=("desirable_weight", "undesirable_weight"), note="unpaired"),
    "sft": Loss(lambda c, x: chosen_nll_loss(x.chosen, x.rejected, x.chosen_lengths), reference=False,
                note="continued SFT on the chosen answers: the baseline"),
}


def preference_loss(cfg: LossSettings, policy_chosen: Tensor, policy_rejected: Tensor,
                    ref_chosen: Tensor | None = None, ref_rejected: Tensor | None = None,
                    chosen_nll: Tensor | None = None, *, chosen_lengths: Tensor | None = None,
                    rejected_lengths: Tensor | None = None) -> Rewarded:
    """The paired loss `cfg.kind` names, per pair, with the chosen and rejected rewards."""
    loss = LOSSES[cfg.kind]
    if loss.compute is None:
        raise ValueError(f"{cfg.kind} is not a paired loss: it trains on unpaired answers "
                         f"(train.unpaired), not on (chosen, rejected) pairs")
    if loss.reference and (ref_chosen is None or ref_rejected is None):
        raise ValueError(f"the {cfg.kind} loss needs reference log-probabilities "
                         f"(compute them once with train.preference.precompute_reference_logps)")
    return loss.compute(cfg, PairLogps(policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                                       chosen_nll, chosen_lengths, rejected_lengths))
