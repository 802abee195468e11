"""From Sample records to training tensors: the student's chat template, the loss mask, the
held-out split, the collate function, and the SFT objective.

Loss mask. Only the assistant's tokens are trained (the header the template puts before each
answer and everything the user or system said are context), except for samples marked
`unmask: true`, which are trained on every token (document chunks, for instance). Templates
such as SmolLM2's carry no `{% generation %}` markers, so the assistant spans are found by
rendering the conversation prefix by prefix: the text of messages[:i] with the generation
prompt ends where assistant message i begins, and the text of messages[:i+1] ends where it
ends (its end-of-turn token included, which is what teaches the model to stop). This needs
only that the template renders messages in order, each prefix a prefix of the whole; a
template that does not is reported, not guessed at. Character spans become token labels
through the tokenizer's offsets: a token is trained when it overlaps a span, so a token
straddling the boundary (" Hello" after a prompt ending in "assistant: ") counts as the
answer's, rather than the answer losing its first word.

Samples longer than `max_seq_len` are skipped and reported, never truncated: a truncated
answer teaches the model to stop mid-sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignlab.errors import AlignlabError
from alignlab.records import Sample

IGNORE = -100  # label of a position that is not trained (PyTorch's cross-entropy default)


class ChatTemplateError(AlignlabError):
    """The student's chat template does not render conversations prefix by prefix."""


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


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, str]], where: str = "sample"
                    ) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant message in it."""
    text = _render(tokenizer, messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        try:
            before = _render(tokenizer, messages[:i], True) if i else ""
        except Exception:  # noqa: BLE001 - a template may refuse an empty conversation
            before = ""
        through = _render(tokenizer, messages[:i + 1], False)
        if not (text.startswith(before) and text.startswith(through) and len(before) <= len(through)):
            raise ChatTemplateError(
                f"{where}: the student's chat template does not render message {i} (assistant) "
                f"as a prefix of the whole conversation, so its tokens cannot be located; use a "
                f"template that renders messages in order, or mark the sample `unmask: true`")
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_sample(tokenizer: Any, sample: Sample) -> TokenizedSample:
    """Token ids and labels of one sample under the tokenizer's chat template."""
    text, spans = assistant_spans(tokenizer, sample.messages, f"sample {sample.id}")
    # The rendered template already carries any BOS/special tokens the model expects.
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if sample.unmask:
        labels = list(ids)
    else:
        labels = [tok if any(start < e and end > s for s, e in spans) else IGNORE
                  for tok, (start, end) in zip(ids, enc["offset_mapping"])]
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
