"""Multi-phase supervised fine-tuning: the `alignlab train` stage.

Phases run in the order of `train.phases` (e.g. knowledge, then skills with replay; what each
phase's data holds is the mix stage's business). Each phase:
  1. starts from the previous phase's selected checkpoint (the first from `models.student`);
  2. reads `runs/<name>/mix/<phase>.jsonl`, holds out a validation split, tokenizes under the
     student's chat template, and skips (and reports) samples longer than `max_seq_len`;
  3. trains with `train_loop`, checkpointing into `runs/<name>/train/<phase>/checkpoint-<step>/`;
  4. scores every checkpoint with its `select_by` metric and copies the best into
     `runs/<name>/train/<phase>/selected/`, a plain model directory later stages load;
  5. writes `phase.json` last: its fingerprint (data, settings, starting model, code) lets a
     re-run skip the phase, and a phase killed half-way resumes from its last checkpoint.

Checkpoint metrics come from a registry passed in by the caller (name -> `CheckpointMetric`,
e.g. the evaluation package's knowledge MCQ or judged skills); `loss`, the held-out loss on the
phase's validation split (`val_fraction` of its samples, at most `val_max_samples`; default
5%, at most 64), is built here and always available.

On several processes: `accelerate launch --multi_gpu --num_processes N -m alignlab.train -c
alignlab.yaml` (on CPUs with ACCELERATE_USE_CPU=true; see alignlab/train/__main__.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.artefacts import SELECTED, phase_file
from alignlab.codedeps import stage_code_version
from alignlab.config import Config
from alignlab.errors import AlignlabError
from alignlab.llm.hf import load_tokenizer
from alignlab.llm.specs import parse_spec
from alignlab.stage import finished_stage, start_stage, upstream
from alignlab.store import (
    file_fingerprint, fingerprint, read_json, read_samples, write_json, write_jsonl,
)
from alignlab.train.batching import LazyBatches, token_budget_batches
from alignlab.train.checkpoint import (
    CheckpointMetric, load_trainable_model, lower_is_better, select_checkpoint,
)
from alignlab.train.config import PhaseConfig
from alignlab.train.data import TokenizedSample, collate, prepare_samples, sft_loss, split_validation
from alignlab.train.loop import LoopSettings, LossFn, process_state, train_loop

PHASE_FILE = "phase.json"


def _code() -> str:
    return stage_code_version(__name__)


def heldout_loss(samples: list[TokenizedSample], batch_tokens: int, pad_id: int) -> CheckpointMetric:
    """Mean cross-entropy per trained token of `samples` under a checkpoint (lower is better)."""

    @lower_is_better
    def loss(path: Path) -> float:
        import torch

        from alignlab.llm.hf import load_causal_lm

        model = load_causal_lm(str(path))
        total = units = 0.0
        lengths = [len(s.input_ids) for s in samples]
        with torch.no_grad():
            for idx in token_budget_batches(lengths, batch_tokens, seed=0, epoch=0):
                batch = collate([samples[i] for i in idx], pad_id)
                total += float(sft_loss(model, batch)[0])
                units += batch["units"]
        return total / units

    return loss


def phase_dir(cfg: Config, phase: str) -> Path:
    return cfg.run_dir.path / "train" / phase


def selected_checkpoint(cfg: Config, phase: str) -> Path:
    """The model directory selected at the end of `phase`, for later stages to load."""
    path = phase_dir(cfg, phase) / SELECTED
    if not (phase_dir(cfg, phase) / PHASE_FILE).exists() or not (path / "config.json").exists():
        raise AlignlabError(f"phase '{phase}' has no selected checkpoint in {path}; "
                            f"run `alignlab train -c <config>` first")
    return path


def trained_model(cfg: Config) -> Path:
    """The student after supervised training: the last phase's selected checkpoint."""
    return selected_checkpoint(cfg, cfg.train.phases[-1].name)


def default_metrics(cfg: Config) -> dict[str, CheckpointMetric]:
    """Checkpoint metrics the evaluation package provides (built when first called)."""
    from alignlab.evaluate.selection import checkpoint_metrics

    return checkpoint_metrics(cfg)


def _is_main() -> bool:
    return process_state().is_main_process


def _barrier() -> None:
    process_state().wait_for_everyone()


def _phase_file(cfg: Config, phase: PhaseConfig) -> Path:
    mix = finished_stage(cfg, "mix").path
    path = mix / phase_file(phase.name)
    if not path.is_file():
        wrote = sorted(p.stem for p in mix.glob("*.jsonl"))
        raise AlignlabError(f"train phase '{phase.name}': {path} does not exist; the mix stage "
                            f"wrote phases {wrote or 'none'}. Name train.phases after them.")
    return path


def _read_samples(path: Path, phase: PhaseConfig) -> list:
    try:
        samples = read_samples(path)
    except ValueError as e:
        raise AlignlabError(str(e)) from e
    if not samples:
        raise AlignlabError(f"train phase '{phase.name}': {path} holds no samples")
    return samples


def _local_spec(raw: str, base_dir: Path) -> str:
    """The student spec with a relative directory made absolute (phases load it from
    elsewhere); embedded specs unchanged."""
    spec = parse_spec(raw, base_dir)
    if spec.kind != "local":
        return raw
    return spec.name + (f"?layers={spec.layers}" if spec.layers else "")


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def run_phase(cfg: Config, phase: PhaseConfig, start: str, chain: str,
              metrics: dict[str, CheckpointMetric], *, loss_fn: LossFn = sft_loss,
              stop_at_step: int | None = None, progress: bool = True, console: Any = None
              ) -> dict[str, Any]:
    """Train one phase from model `start`; returns its summary (also saved in phase.json).

    `chain` fingerprints what came before (starting model, earlier phases)."""
    tc = cfg.train
    hp = tc.resolve(phase)
    out = phase_dir(cfg, phase.name)
    mix_file = _phase_file(cfg, phase)
    train_fp = fingerprint({"chain": chain, "data": file_fingerprint(mix_file),
                            "settings": hp.model_dump(mode="json"), "epochs": phase.epochs,
                            "validation": [tc.val_fraction, tc.val_max_samples], "code": _code()})
    phase_fp = fingerprint({"train": train_fp, "select_by": phase.select_by})
    done = out / PHASE_FILE
    if done.exists() and read_json(done).get("fingerprint") == phase_fp and (out / SELECTED).is_dir():
        return {**read_json(done), "reused": True}

    samples = _read_samples(mix_file, phase)
    say = console.print if console is not None and _is_main() else (lambda *a, **k: None)
    overrides = {k: _plain(v) for k, v in phase.overrides().items() if v != getattr(tc, k)}
    say(f"[bold]phase {phase.name}[/]: {phase.epochs} epoch(s) from {start}"
        + "".join(f"\n  override {k}: {v} (train: {_plain(getattr(tc, k))})" for k, v in overrides.items()))

    tokenizer = load_tokenizer(parse_spec(start, cfg.base_dir))
    train_rows, val_rows = split_validation(samples, tc.val_fraction, tc.val_max_samples, hp.seed)
    prepared = prepare_samples(tokenizer, train_rows, hp.max_seq_len)
    validation = prepare_samples(tokenizer, val_rows, hp.max_seq_len)
    if not prepared.samples:
        raise AlignlabError(f"train phase '{phase.name}': no sample left to train on "
                            f"({', '.join(f'{len(v)} {k}' for k, v in prepared.skipped.items())}; "
                            f"max_seq_len is {hp.max_seq_len})")
    val_samples = validation.samples or prepared.samples[:tc.val_max_samples]
    skipped = {reason: prepared.skipped.get(reason, []) + validation.skipped.get(reason, [])
               for reason in sorted(set(prepared.skipped) | set(validation.skipped))}

    metric = (heldout_loss(val_samples, hp.batch_tokens, tokenizer.pad_token_id)
              if phase.select_by == "loss" else metrics[phase.select_by])
    train = prepared.samples
    lengths = [len(s.input_ids) for s in train]
    pad_id = tokenizer.pad_token_id

    def batches(epoch: int) -> LazyBatches:
        return LazyBatches(token_budget_batches(lengths, hp.batch_tokens, hp.seed, epoch),
                           lambda idx: collate([train[i] for i in idx], pad_id))

    settings = LoopSettings.of(hp, epochs=phase.epochs, fingerprint=train_fp, tensorboard=tc.tensorboard)
    result = train_loop(lambda resume: load_trainable_model(start, hp.method, hp.lora, resume),
                        tokenizer, batches, loss_fn, settings, out, score=metric,
                        stop_at_step=stop_at_step, progress=progress, description=phase.name)
    summary = {
        "phase": phase.name, "fingerprint": phase_fp, "start": start, "epochs": phase.epochs,
        "method": hp.method, "overrides": overrides,
        "samples": {"total": len(samples), "validation": len(val_rows), "trained": len(train),
                    "validation_held_out": bool(validation.samples)},
        "skipped": {reason: {"count": len(ids), "ids": ids} for reason, ids in skipped.items()},
        "steps": result.step, "total_steps": result.total_steps, "resumed_from": result.resumed_from,
        "last_loss": result.last.get("loss"), "select_by": phase.select_by,
    }
    if not result.finished:
        return {**summary, "finished": False}
    if _is_main():
        summary.update(select_checkpoint(out, metric))
        too_long = {**prepared.lengths_skipped, **validation.lengths_skipped}
        write_jsonl(out / "skipped.jsonl", [{"id": i, "reason": r, "tokens": too_long.get(i)}
                                            for r, ids in skipped.items() for i in ids])
        write_json(done, {**summary, "finished": True})
    _barrier()
    return {**read_json(done), "reused": False}


def train_stage(cfg: Config, *, metrics: dict[str, CheckpointMetric] | None = None,
                force: bool = False, progress: bool = True, console: Any = None) -> dict[str, Any]:
    """Run every phase in order; skipped when the mix, the student and the settings are
    unchanged. `force` retrains every phase from scratch."""
    import shutil

    tc = cfg.train
    registry = dict(metrics if metrics is not None else default_metrics(cfg))
    unknown = sorted({p.select_by for p in tc.phases} - set(registry) - {"loss"})
    if unknown:
        raise AlignlabError(f"train.phases select_by {unknown}: no such checkpoint metric "
                            f"(available: {', '.join(sorted({'loss', *registry}))})")
    student = cfg.models.student
    student_id = cfg.model_id(student)
    inputs = {"mix": upstream(cfg, "mix"), "student": student_id}
    run = start_stage(cfg, "train", settings=tc.model_dump(mode="json"), inputs=inputs,
                      code=(__name__,), force=force)
    if run.done:
        return run.manifest
    # Each phase keeps its own finished state and checkpoints (reused or resumed when its
    # fingerprint matches): forced, every phase starts from scratch.
    if force and _is_main():
        for phase in tc.phases:
            shutil.rmtree(phase_dir(cfg, phase.name), ignore_errors=True)
    _barrier()

    start = _local_spec(student, cfg.base_dir)
    chain = fingerprint({"student": student_id})
    summaries = []
    for phase in tc.phases:
        summary = run_phase(cfg, phase, start, chain, registry, progress=progress, console=console)
        summaries.append(summary)
        start, chain = summary["selected_path"], summary["fingerprint"]
    counts = {"phases": len(summaries),
              "trained_samples": {s["phase"]: s["samples"]["trained"] for s in summaries},
              "skipped": {s["phase"]: {r: v["count"] for r, v in s["skipped"].items()} for s in summaries},
              "steps": {s["phase"]: s["steps"] for s in summaries},
              "selected": {s["phase"]: s["selected"] for s in summaries}}
    manifest = run.finish(counts, extra={"phases": summaries}) if _is_main() else None
    _barrier()
    return manifest or run.manifest


def summary_table(manifest: dict[str, Any]) -> Any:
    """One row per phase: samples trained and skipped, steps, last loss, the selected checkpoint."""
    from rich.table import Table

    table = Table(title="train", title_justify="left")
    for column in ("phase", "trained", "skipped", "steps", "last loss", "selected"):
        table.add_column(column, justify="right" if column in ("trained", "steps", "last loss") else "left")
    for s in manifest.get("phases", []):
        skipped = "\n".join(f"{v['count']} {r}: {', '.join(v['ids'][:3])}{', ...' if v['count'] > 3 else ''}"
                            for r, v in s["skipped"].items()) or "-"
        last = s.get("last_loss")
        table.add_row(s["phase"], str(s["samples"]["trained"]), skipped, str(s["steps"]),
                      "-" if last is None else f"{last:.4f}",
                      f"{s['selected']} ({s['select_by']} {s['selected_score']:.4f})")
    return table
