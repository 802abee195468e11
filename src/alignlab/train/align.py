"""`alignlab align`: contrastive post-training (DPO, IPO, hinge, SLiC, SimPO, ORPO) on the pairs,
played as a curriculum from easy to hard, or KTO on unpaired accepted/rejected answers, with the
same training loop as supervised training. `sft` trains the chosen answers alone on the same pairs
and compute: the baseline a contrastive loss must beat (benchmarks/align_compare.py).

    alignlab align -c alignlab.yaml

1. Starts from the supervised student (the last phase's selected checkpoint) or `align.start`.
2. Computes the reference log-probabilities **once**, with the starting model (before the first
   step the policy is the reference), and stores them with the pairs in `align/`, so no second
   model is held in memory during training and a resumed run does not recompute them.
3. Plays the pairs in curriculum order each epoch (`easy_to_hard`, `hard_to_easy`, `mixed`),
   `batch_pairs` pairs per micro-batch (pairs of similar length batched together within a
   stage, to cut padding), through `train_loop` with the preference `loss_fn`;
   logs chosen/rejected rewards, margins and reward accuracy per step in `metrics.jsonl`.
   KTO trains on single answers instead (`align.unpaired_from`: the judges' verdicts or the
   pairs split in two, see train/unpaired.py), desirable and undesirable interleaved per batch.
4. Scores each checkpoint by reward accuracy on the held-out pairs and keeps the best as
   `align/selected/`, a Hugging Face model directory with a model card listing its lineage
   (train/model_card.py); a killed run resumes from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.artefacts import COUNTS, HELDOUT_PAIRS, PAIRS, REJECTS, SAMPLES, SELECTED
from alignlab.config import Config
from alignlab.errors import AlignlabError
from alignlab.llm.hf import load_causal_lm, load_tokenizer
from alignlab.llm.specs import parse_spec
from alignlab.pairs.export import taxonomy_license
from alignlab.records import Pair
from alignlab.stage import finished_stage, start_stage, upstream
from alignlab.store import read_jsonl, read_pairs, read_samples, write_jsonl
from alignlab.train import unpaired
from alignlab.train.checkpoint import (
    complete_checkpoints, load_trainable_model, remove_checkpoint, select_checkpoint,
)
from alignlab.train.curriculum import curriculum_batches
from alignlab.train.loop import LoopSettings, process_state, train_loop
from alignlab.train.model_card import model_card, write_model_card
from alignlab.train.preference import (
    collate_pairs, make_loss_fn, precompute_reference_logps, reward_accuracy, tokenize_pairs,
)


def start_model(cfg: Config) -> str:
    from alignlab.train.phases import trained_model

    return str(trained_model(cfg)) if cfg.align.start == "sft" else cfg.align.start


def _with_reference(cfg: Config, out: Path, start: str, ref_id: str) -> tuple[list[Pair], list[Pair]]:
    """The training and held-out pairs with the reference's log-probs, computed once and kept
    in `out/` (reused when they came from the same reference and length limit). KTO trains on
    single answers, so only its held-out pairs (the checkpoint metric) need them."""
    a = cfg.align
    pairs_dir = finished_stage(cfg, "pairs").path
    saved = out / "pairs_with_reference.jsonl", out / "heldout_with_reference.jsonl"
    sources = pairs_dir / PAIRS, pairs_dir / HELDOUT_PAIRS
    sets = [read_pairs(s if s.exists() else src) for s, src in zip(saved, sources)]
    if not sets[0] and not (a.loss.unpaired and a.unpaired_from == "judged"):
        raise AlignlabError(f"align: {sources[0]} holds no pairs; see {pairs_dir / COUNTS} for "
                            f"what the pairs stage rejected")
    if not a.loss.needs_reference:
        return sets[0], sets[1]
    tokenizer = load_tokenizer(parse_spec(start, cfg.base_dir))
    reference = None
    for rows, path in list(zip(sets, saved))[1 if a.loss.unpaired else 0:]:
        if any(p.metadata.get("ref_model") != ref_id or p.metadata.get("ref_max_length") != a.max_length
               for p in rows):
            reference = reference or load_causal_lm(start)
            precompute_reference_logps(reference, rows, tokenizer, reference_id=ref_id, max_length=a.max_length,
                                       precision=a.precision)
            write_jsonl(path, rows)
    return sets[0], sets[1]


def heldout_reward_accuracy(cfg: Config, heldout: list[Pair], tokenizer: Any):
    """Checkpoint metric: reward accuracy of a checkpoint on the held-out pairs."""
    def score(path: Path | str) -> float:
        if not heldout:
            return 0.0
        return reward_accuracy(load_causal_lm(str(path)), heldout, tokenizer, cfg.align.loss,
                               max_length=cfg.align.max_length, precision=cfg.align.precision)
    return score


def _with_batch_sizes(batch: dict[str, Any], units: int) -> dict[str, Any]:
    batch.update(units=units, tokens=int(batch["input_ids"].numel()), real_tokens=int(batch["attention_mask"].sum()))
    return batch


def _longest_row(pair: Any) -> int:
    """The width a pair needs in a batch: its prompt and longer answer."""
    return len(pair.prompt_ids) + max(len(pair.chosen_ids), len(pair.rejected_ids))


def _paired_training(cfg: Config, train_pairs: list[Pair], tokenizer: Any):
    """Batches of pairs in curriculum order each epoch, and the paired loss."""
    a = cfg.align
    tokenized = tokenize_pairs(tokenizer, train_pairs, a.max_length)

    def batches(epoch: int) -> list[dict[str, Any]]:
        out_batches = []
        for group in curriculum_batches(tokenized, a.batch_pairs, _longest_row, a.order, a.seed, epoch):
            batch = _with_batch_sizes(collate_pairs(group, tokenizer.pad_token_id), len(group))
            batch["difficulty"] = sum(float(p.metadata["difficulty"]) for p in group) / len(group)
            out_batches.append(batch)
        return out_batches

    return batches, make_loss_fn(a.loss)


def unpaired_answers(cfg: Config, train_pairs: list[Pair]) -> tuple[list[Any], dict[str, Any]]:
    """KTO's answers from `align.unpaired_from`, with counts saying where they came from."""
    if cfg.align.unpaired_from == "pairs":
        answers, ambiguous = unpaired.unpaired_from_pairs(train_pairs)
        extra = {"ambiguous_answers": ambiguous}
    else:
        curate = finished_stage(cfg, "curate").path
        rejects = curate / REJECTS
        answers = unpaired.unpaired_from_judged(read_samples(curate / SAMPLES),
                                                read_jsonl(rejects) if rejects.exists() else [])
        extra = {}
    desirable = sum(bool(x.metadata["desirable"]) for x in answers)
    if not answers:
        raise AlignlabError(f"align: kto found no answers to train on (unpaired_from: "
                            f"{cfg.align.unpaired_from}); see the curate and pairs stages' counts.json")
    return answers, {"unpaired_from": cfg.align.unpaired_from, "desirable": desirable,
                     "undesirable": len(answers) - desirable, **extra}


def _unpaired_training(cfg: Config, out: Path, start: str, ref_id: str, train_pairs: list[Pair],
                       tokenizer: Any):
    """KTO: the answers with the reference's log-probs (computed once, kept in `out/`),
    batches with both kinds interleaved, and the KTO loss."""
    a = cfg.align
    saved = out / "unpaired_with_reference.jsonl"
    answers, counts = unpaired_answers(cfg, train_pairs)
    if saved.exists():
        stored = {x.id: x for x in read_samples(saved)}
        answers = [stored.get(x.id, x) for x in answers]
    if unpaired.reference_missing(answers, ref_id, a.max_length):
        unpaired.precompute_unpaired_reference(load_causal_lm(start), answers, tokenizer, reference_id=ref_id,
                                               max_length=a.max_length, precision=a.precision)
        write_jsonl(saved, answers)
    tokenized = unpaired.tokenize_unpaired(tokenizer, answers, a.max_length)

    def batches(epoch: int) -> list[dict[str, Any]]:
        ordered = unpaired.stratified_order(tokenized, a.seed, epoch)
        return [_with_batch_sizes(unpaired.collate_unpaired(ordered[i:i + a.batch_pairs], tokenizer.pad_token_id),
                                  len(ordered[i:i + a.batch_pairs]))
                for i in range(0, len(ordered), a.batch_pairs)]

    return batches, unpaired.make_kto_loss_fn(a.loss, unpaired.desirable_share(tokenized)), counts


def align_stage(cfg: Config, *, force: bool = False, console: Any = None,
                stop_at_step: int | None = None) -> dict[str, Any]:
    a = cfg.align
    start = start_model(cfg)
    start_id = cfg.model_id(start)
    inputs = {"pairs": upstream(cfg, "pairs"), "start": start_id}
    if a.start == "sft":
        inputs["train"] = upstream(cfg, "train")
    if a.loss.unpaired and a.unpaired_from == "judged":
        inputs["curate"] = upstream(cfg, "curate")
    run = start_stage(cfg, "align", inputs=inputs, settings=a.model_dump(mode="json"),
                      code=(__name__,), force=force)
    if run.done:
        return run.manifest
    main = process_state().is_main_process
    out = run.dir.path
    if force and main:  # else the loop would resume the finished run's last checkpoint
        for path in complete_checkpoints(out):
            remove_checkpoint(path)
    process_state().wait_for_everyone()
    # The reference's log-probs depend on the precision they were computed at as well as on the model.
    ref_id = f"{start_id}|{a.precision}"
    train_pairs, heldout = _with_reference(cfg, out, start, ref_id)
    tokenizer = load_tokenizer(parse_spec(start, cfg.base_dir))
    if a.loss.unpaired:
        batches, mean_loss, data_counts = _unpaired_training(cfg, out, start, ref_id, train_pairs, tokenizer)
    else:
        batches, mean_loss = _paired_training(cfg, train_pairs, tokenizer)
        data_counts = {"pairs": len(train_pairs)}

    def loss_fn(model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        # The loop wants sums over the batch's units (pairs or answers); the losses give means.
        loss, metrics = mean_loss(model, batch)
        n = batch["units"]
        extra = {k: v * n for k, v in metrics.items() if k != "loss"}
        if "difficulty" in batch:
            extra["difficulty"] = batch["difficulty"] * n
        return loss * n, extra

    score = heldout_reward_accuracy(cfg, heldout, tokenizer)
    # For DPO, IPO, hinge and KTO the starting model is the reference, scored at the same
    # precision, so every margin is exactly 0 and its accuracy is known without a pass over the
    # held-out pairs: every pair ties, which counts half (tests/test_preference.py checks the
    # identity by scoring); for SLiC, SimPO and ORPO it is the starting model's own preference.
    before = None if not heldout else 0.5 if a.loss.needs_reference else score(start)
    settings = LoopSettings.of(a, fingerprint=run.fingerprint, tensorboard=cfg.train.tensorboard)
    result = train_loop(lambda resume: load_trainable_model(start, a.method, a.lora, resume), tokenizer,
                        batches, loss_fn, settings, out, score=score, stop_at_step=stop_at_step,
                        description=f"align ({a.loss.kind}, {'stratified' if a.loss.unpaired else a.order})")
    if not result.finished:
        return {"finished": False, "step": result.step}
    counts: dict[str, Any] = {**data_counts, "heldout_pairs": len(heldout), "steps": result.step,
                              "loss": a.loss.kind, "order": "stratified" if a.loss.unpaired else a.order}
    manifest = None
    if main:
        chosen = select_checkpoint(out, score)  # reward accuracy: higher is better
        counts.update(selected=chosen["selected"], heldout_reward_accuracy=chosen["selected_score"],
                      scores=chosen["scores"], heldout_reward_accuracy_before=before, last=result.last)
        pairs_run = finished_stage(cfg, "pairs")
        write_model_card(out / SELECTED, model_card(
            cfg, start_id=start_id, counts=counts, pairs_manifest=pairs_run.manifest(),
            license=cfg.pairs.license or taxonomy_license(cfg.taxonomy_path)))
        manifest = run.finish(counts)
    process_state().wait_for_everyone()
    return manifest or run.manifest


def aligned_model(cfg: Config) -> Path:
    path = cfg.run_dir.path / "align" / SELECTED
    if not (path / "config.json").is_file():
        raise AlignlabError(f"no aligned model in {path}; run `alignlab align -c <config>` first")
    return path


def print_summary(console: Any, cfg: Config, manifest: dict[str, Any]) -> None:
    c = manifest["counts"]
    before = c.get("heldout_reward_accuracy_before")
    data = (f"{c['desirable']} desirable + {c['undesirable']} undesirable answers ({c['unpaired_from']})"
            if "desirable" in c else f"{c['pairs']} pairs")
    console.print(f"align: {c['loss']} on {data} ({c['order']}), {c['steps']} steps; held-out "
                  f"reward accuracy {c['heldout_reward_accuracy']:.2f}"
                  + (f" (before training {before:.2f})" if before is not None else "")
                  + f", selected {c['selected']} -> {manifest['stage']}/selected", highlight=False)
