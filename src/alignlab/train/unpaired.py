"""Unpaired answers for KTO: one answer to one prompt, marked desirable or not.

    answers = unpaired_from_judged(curated_samples, curate_rejects)  # or unpaired_from_pairs(pairs)
    tokenized = tokenize_unpaired(tokenizer, answers, max_length=1024)
    precompute_unpaired_reference(model, answers, tokenizer, reference_id=spec)  # once, before step 1
    loss_fn = make_kto_loss_fn(PreferenceLossConfig(kind="kto"), desirable_share(tokenized))
    for batch in unpaired_batches(tokenized, batch_size, pad_id, seed, epoch):
        loss, metrics = loss_fn(model, batch)

An unpaired answer is a `Sample` (prompt messages + one assistant answer) whose
`metadata["desirable"]` says whether a judge accepted it, the `(prompt, completion, label)` rows
TRL's KTOTrainer reads. The judges' verdicts are KTO's natural data: curated samples are the
accepted answers, the curate stage's `low_quality` rejects the judge's rejected ones; pairs give
the same by splitting each into its chosen (desirable) and rejected (undesirable) answer.

KTO's reference point z is KL(π‖π_ref), estimated on mismatched rows: prompt k with the answer
of the row before it in id order (TRL rotates answers by one the same way). The mismatched
answer is fixed at tokenisation, so the reference's log-probs of both rows are computed once
and stored in the answer's metadata (`ref_logp`, `ref_kl_logp`), like the pairs' reference.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from alignlab.chat_format import prompt_and_answer
from alignlab.errors import AlignlabError
from alignlab.records import Pair, Sample, stable_id
from alignlab.train.config import PreferenceLossConfig
from alignlab.train.losses import kto_kl, kto_loss
from alignlab.train.preference import (
    Batch, LossFn, collate_rows, fit_to_length, row_logps, sequence_logps,
)

JUDGE_REJECT_REASONS = ("low_quality",)  # curate's verdict when the judge's score is too low


# ---------------------------------------------------------------- sources

def unpaired_answer(prompt: list[dict], answer: str, desirable: bool, **metadata: Any) -> Sample:
    messages = [*prompt, {"role": "assistant", "content": answer}]
    return Sample(stable_id("unpaired", messages, desirable), messages,
                  metadata={**metadata, "desirable": desirable})


def unpaired_from_judged(samples: Iterable[Sample], rejects: Iterable[dict[str, Any]],
                         reasons: Sequence[str] = JUDGE_REJECT_REASONS) -> list[Sample]:
    """Accepted samples (document chunks aside) as desirable answers; rejects the judge turned
    down (`reasons`) as undesirable ones. Both keep their lineage."""
    out = []
    for s in samples:
        if not s.unmask and s.response.strip():
            prompt = [m for m in s.messages if m["role"] != "assistant"]
            out.append(unpaired_answer(prompt, s.response, True, **s.metadata, source_sample=s.id))
    for r in rejects:
        if r.get("reason") in reasons:
            s = Sample.from_dict(r["record"], where=f"reject {r.get('id')}")
            prompt = [m for m in s.messages if m["role"] != "assistant"]
            if s.response.strip():
                out.append(unpaired_answer(prompt, s.response, False, **s.metadata, source_sample=s.id,
                                           reject_reason=r["reason"]))
    return out


def unpaired_from_pairs(pairs: Iterable[Pair]) -> tuple[list[Sample], int]:
    """Each pair's chosen answer as desirable, its rejected one as undesirable, once each. A
    middle rung's answer is chosen against a weaker rung and rejected against a stronger one:
    such answers carry no single label and are left out (their number is returned)."""
    labels: dict[str, set[bool]] = {}
    rows: dict[str, tuple[list[dict], str, dict[str, Any]]] = {}
    for p in pairs:
        for side, desirable in ((p.chosen, True), (p.rejected, False)):
            answer = "\n\n".join(m["content"] for m in side if m["role"] == "assistant")
            key = stable_id(p.prompt, answer)
            labels.setdefault(key, set()).add(desirable)
            model = p.metadata.get("chosen_model" if desirable else "rejected_model")
            rows.setdefault(key, (p.prompt, answer, {"leaf": p.metadata.get("leaf"), "model": model,
                                                     "source_pair": p.id}))
    out = [unpaired_answer(*rows[k][:2], next(iter(v)), **rows[k][2]) for k, v in labels.items() if len(v) == 1]
    return out, sum(len(v) > 1 for v in labels.values())


# ---------------------------------------------------------------- tokens and batches

@dataclass
class TokenizedAnswer:
    id: str
    prompt_ids: list[int]
    answer_ids: list[int]
    kl_answer_ids: list[int]  # another row's answer to this prompt: the KL estimate's sample
    desirable: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def tokenize_unpaired(tokenizer: Any, answers: Sequence[Sample], max_length: int = 1024) -> list[TokenizedAnswer]:
    """In id order, each row's KL answer being the previous row's answer (the last row's for
    the first), so the set of mismatched answers is the set of answers."""
    if not answers:
        return []
    ordered = sorted(answers, key=lambda s: s.id)
    rendered = []
    for s in ordered:
        prompt = [m for m in s.messages if m["role"] != "assistant"]
        answer = [m for m in s.messages if m["role"] == "assistant"]
        rendered.append(prompt_and_answer(tokenizer, prompt, answer, f"answer {s.id}"))
    out = []
    for k, s in enumerate(ordered):
        prompt_ids, (answer, kl_answer) = fit_to_length(rendered[k][0], [rendered[k][1], rendered[k - 1][1]],
                                                        max_length)
        out.append(TokenizedAnswer(s.id, prompt_ids, answer, kl_answer, bool(s.metadata["desirable"]), s.metadata))
    return out


def desirable_share(answers: Sequence[TokenizedAnswer]) -> float:
    return sum(a.desirable for a in answers) / len(answers) if answers else 0.0


def stratified_order(answers: Sequence[TokenizedAnswer], seed: int, epoch: int) -> list[TokenizedAnswer]:
    """Every answer once, shuffled, desirable and undesirable interleaved in their overall
    proportion, so every batch holds both kinds in about the same share (the KL estimate and
    the logged rewards of a batch then stand for the whole set)."""
    rng = random.Random(f"kto:{seed}:{epoch}")
    good = sorted((a for a in answers if a.desirable), key=lambda a: a.id)
    bad = sorted((a for a in answers if not a.desirable), key=lambda a: a.id)
    rng.shuffle(good)
    rng.shuffle(bad)
    share, out, taken = desirable_share(answers), [], 0
    while good or bad:
        take_good = bool(good) and (not bad or taken < (len(out) + 1) * share)
        taken += take_good
        out.append((good if take_good else bad).pop())
    return out


def collate_unpaired(answers: Sequence[TokenizedAnswer], pad_id: int) -> Batch:
    batch = collate_rows([(a.prompt_ids, a.answer_ids) for a in answers], pad_id)
    kl = collate_rows([(a.prompt_ids, a.kl_answer_ids) for a in answers], pad_id)
    batch.update({f"kl_{k}": v for k, v in kl.items()})
    batch["desirable"] = torch.tensor([a.desirable for a in answers])
    if all("ref_logp" in a.metadata and "ref_kl_logp" in a.metadata for a in answers):
        batch["ref_logp"] = torch.tensor([float(a.metadata["ref_logp"]) for a in answers])
        batch["ref_kl_logp"] = torch.tensor([float(a.metadata["ref_kl_logp"]) for a in answers])
    return batch


# ---------------------------------------------------------------- the loss and its reference

def make_kto_loss_fn(cfg: PreferenceLossConfig, share: float) -> LossFn:
    """`loss_fn(model, batch) -> (mean loss, metrics)`. The rewards are logged per answer of
    the batch divided by the overall desirable `share`, so that the loop's mean over a step's
    answers is the mean reward of each kind (exact when the batch holds that share)."""

    def loss_fn(model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if "ref_logp" not in batch:
            raise AlignlabError("the kto loss needs reference log-probabilities in the batch; run "
                                "precompute_unpaired_reference over the answers before training")
        logps, _ = sequence_logps(model, batch)
        with torch.no_grad():  # z shifts the loss but is not trained (as in TRL)
            kl_logps, _ = sequence_logps(model, {k[3:]: v for k, v in batch.items() if k.startswith("kl_")})
        kl = kto_kl(kl_logps, batch["ref_kl_logp"])
        losses, good, bad = kto_loss(logps, batch["ref_logp"], batch["desirable"], kl, cfg.beta,
                                     cfg.desirable_weight, cfg.undesirable_weight)
        n = len(losses)
        chosen = good.sum().item() / (n * share) if share else 0.0
        rejected = bad.sum().item() / (n * (1 - share)) if share < 1 else 0.0
        loss = losses.mean()
        return loss, {"loss": loss.item(), "rewards/chosen": chosen, "rewards/rejected": rejected,
                      "rewards/margin": chosen - rejected, "kl": kl.item()}

    return loss_fn


def reference_missing(answers: Sequence[Sample], reference_id: str, max_length: int) -> bool:
    """Whether some answer lacks log-probs from this reference and length limit."""
    return not all(a.metadata.get("ref_model") == reference_id and a.metadata.get("ref_max_length") == max_length
                   and "ref_kl_logp" in a.metadata for a in answers)


def precompute_unpaired_reference(reference: Any, answers: Sequence[Sample], tokenizer: Any, *,
                                  reference_id: str, max_length: int = 1024, batch_size: int = 8,
                                  progress: bool = True, precision: str = "fp32") -> int:
    """Store the reference's log-probs of each answer and of its mismatched row in the
    answer's metadata, at the training `precision`; returns how many answers were computed
    (0 when all were stored)."""
    if not reference_missing(answers, reference_id, max_length):
        return 0
    tokenized = tokenize_unpaired(tokenizer, answers, max_length)
    rows = [(t.prompt_ids, t.answer_ids) for t in tokenized] + [(t.prompt_ids, t.kl_answer_ids) for t in tokenized]
    logps = row_logps(reference, rows, batch_size=batch_size, pad_id=tokenizer.pad_token_id,
                      description="reference log-probs (kto)" if progress else None, precision=precision)
    by_id = {a.id: a for a in answers}
    for k, t in enumerate(tokenized):
        by_id[t.id].metadata.update(ref_logp=logps[k], ref_kl_logp=logps[len(tokenized) + k],
                                    ref_model=reference_id, ref_max_length=max_length)
    return len(tokenized)
