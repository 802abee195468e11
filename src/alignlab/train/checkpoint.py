"""Checkpoints: written atomically, found again after a crash, pruned, selected.

A checkpoint `checkpoint-<step>/` is itself a Hugging Face model directory (safetensors and
tokenizer; for LoRA the merged model, so any later stage loads it as a plain model, with the
adapter beside it in `adapter/`), plus the training state: `training_state/` (optimizer,
scheduler and every process's RNG states, through `accelerate`'s save_state, so the same code
serves DDP, FSDP and DeepSpeed) and `trainer_state.json` (data position, global step, metrics
so far, and the fingerprint of the run it belongs to); the training state is deleted once the
run has finished, since only an unfinished run is resumed. It is built in `.checkpoint-<step>.tmp/`,
a `.complete` marker is written last, and the folder is renamed into place: a folder without
the marker is never resumed from or selected.

Checkpoint metrics: a `CheckpointMetric` scores a model directory (higher is better unless
marked with `lower_is_better`). Pruning keeps at most `keep` checkpoints but never deletes the
best-scored one or the last.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignlab.artefacts import SELECTED
from alignlab.errors import ConfigError
from alignlab.store import read_json, write_json, write_text

MARKER = ".complete"
TRAINER_STATE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")

CheckpointMetric = Callable[[Path], float]


def lower_is_better(metric: CheckpointMetric) -> CheckpointMetric:
    """Mark a metric whose smaller values are better (a loss)."""
    metric.lower_is_better = True  # type: ignore[attr-defined]
    return metric


def is_lower_better(metric: CheckpointMetric | None) -> bool:
    return bool(getattr(metric, "lower_is_better", False))


def best_of(scores: dict[str, float], lower: bool) -> str | None:
    """The best-scored checkpoint name; on a tie the later one."""
    if not scores:
        return None
    return max(scores, key=lambda name: (-scores[name] if lower else scores[name], step_of(name)))


# ---------------------------------------------------------------- finding checkpoints

def step_of(name: str | Path) -> int:
    m = _NAME.match(Path(name).name)
    return int(m.group(1)) if m else -1


def complete_checkpoints(out_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    if not out_dir.is_dir():
        return []
    found = [p for p in out_dir.iterdir() if _NAME.match(p.name) and (p / MARKER).exists()]
    return sorted(found, key=step_of)


def trainer_state(path: Path) -> dict[str, Any]:
    return read_json(path / TRAINER_STATE)


def latest_checkpoint(out_dir: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint of the run with this fingerprint."""
    mine = [p for p in complete_checkpoints(out_dir) if trainer_state(p).get("fingerprint") == fingerprint]
    return mine[-1] if mine else None


def remove_checkpoint(path: Path) -> None:
    # The marker goes first: a crash half-way leaves a folder that is plainly incomplete.
    (path / MARKER).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def remove_stale(out_dir: Path, fingerprint: str) -> list[str]:
    """Delete half-written checkpoints, and those of a run with other settings or data."""
    removed = []
    if not out_dir.is_dir():
        return removed
    for p in sorted(out_dir.iterdir()):
        half_written = p.name.startswith(".checkpoint-") and p.name.endswith(".tmp")
        other_run = p in complete_checkpoints(out_dir) and trainer_state(p).get("fingerprint") != fingerprint
        incomplete = bool(_NAME.match(p.name)) and not (p / MARKER).exists()
        if half_written or other_run or incomplete:
            remove_checkpoint(p)
            removed.append(p.name)
    return removed


# ---------------------------------------------------------------- saving and loading

def keep_weights_out_of_state(accelerator: Any) -> None:
    """The model's weights are saved as the checkpoint's model directory; the accelerate state
    holds the rest. (FSDP and DeepSpeed save their sharded model state themselves.)"""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return
    accelerator.register_save_state_pre_hook(lambda models, weights, out: weights.clear())
    accelerator.register_load_state_pre_hook(lambda models, inp: models.clear())


def is_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_checkpoint(accelerator: Any, model: Any, tokenizer: Any, out_dir: Path, step: int,
                    state: dict[str, Any]) -> Path:
    """Write `checkpoint-<step>/` atomically; every process must call it."""
    final = out_dir / f"checkpoint-{step}"
    tmp = out_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / "training_state"))
    state_dict = accelerator.get_state_dict(model)  # a collective under FSDP/DeepSpeed
    accelerator.wait_for_everyone()  # every process's RNG state is on disk before the rename
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if is_lora(unwrapped):
            unwrapped.save_pretrained(tmp / "adapter")
            # Merge a copy: merging in place and unmerging would not restore the exact weights.
            merged = copy.deepcopy(unwrapped).merge_and_unload()
            merged.save_pretrained(tmp)
            del merged
        else:
            unwrapped.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / TRAINER_STATE, state)
        write_text(tmp / MARKER, f"checkpoint-{step}\n")
        if final.exists():
            remove_checkpoint(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


def release_training_states(out_dir: Path) -> None:
    """Delete the optimizer, scheduler and RNG states of a finished run's checkpoints. A
    finished run is only selected from, never resumed (`train_loop` reads a finished
    checkpoint's position without its state), and under AdamW the state is twice the size of
    the weights: 1 GB per checkpoint of the embedded model."""
    for path in complete_checkpoints(out_dir):
        shutil.rmtree(path / "training_state", ignore_errors=True)


def load_training_state(accelerator: Any, path: Path) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG states; returns the trainer state (data position)."""
    accelerator.load_state(str(path / "training_state"))
    return trainer_state(path)


def load_trainable_model(start: str, method: str, lora: Any, resume: Path | None) -> Any:
    """The model to train, in train mode: `start` (a model spec) fully trainable, or frozen
    with LoRA adapters; from checkpoint `resume` when continuing a run."""
    from alignlab.llm.hf import load_causal_lm

    if method == "full":
        model = load_causal_lm(str(resume) if resume else start)
    else:
        from peft import LoraConfig, PeftModel, get_peft_model

        base = load_causal_lm(start)
        if resume:
            model = PeftModel.from_pretrained(base, resume / "adapter", is_trainable=True)
        else:
            config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
            try:
                model = get_peft_model(base, config)
            except ValueError as e:
                raise ConfigError(f"train.lora.target_modules {lora.target_modules}: {e}") from e
    model.train()
    return model


# ---------------------------------------------------------------- pruning and selection

def prune_checkpoints(out_dir: Path, keep: int, scores: dict[str, float], lower: bool) -> list[str]:
    """Keep the last checkpoint, the best-scored one, and the most recent others up to `keep`."""
    checkpoints = complete_checkpoints(out_dir)
    if len(checkpoints) <= keep:
        return []
    protected = {checkpoints[-1].name}
    best = best_of({n: s for n, s in scores.items() if (out_dir / n).is_dir()}, lower)
    if best:
        protected.add(best)
    others = [p.name for p in reversed(checkpoints) if p.name not in protected]
    kept = protected | set(others[:max(0, keep - len(protected))])
    removed = [p.name for p in checkpoints if p.name not in kept]
    for name in removed:
        remove_checkpoint(out_dir / name)
    return removed


def select_checkpoint(out_dir: Path, metric: CheckpointMetric) -> dict[str, Any]:
    """Score every finished checkpoint not scored yet (`scores.json` keeps the scores, so a
    re-run scores nothing twice) and copy the best of those still on disk to `selected/`, the
    plain model directory later stages load. Training phases and alignment both end here."""
    scores_path = out_dir / "scores.json"
    scores = read_json(scores_path) if scores_path.exists() else {}
    for path in complete_checkpoints(out_dir):
        if path.name not in scores:
            scores[path.name] = float(metric(path))
    write_json(scores_path, scores)
    lower = is_lower_better(metric)
    best = best_of({n: s for n, s in scores.items() if (out_dir / n / MARKER).exists()}, lower)
    if best is None:
        raise ConfigError(f"no finished checkpoint in {out_dir} to select from")
    copy_model_dir(out_dir / best, out_dir / SELECTED)
    return {"scores": scores, "lower_is_better": lower, "selected": best,
            "selected_score": scores[best], "selected_path": str(out_dir / SELECTED)}


def copy_model_dir(src: Path, dst: Path) -> Path:
    """A plain model directory at `dst` with the model files of checkpoint `src` (hard links
    where the filesystem allows, so no weights are duplicated on disk), swapped in atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in (TRAINER_STATE, MARKER):
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    old = dst.with_name(f".{dst.name}.old")
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst
