"""From Sample records to training tensors: the student's chat template, the loss mask, the
held-out split, the collate function, and the SFT objective.

Loss mask. Only the assistant's tokens are trained (the header the template puts before each
answer and everything the user or system said are context), except for samples marked
`unmask: true`, which are trained on every token (document chunks, for instance). Where the
answers lie, and how their tokens meet the context's, is `alignlab.chat_format`'s to say: DPO
reads the same tokens for the same conversation.

Samples longer than `max_seq_len` are skipped and reported, never truncated: a truncated
answer teaches the model to stop mid-sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignlab.chat_format import encode, render, tokenize_answers
from alignlab.records import Sample

IGNORE = -100  # label of a position that is not trained (PyTorch's cross-entropy default)


@dataclass
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]  # input_ids where trained, IGNORE elsewhere

    @property
    def trained_tokens(self) -> int:
        # The first position has nothing before it to predict it from.
        return sum(1 for t in self.labels[1:] if t != IGNORE)


@dataclass
class Prepared:
    samples: list[TokenizedSample] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> sample ids
    lengths_skipped: dict[str, int] = field(default_factory=dict)  # id -> length (too long)

    def skip(self, reason: str, sample_id: str) -> None:
        self.skipped.setdefault(reason, []).append(sample_id)


def tokenize_sample(tokenizer: Any, sample: Sample) -> TokenizedSample:
    """Token ids and labels of one sample under the tokenizer's chat template."""
    if sample.unmask:
        # Every token is trained: no answer boundary to cut at, the text is tokenized whole.
        ids = encode(tokenizer, render(tokenizer, sample.messages))
        return TokenizedSample(id=sample.id, input_ids=ids, labels=list(ids))
    ids, trained = tokenize_answers(tokenizer, sample.messages, where=f"sample {sample.id}")
    labels = [tok if keep else IGNORE for tok, keep in zip(ids, trained)]
    return TokenizedSample(id=sample.id, input_ids=ids, labels=labels)


def prepare_samples(tokenizer: Any, samples: Sequence[Sample], max_seq_len: int) -> Prepared:
    """Tokenize every sample; too long or nothing to train on -> skipped with the reason."""
    out = Prepared()
    for sample in samples:
        tokenized = tokenize_sample(tokenizer, sample)
        if len(tokenized.input_ids) > max_seq_len:
            out.skip("too_long", sample.id)
            out.lengths_skipped[sample.id] = len(tokenized.input_ids)
        elif tokenized.trained_tokens == 0:
            out.skip("no_trained_tokens", sample.id)
        else:
            out.samples.append(tokenized)
    return out


def split_validation(samples: Sequence[Sample], fraction: float, max_samples: int, seed: int
                     ) -> tuple[list[Sample], list[Sample]]:
    """(train, validation): `fraction` of the samples (at least 1 when there are 2 or more,
    at most `max_samples`), chosen by a seeded hash of their ids, so the split stays the same
    across re-runs and a sample added to the mix does not reshuffle the others."""
    n = len(samples)
    k = min(max_samples, max(1, round(fraction * n))) if n >= 2 and fraction > 0 else 0
    if k == 0:
        return list(samples), []

    def rank(s: Sample) -> str:
        return hashlib.sha256(f"{seed}:{s.id}".encode()).hexdigest()

    held = {id(s) for s in sorted(samples, key=rank)[:k]}
    return [s for s in samples if id(s) not in held], [s for s in samples if id(s) in held]


def collate(samples: Sequence[TokenizedSample], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors, plus the counts the loop logs and normalises by.

    `units` is what the loss is summed over (trained tokens); `tokens` the padded size fed
    through the model; `real_tokens` the tokens that are not padding.
    """
    import torch

    width = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, s in enumerate(samples):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids)
        labels[row, :n] = torch.tensor(s.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "units": sum(s.trained_tokens for s in samples),
            "tokens": len(samples) * width,
            "real_tokens": sum(len(s.input_ids) for s in samples)}


def sft_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """Summed cross-entropy over the trained tokens of the batch (the loop divides by the
    trained tokens of the whole optimizer step, over all processes)."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Position t predicts token t+1.
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(),
                           ignore_index=IGNORE, reduction="sum")
    return loss, {}
