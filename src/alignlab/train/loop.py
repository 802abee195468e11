"""The training loop, written out: the same code on one CPU and under `accelerate launch`
(DDP, FSDP, DeepSpeed), for supervised and for preference training.

    result = train_loop(load_model, tokenizer, batches, loss_fn, settings, out_dir)

- `load_model(resume)` builds the model to train (from checkpoint `resume` when continuing).
- `batches(epoch)` is the epoch's sequence of micro-batches, the same on every process and
  for any number of processes: dicts of tensors plus `units` (what the loss is summed over:
  trained tokens for SFT, pairs for preference losses) and optionally `tokens` (padded size)
  and `real_tokens` (non-padding), which are logged.
- `loss_fn(model, batch) -> (loss, metrics)` returns the loss *summed* over the batch's units
  and extra metrics also summed over them; they are logged as means per unit.

An optimizer step takes `micro_batches_per_step` consecutive micro-batches, dealt out over the
processes (process r takes micro-batches r, r+W, ...). Each micro-batch's summed loss is divided
by the units of the whole step on all processes (counted before the forward passes) and
multiplied by W, because DDP and FSDP average gradients over processes. So the gradient is the
mean over every unit of the step whatever the split: 1 process accumulating k micro-batches
equals k processes with one each. A process left without a micro-batch at the end of an epoch
repeats one with weight 0, so that every process takes part in the gradient exchange.

Per optimizer step: AdamW, warm-up then cosine decay, gradient clipping, one line in
`metrics.jsonl` (and TensorBoard when installed and enabled), a progress bar with loss,
tokens/s and ETA. Checkpoints every `save_every` steps and after the last (see checkpoint.py),
not at every epoch's end: on small data an epoch is a few steps, and each checkpoint costs a
write of the weights and optimizer state and a scoring pass. A re-run resumes from the last
complete checkpoint, mid-epoch if need be, skipping the consumed micro-batches.
Tested on CPU with one process and with DDP (gloo); FSDP goes through the same `prepare`,
`no_sync` and `save_state`. DeepSpeed is reached through accelerate but not exercised here:
its engine keeps its own gradient-accumulation count, which must be 1 in its config (this loop
accumulates), and it clips gradients itself.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from alignlab.progress import progress_bar
from alignlab.store import read_json, write_json, write_jsonl
from alignlab.train.checkpoint import (
    CheckpointMetric, is_lower_better, keep_weights_out_of_state, latest_checkpoint,
    load_training_state, prune_checkpoints, release_training_states, remove_stale,
    save_checkpoint, step_of, trainer_state,
)

LossFn = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, float]]]
EpochBatches = Callable[[int], Sequence[dict[str, Any]]]
ModelLoader = Callable[[Path | None], Any]


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    micro_batches_per_step: int  # over all processes together
    lr: float
    warmup: float = 0.0  # fraction of the optimizer steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0: no clipping
    save_every: int = 50
    keep_checkpoints: int = 3
    seed: int = 0
    fingerprint: str = ""  # checkpoints of a run with another fingerprint are not resumed
    tensorboard: bool = False
    precision: str = "fp32"  # "bf16": matmuls in bfloat16 under autocast, weights and optimizer in fp32

    @classmethod
    def of(cls, hp: Any, **run: Any) -> LoopSettings:
        """The settings a config section gives (train's resolved phase, or align): every field
        the section has, by name, plus this run's own (`epochs`, `fingerprint`, ...)."""
        shared = {f.name: getattr(hp, f.name) for f in fields(cls) if hasattr(hp, f.name)}
        return cls(**{**shared, **run})


@dataclass
class LoopResult:
    step: int
    total_steps: int
    finished: bool
    resumed_from: str | None = None
    removed_stale: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)  # the last step's metrics


class MetricsLog:
    """`metrics.jsonl` (rewritten from the checkpoint's history on resume, so it never holds
    steps of a run that crashed after its last checkpoint) and TensorBoard."""

    def __init__(self, out_dir: Path, history: list[dict[str, Any]], enabled: bool, tensorboard: bool):
        self.path = out_dir / "metrics.jsonl"
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        write_jsonl(self.path, history)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            # purge_step drops events a crashed run logged after its last checkpoint.
            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=len(history) + 1)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def process_state() -> Any:
    """accelerate's view of this process (rank, world size, barrier), set up the way
    `Accelerator()` sets it up (honouring ACCELERATE_USE_CPU), so that asking early does not
    pin the process to a non-distributed state."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    # Decay the matrices only: decaying norms' gains and biases pulls them toward zero.
    params = [p for p in model.parameters() if p.requires_grad]
    if not weight_decay:
        return [{"params": params, "weight_decay": 0.0}]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _accelerator(mixed_precision: str) -> Any:
    """An Accelerator for this run's precision.

    accelerate keeps its state process-wide and refuses a second precision, but one process
    can run stages with different precisions (`alignlab run`: training in bf16, then
    alignment in fp32), so the precision part of that state is dropped between runs. The
    process-group part is kept: it belongs to the launcher, not to the run.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision)


def train_loop(load_model: ModelLoader, tokenizer: Any, batches: EpochBatches, loss_fn: LossFn,
               settings: LoopSettings, out_dir: Path, *, score: CheckpointMetric | None = None,
               stop_at_step: int | None = None, progress: bool = True,
               description: str = "train") -> LoopResult:
    """Train for `settings.epochs`, checkpointing into `out_dir`; see the module docstring.

    `score` rates each checkpoint when it is saved (on the main process), for pruning and
    selection. `stop_at_step` stops right after that optimizer step without saving, as a
    crash would (for tests and benchmarks).
    """
    import torch
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    accelerator = _accelerator("bf16" if settings.precision == "bf16" else "no")
    main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_stale(out_dir, settings.fingerprint) if main else []
    accelerator.wait_for_everyone()
    resume = latest_checkpoint(out_dir, settings.fingerprint)

    set_seed(settings.seed)
    model = load_model(resume)
    per_step = settings.micro_batches_per_step
    steps_per_epoch = [math.ceil(len(batches(e)) / per_step) for e in range(settings.epochs)]
    total = sum(steps_per_epoch)
    # The fused kernel updates every parameter in one pass: on the CPU a step of the 135M
    # student took 0.59 s tensor by tensor and 0.10 s fused (benchmarks/optimizer_step.py).
    fused = accelerator.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(_param_groups(model, settings.weight_decay), lr=settings.lr,
                                  fused=fused or None)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(settings.warmup * total), total)
    # The scheduler is not prepared: accelerate's wrapper would step it once per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    keep_weights_out_of_state(accelerator)

    epoch, batch_index, step, history = 0, 0, 0, []
    if resume:
        state = trainer_state(resume)
        if not state.get("finished"):  # a finished run has nothing left to continue
            load_training_state(accelerator, resume)
        epoch, batch_index, step, history = (state["epoch"], state["batch_index"], state["step"],
                                             state["metrics"])
    scores_path = out_dir / "scores.json"
    scores = {name: s for name, s in (read_json(scores_path) if scores_path.exists() else {}).items()
              if step_of(name) <= step} if resume else {}
    log = MetricsLog(out_dir, history, main, settings.tensorboard)
    result = LoopResult(step=step, total_steps=total, finished=step >= total,
                        resumed_from=resume.name if resume else None, removed_stale=removed,
                        scores=scores, last=history[-1] if history else {})

    def run_step(epoch_batches: Sequence[dict[str, Any]], group: range) -> dict[str, float]:
        started = time.perf_counter()
        per_process = math.ceil(len(group) / world)
        mine = [epoch_batches[i] for i in group[rank::world]]  # collate only this process's share
        weights = [1.0] * len(mine) + [0.0] * (per_process - len(mine))
        mine += [epoch_batches[group[0]]] * (per_process - len(mine))
        local = torch.tensor([sum(float(b.get(k, 0)) * w for b, w in zip(mine, weights))
                              for k in ("units", "tokens", "real_tokens")],
                             dtype=torch.float64, device=accelerator.device)
        units, tokens, real = accelerator.reduce(local, "sum").tolist()
        if units <= 0:
            raise ValueError("an optimizer step has no units to train on (no trained tokens)")
        sums: dict[str, float] = {}
        for j, (batch, weight) in enumerate(zip(mine, weights)):
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            # Gradients are exchanged once per step, on the last micro-batch.
            last = j == per_process - 1
            accelerator.sync_gradients = last
            with nullcontext() if last else accelerator.no_sync(model):
                loss, extra = loss_fn(model, batch)
                accelerator.backward(loss * (weight * world / units))
            for key, value in {"loss": loss.detach(), **extra}.items():
                sums[key] = sums.get(key, 0.0) + float(value) * weight
        keys = sorted(sums)
        totals = accelerator.reduce(torch.tensor([sums[k] for k in keys], dtype=torch.float64,
                                                 device=accelerator.device), "sum").tolist()
        max_norm = settings.max_grad_norm or float("inf")
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - started
        return {**{k: v / units for k, v in zip(keys, totals)}, "lr": lr,
                "grad_norm": None if grad_norm is None else float(grad_norm),
                "tokens": int(tokens), "real_tokens": int(real),
                "trained_tokens": int(units), "padding": 1 - real / tokens if tokens else 0.0,
                "tokens_per_s": real / seconds, "seconds": round(seconds, 4)}

    with ExitStack() as stack:
        bar = stack.enter_context(progress_bar()) if progress and main else None
        task = bar.add_task(description, total=total, completed=step, status="") if bar else None
        while epoch < settings.epochs and not result.finished:
            epoch_batches = batches(epoch)
            n = len(epoch_batches)
            while batch_index < n:
                group = range(batch_index, min(batch_index + per_step, n))
                record = run_step(epoch_batches, group)
                batch_index += len(group)
                step += 1
                record = {"step": step, "epoch": round(epoch + batch_index / n, 4), **record}
                history.append(record)
                log.write(record)
                end_of_epoch = batch_index >= n
                position = (epoch + 1, 0) if end_of_epoch else (epoch, batch_index)
                if step % settings.save_every == 0 or step >= total:
                    state = {"fingerprint": settings.fingerprint, "step": step, "epoch": position[0],
                             "batch_index": position[1], "total_steps": total,
                             "finished": step >= total, "world_size": world, "metrics": history}
                    path = save_checkpoint(accelerator, model, tokenizer, out_dir, step, state)
                    if main:
                        if score is not None:
                            scores[path.name] = float(score(path))
                            write_json(scores_path, scores)
                        prune_checkpoints(out_dir, settings.keep_checkpoints, scores,
                                          is_lower_better(score))
                    accelerator.wait_for_everyone()
                if bar:
                    bar.update(task, completed=step, status=f"loss {record['loss']:.4f} · "
                               f"{record['tokens_per_s']:,.0f} tok/s · epoch {record['epoch']:.2f}")
                result.step, result.last = step, record
                if stop_at_step is not None and step >= stop_at_step:
                    break
            else:
                epoch, batch_index = epoch + 1, 0
                continue
            break
    result.finished = step >= total
    if result.finished and main:
        release_training_states(out_dir)
    log.close()
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return result
