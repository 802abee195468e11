"""Preference pairs as training batches, and the `loss_fn(model, batch)` the training loop calls.

    pairs = read_pairs(".../pairs.jsonl")
    precompute_reference_logps(model, pairs, tokenizer, reference_id=spec)  # once, before step 1
    tokenized = tokenize_pairs(tokenizer, pairs, max_length=1024)
    loss_fn = make_loss_fn(PreferenceLossConfig(kind="dpo", beta=0.1))
    for epoch in range(epochs):
        for batch in preference_batches(curriculum_order(tokenized, "easy_to_hard", seed, epoch),
                                        batch_size, tokenizer.pad_token_id):
            loss, metrics = loss_fn(model, batch)

A pair is rendered with the student's chat template: the prompt messages with the generation
prompt, then the answer's tokens, with labels on the answer tokens only; the tokens are
`alignlab.chat_format.prompt_and_answer`'s, the same SFT trains for that conversation. A batch of B pairs is
one forward pass over 2B rows (chosen rows first, then rejected), right-padded.

The reference log-probabilities are computed **once**, before training, and stored in each
pair's metadata (`ref_chosen_logp`, `ref_rejected_logp`, with `ref_model` and
`ref_max_length` saying what produced them), so training never holds a second model. Before
the first step the policy *is* the reference, so for a full fine-tune the policy itself
computes them; for LoRA the adapter-disabled model (peft's `disable_adapter()`) can serve as
the reference at any time. SLiC needs no reference at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from alignlab.chat_format import prompt_and_answer
from alignlab.errors import AlignlabError
from alignlab.progress import progress_bar
from alignlab.records import Pair
from alignlab.train.config import PreferenceLossConfig
from alignlab.train.losses import preference_loss

IGNORE = -100
Batch = dict[str, torch.Tensor]
LossFn = Callable[[Any, Batch], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TokenizedPair:
    id: str
    prompt_ids: list[int]
    chosen_ids: list[int]  # the answer's tokens only; labels fall on these
    rejected_ids: list[int]
    metadata: dict[str, Any] = field(default_factory=dict)  # the pair's own dict (difficulty, ref log-probs)


# ---------------------------------------------------------------- tokenisation

def fit_to_length(prompt_ids: list[int], answers: list[list[int]], max_length: int
                  ) -> tuple[list[int], list[list[int]]]:
    """Fit prompt + the longest answer into `max_length` by keeping the end of the prompt and
    the start of the answers (at least half the budget goes to the answers)."""
    longest = max(len(a) for a in answers)
    if len(prompt_ids) + longest <= max_length:
        return prompt_ids, answers
    prompt_budget = max_length - min(longest, max_length // 2)
    prompt_ids = prompt_ids[-prompt_budget:] if prompt_budget > 0 else []
    answer_budget = max_length - len(prompt_ids)
    return prompt_ids, [a[:answer_budget] for a in answers]


def tokenize_pair(tokenizer: Any, pair: Pair, max_length: int = 1024) -> TokenizedPair:
    """Render with the chat template; fit into `max_length` (`fit_to_length`), the same prompt
    for chosen and rejected."""
    # The prompt's tokens end where the answer begins, so they are the same for both answers.
    prompt_ids, chosen = prompt_and_answer(tokenizer, pair.prompt, pair.chosen, f"pair {pair.id}")
    _, rejected = prompt_and_answer(tokenizer, pair.prompt, pair.rejected, f"pair {pair.id}")
    prompt_ids, (chosen, rejected) = fit_to_length(prompt_ids, [chosen, rejected], max_length)
    return TokenizedPair(pair.id, prompt_ids, chosen, rejected, pair.metadata)


def tokenize_pairs(tokenizer: Any, pairs: Sequence[Pair], max_length: int = 1024) -> list[TokenizedPair]:
    return [tokenize_pair(tokenizer, p, max_length) for p in pairs]


# ---------------------------------------------------------------- batches

def collate_rows(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> Batch:
    """(prompt, answer) rows, right-padded, with labels on the answer tokens only."""
    width = max(len(prompt) + len(answer) for prompt, answer in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, (prompt, answer) in enumerate(rows):
        n = len(prompt) + len(answer)
        input_ids[r, :n] = torch.tensor(prompt + answer)
        attention_mask[r, :n] = 1
        labels[r, len(prompt):n] = torch.tensor(answer)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_pairs(pairs: Sequence[TokenizedPair], pad_id: int) -> Batch:
    """2B right-padded rows (chosen rows, then rejected rows) and, when every pair has them,
    the stored reference log-probabilities [B]."""
    batch = collate_rows([(p.prompt_ids, p.chosen_ids) for p in pairs]
                         + [(p.prompt_ids, p.rejected_ids) for p in pairs], pad_id)
    if all("ref_chosen_logp" in p.metadata and "ref_rejected_logp" in p.metadata for p in pairs):
        batch["ref_chosen_logp"] = torch.tensor([float(p.metadata["ref_chosen_logp"]) for p in pairs])
        batch["ref_rejected_logp"] = torch.tensor([float(p.metadata["ref_rejected_logp"]) for p in pairs])
    return batch


def preference_batches(pairs: Sequence[TokenizedPair], batch_size: int, pad_id: int) -> Iterator[Batch]:
    """Consecutive batches in the given order (e.g. `curriculum_order(...)`); the last may be short."""
    for start in range(0, len(pairs), batch_size):
        yield collate_pairs(pairs[start:start + batch_size], pad_id)


# ---------------------------------------------------------------- log-probabilities and the loss

def sequence_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: log π(answer | prompt) summed over the answer tokens, and the token count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    # Logits at position t predict token t+1: shift the labels rather than the logits, so the
    # (rows × tokens × vocabulary) logits are used in place instead of copied.
    targets = F.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE)
    token_nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                ignore_index=IGNORE, reduction="none").view(targets.shape)
    return -token_nll.sum(-1), (targets != IGNORE).sum(-1)


def make_loss_fn(cfg: PreferenceLossConfig) -> LossFn:
    """`loss_fn(model, batch) -> (mean loss, metrics)` for the training loop. The metrics are
    the step's mean chosen/rejected rewards, their margin, and the reward accuracy (fraction
    of pairs whose chosen reward beats the rejected one)."""

    def loss_fn(model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        logps, n_tokens = sequence_logps(model, batch)
        policy_chosen, policy_rejected = logps.chunk(2)
        chosen_tokens, rejected_tokens = n_tokens.chunk(2)
        ref_chosen, ref_rejected = batch.get("ref_chosen_logp"), batch.get("ref_rejected_logp")
        if cfg.needs_reference and ref_chosen is None:
            raise AlignlabError(f"the {cfg.kind} loss needs reference log-probabilities in the batch; "
                                f"run precompute_reference_logps over the pairs before training")
        chosen_nll = -policy_chosen / chosen_tokens.clamp(min=1)  # mean per answer token
        losses, chosen_rewards, rejected_rewards = preference_loss(
            cfg, policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_nll,
            chosen_lengths=chosen_tokens, rejected_lengths=rejected_tokens)
        loss = losses.mean()
        margins = chosen_rewards - rejected_rewards
        metrics = {
            "loss": loss.item(),
            "rewards/chosen": chosen_rewards.mean().item(),
            "rewards/rejected": rejected_rewards.mean().item(),
            "rewards/margin": margins.mean().item(),
            "rewards/accuracy": (margins > 0).float().mean().item(),
            "logps/chosen": policy_chosen.detach().mean().item(),
            "logps/rejected": policy_rejected.detach().mean().item(),
            "nll/chosen": chosen_nll.detach().mean().item(),
        }
        return loss, metrics

    return loss_fn


# ---------------------------------------------------------------- the reference, computed once

def _reference_context(model: Any, disable_adapter: bool) -> Any:
    if not disable_adapter:
        return nullcontext()
    if not hasattr(model, "disable_adapter"):
        raise AlignlabError("disable_adapter=True needs a peft model (LoRA): the adapter-disabled "
                            "base model serves as the reference; this model has no adapter")
    return model.disable_adapter()


def _precision_context(model: Any, precision: str) -> Any:
    """bf16: the matmuls in bfloat16 under autocast, as the training loop runs them. A reference
    or checkpoint score computed at another precision than training differs from the policy's
    own log-probs by the kernels' rounding alone, which is the same size as early DPO margins."""
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def row_logps(model: Any, rows: Sequence[tuple[list[int], list[int]]], *, batch_size: int = 8, pad_id: int,
              disable_adapter: bool = False, description: str | None = None,
              precision: str = "fp32") -> list[float]:
    """Summed answer log-probs of (prompt, answer) rows, in eval mode (no dropout), batched by
    length, at the training `precision`; `description` shows a progress bar."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]) - len(rows[i][1]))
    out = [0.0] * len(rows)
    was_training = model.training
    model.eval()
    bar = progress_bar(transient=True) if description else nullcontext()
    try:
        with bar, _reference_context(model, disable_adapter), _precision_context(model, precision):
            task = bar.add_task(description, total=len(rows)) if description else None
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                logps, _ = sequence_logps(model, collate_rows([rows[i] for i in index], pad_id))
                for k, i in enumerate(index):
                    out[i] = float(logps[k])
                if task is not None:
                    bar.advance(task, len(index))
    finally:
        model.train(was_training)
    return out


def pair_logps(model: Any, pairs: Sequence[TokenizedPair], *, batch_size: int = 8, pad_id: int,
               disable_adapter: bool = False, description: str | None = None, precision: str = "fp32"
               ) -> tuple[list[float], list[float]]:
    """Summed answer log-probs of chosen and rejected for every pair (`row_logps`)."""
    rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    logps = row_logps(model, rows, batch_size=2 * batch_size, pad_id=pad_id, disable_adapter=disable_adapter,
                      description=description, precision=precision)
    return logps[:len(pairs)], logps[len(pairs):]


def precompute_reference_logps(reference: Any, pairs: Sequence[Pair], tokenizer: Any, *,
                               reference_id: str, max_length: int = 1024, batch_size: int = 8,
                               disable_adapter: bool = False, progress: bool = True,
                               precision: str = "fp32") -> int:
    """Store the reference's log-probs in each pair's metadata; pairs that already carry
    values from the same reference and `max_length` are left alone. Returns how many pairs
    were computed (0 on a second call). `precision` must be the training run's, and belongs
    in `reference_id`, so that the policy before its first step scores exactly the reference."""
    todo = [p for p in pairs if not (
        "ref_chosen_logp" in p.metadata and "ref_rejected_logp" in p.metadata
        and p.metadata.get("ref_model") == reference_id and p.metadata.get("ref_max_length") == max_length)]
    if not todo:
        return 0
    tokenized = tokenize_pairs(tokenizer, todo, max_length)
    chosen, rejected = pair_logps(reference, tokenized, batch_size=batch_size, pad_id=tokenizer.pad_token_id,
                                  disable_adapter=disable_adapter,
                                  description="reference log-probs" if progress else None, precision=precision)
    for pair, c, r in zip(todo, chosen, rejected):
        pair.metadata.update(ref_chosen_logp=c, ref_rejected_logp=r, ref_model=reference_id,
                             ref_max_length=max_length)
    return len(todo)


def reward_accuracy(model: Any, pairs: Sequence[Pair], tokenizer: Any, cfg: PreferenceLossConfig, *,
                    reference: Any = None, disable_adapter: bool = False, max_length: int = 1024,
                    batch_size: int = 8, precision: str = "fp32") -> float:
    """Fraction of held-out pairs whose reward, as the loss `cfg` defines it, ranks chosen above
    rejected: log π/π_ref for the reference-based losses (and for KTO, whose reward is the
    same), the policy's log-prob margin (per token for SimPO and ORPO) for the others.

    The reference log-probs come from the pairs' metadata when every pair has them (for the
    same `max_length`), else from `reference` (a model) or, with `disable_adapter`, from
    `model` with its LoRA adapter off. Ties count half."""
    if not pairs:
        raise AlignlabError("reward accuracy needs at least one held-out pair")
    tokenized = tokenize_pairs(tokenizer, pairs, max_length)
    pad_id = tokenizer.pad_token_id
    chosen, rejected = map(torch.tensor, pair_logps(model, tokenized, batch_size=batch_size, pad_id=pad_id,
                                                    precision=precision))
    ref_chosen = ref_rejected = None
    if cfg.needs_reference:
        if all("ref_chosen_logp" in p.metadata and "ref_rejected_logp" in p.metadata
               and p.metadata.get("ref_max_length", max_length) == max_length for p in pairs):
            ref_chosen = torch.tensor([float(p.metadata["ref_chosen_logp"]) for p in pairs])
            ref_rejected = torch.tensor([float(p.metadata["ref_rejected_logp"]) for p in pairs])
        elif reference is not None or disable_adapter:
            ref_chosen, ref_rejected = map(torch.tensor, pair_logps(
                model if reference is None else reference, tokenized, batch_size=batch_size,
                pad_id=pad_id, disable_adapter=disable_adapter, precision=precision))
        else:
            raise AlignlabError(f"reward accuracy for {cfg.kind} needs reference log-probs: store them "
                                f"with precompute_reference_logps, pass `reference`, or use disable_adapter")
    lengths = [torch.tensor([len(getattr(t, side)) for t in tokenized]) for side in ("chosen_ids", "rejected_ids")]
    # KTO's reward is DPO's implicit reward β·log(π/π_ref); the other losses define their own.
    paired = cfg.model_copy(update={"kind": "dpo"}) if cfg.unpaired else cfg
    _, chosen_rewards, rejected_rewards = preference_loss(
        paired, chosen, rejected, ref_chosen, ref_rejected, -chosen / lengths[0].clamp(min=1),
        chosen_lengths=lengths[0], rejected_lengths=lengths[1])
    # A tie counts half, as a coin toss would: a policy equal to its reference ties on every
    # pair and scores 0.5, chance, not 0.
    wins = (chosen_rewards > rejected_rewards).float() + 0.5 * (chosen_rewards == rejected_rewards).float()
    return float(wins.mean())
