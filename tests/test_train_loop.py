"""The training loop, checkpoints and the `train` stage on a tiny random model.

Covers: resume after a crash repeats the uninterrupted losses (full and LoRA), LoRA trains only
adapters and saves a merged model, checkpoint selection and pruning, the stage's selected
checkpoints and skipping, and a 2-process run under `accelerate launch` matching 1 process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alignlab.records import Sample
from alignlab.store import StageDir, read_json, write_jsonl
from alignlab.train.batching import LazyBatches, token_budget_batches
from alignlab.train.checkpoint import (
    MARKER, complete_checkpoints, load_trainable_model, lower_is_better, step_of, trainer_state,
)
from alignlab.train.config import LoraSettings
from alignlab.train.data import collate, prepare_samples, sft_loss
from alignlab.train.loop import LoopSettings, train_loop

WORDS = "the cat sat on a mat while rain fell over quiet hills and rivers ran north".split()


def conversations(n: int, tag: str, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 16)))
        out.append(Sample(id=f"{tag}{i}", unmask=i % 5 == 4,
                          messages=[{"role": "user", "content": f"{tag} question {i}?"},
                                    {"role": "assistant", "content": answer}]))
    return out


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    from conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("student") / "model", init_range=0.02)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def losses(path: Path) -> list[float]:
    return [r["loss"] for r in records(path)]


# ------------------------------------------------------------------ the loop itself


def run_loop(student: Path, out: Path, method: str, *, loss_fn=sft_loss, score=None,
             save_every: int = 2, keep: int = 2, epochs: int = 2, precision: str = "fp32"):
    from alignlab.llm.hf import load_tokenizer

    tokenizer = load_tokenizer(str(student))
    train = prepare_samples(tokenizer, conversations(12, "q", seed=1), 96).samples
    lengths = [len(s.input_ids) for s in train]

    def batches(epoch):
        return LazyBatches(token_budget_batches(lengths, 160, seed=3, epoch=epoch),
                           lambda idx: collate([train[i] for i in idx], tokenizer.pad_token_id))

    # LoRA with dropout: resuming must restore the RNG states too, not only the weights.
    lora = LoraSettings(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"])
    settings = LoopSettings(epochs=epochs, micro_batches_per_step=2, lr=1e-2 if method == "lora" else 1e-3,
                            warmup=0.2, weight_decay=0.01, save_every=save_every, keep_checkpoints=keep,
                            seed=5, fingerprint=f"test-{method}-{precision}", precision=precision)
    return train_loop(lambda resume: load_trainable_model(str(student), method, lora, resume),
                      tokenizer, batches, loss_fn, settings, out, score=score, progress=False)


@pytest.fixture(scope="module")
def uninterrupted(student, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for method in ("full", "lora"):
        out[method] = tmp_path_factory.mktemp(f"straight-{method}")
        assert run_loop(student, out[method], method).finished
    return out


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_after_a_crash_repeats_the_uninterrupted_losses(student, uninterrupted, tmp_path, method):
    calls = 0

    def crashing_loss(model, batch):
        nonlocal calls
        calls += 1
        if calls == 6:  # mid-step 3, after the checkpoint of step 2
            raise RuntimeError("simulated crash")
        return sft_loss(model, batch)

    with pytest.raises(RuntimeError, match="simulated crash"):
        run_loop(student, tmp_path, method, loss_fn=crashing_loss)
    crashed_at = len(losses(tmp_path / "metrics.jsonl"))
    result = run_loop(student, tmp_path, method)
    assert result.finished and result.resumed_from is not None
    assert 0 < step_of(result.resumed_from) <= crashed_at

    reference = records(uninterrupted[method] / "metrics.jsonl")
    resumed = records(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    for a, b in zip(reference, resumed):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5), f"step {a['step']}"
        assert b["lr"] == pytest.approx(a["lr"], abs=1e-12)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    # The data position is exact: every step saw the same number of tokens.
    assert [r["tokens"] for r in resumed] == [r["tokens"] for r in reference]


def test_a_finished_run_drops_its_training_state_and_stays_finished(student, uninterrupted, tmp_path):
    kept = complete_checkpoints(uninterrupted["full"])
    assert kept and all((c / "model.safetensors").exists() for c in kept)
    assert not any((c / "training_state").exists() for c in kept)  # 2x the weights under AdamW
    # Run again on the finished directory: nothing is trained, nothing needs the dropped state.
    again = tmp_path / "again"
    shutil.copytree(uninterrupted["full"], again)
    result = run_loop(student, again, "full")
    assert result.finished and result.resumed_from == kept[-1].name
    assert losses(again / "metrics.jsonl") == losses(uninterrupted["full"] / "metrics.jsonl")


def test_one_process_runs_bf16_then_fp32(student, uninterrupted, tmp_path):
    # `alignlab run` trains in bf16 and may align in fp32 in the same process.
    assert run_loop(student, tmp_path / "bf16", "full", epochs=1, precision="bf16").finished
    again = run_loop(student, tmp_path / "fp32", "full")
    assert again.finished
    assert losses(tmp_path / "fp32" / "metrics.jsonl") == pytest.approx(
        losses(uninterrupted["full"] / "metrics.jsonl"), abs=1e-5)  # fp32 again, not bf16 left over


def test_full_and_lora_change_the_weights_and_lora_trains_only_adapters(student, uninterrupted):
    from transformers import AutoModelForCausalLM

    from alignlab.train.checkpoint import is_lora

    base = AutoModelForCausalLM.from_pretrained(student).state_dict()
    lora_model = load_trainable_model(str(student), "lora", LoraSettings(r=4, target_modules=["q_proj"]), None)
    assert is_lora(lora_model)
    trainable = [n for n, p in lora_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)

    for method in ("full", "lora"):
        last = complete_checkpoints(uninterrupted[method])[-1]
        trained = AutoModelForCausalLM.from_pretrained(last).state_dict()  # a plain model directory
        assert set(trained) == set(base)
        changed = {k for k in base if not torch.equal(base[k], trained[k])}
        q = "model.layers.0.self_attn.q_proj.weight"
        assert q in changed
        if method == "lora":
            assert (last / "adapter" / "adapter_config.json").exists()
            # Only the targeted projections moved; the merged model carries their update.
            assert changed == {k for k in base if k.endswith(("q_proj.weight", "v_proj.weight"))}
        else:
            assert "model.embed_tokens.weight" in changed


def test_checkpoints_fall_every_save_every_steps_and_after_the_last_not_at_epoch_ends(student, tmp_path):
    scored = []

    def record(path: Path) -> float:
        scored.append(step_of(path))
        return 0.0

    result = run_loop(student, tmp_path, "full", score=record, save_every=4, keep=10, epochs=3)
    per_epoch = result.total_steps // 3
    assert per_epoch % 4 and result.finished  # some epoch ends are not multiples of 4
    assert scored == sorted({*range(4, result.total_steps + 1, 4), result.total_steps})


def test_checkpoints_are_scored_pruned_and_the_best_selected(student, tmp_path):
    from alignlab.train.checkpoint import select_checkpoint

    @lower_is_better
    def distance_from_step_2(path: Path) -> float:
        return abs(step_of(path) - 2)

    result = run_loop(student, tmp_path, "full", score=distance_from_step_2, save_every=1, keep=1)
    names = [p.name for p in complete_checkpoints(tmp_path)]
    last = f"checkpoint-{result.step}"
    assert result.step > 2
    # keep=1, but neither the best-scored nor the last checkpoint is ever deleted.
    assert names == ["checkpoint-2", last]
    assert set(read_json(tmp_path / "scores.json")) == {f"checkpoint-{i}" for i in range(1, result.step + 1)}
    chosen = select_checkpoint(tmp_path, distance_from_step_2)
    assert chosen["selected"] == "checkpoint-2" and chosen["selected_score"] == 0
    selected = tmp_path / "selected"
    best_weights = (tmp_path / "checkpoint-2" / "model.safetensors").read_bytes()
    assert (selected / "model.safetensors").read_bytes() == best_weights
    assert not (selected / MARKER).exists() and (selected / "tokenizer.json").exists()


# ------------------------------------------------------------------ the stage


TRAIN_YAML = """\
name: {name}
models: {{student: {student}}}
train:
  max_seq_len: 64
  batch_tokens: 128
  effective_batch: 256
  lr: 1.0e-3
  save_every: 2
  keep_checkpoints: 2
  tensorboard: false
  phases:
    - {{name: knowledge, epochs: 2}}
    - {{name: skills, epochs: 1, lr: 5.0e-4}}
"""


def make_workspace(root: Path, name: str, student: Path) -> Path:
    mix = StageDir(root / "runs" / name / "mix", "mix")
    mix.path.mkdir(parents=True)
    too_long = Sample(id="k-too-long", messages=[{"role": "user", "content": "long " * 80},
                                                 {"role": "assistant", "content": "ok"}])
    write_jsonl(mix.file("knowledge.jsonl"), [*conversations(10, "k", seed=2), too_long])
    write_jsonl(mix.file("skills.jsonl"), conversations(6, "s", seed=3))
    mix.write_manifest(fingerprint="mix-1", inputs={}, config={}, counts={}, started=time.time())
    path = root / "alignlab.yaml"
    path.write_text(TRAIN_YAML.format(name=name, student=student))
    return path


@pytest.fixture(scope="module")
def one_process(student, tmp_path_factory):
    from alignlab.config import load_config
    from alignlab.train.phases import train_stage

    root = tmp_path_factory.mktemp("ws1")
    cfg = load_config(make_workspace(root, "one", student))
    return cfg, train_stage(cfg, progress=False)


def test_stage_selects_a_checkpoint_per_phase_and_reports_skipped_samples(one_process):
    from transformers import AutoModelForCausalLM

    from alignlab.train.phases import selected_checkpoint, trained_model

    cfg, manifest = one_process
    knowledge, skills = manifest["phases"]
    assert knowledge["skipped"]["too_long"] == {"count": 1, "ids": ["k-too-long"]}
    assert manifest["counts"]["skipped"]["knowledge"] == {"too_long": 1}
    assert "k-too-long" in (selected_checkpoint(cfg, "knowledge").parent / "skipped.jsonl").read_text()
    for phase in (knowledge, skills):
        assert phase["selected"] in phase["scores"]
        best = min(phase["scores"].values())  # `loss`: lower is better
        assert phase["selected_score"] == best
    # Phase 2 starts from phase 1's selected checkpoint and keeps the phase's lr override.
    assert skills["start"] == str(selected_checkpoint(cfg, "knowledge"))
    assert skills["overrides"] == {"lr": 5e-4}
    model = AutoModelForCausalLM.from_pretrained(trained_model(cfg))
    assert model.config.num_hidden_layers == 2


def test_stage_is_skipped_when_unchanged_and_phases_are_reused(one_process):
    from alignlab.train.phases import train_stage

    cfg, manifest = one_process
    metrics = cfg.run_dir.path / "train" / "knowledge" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    assert train_stage(cfg, progress=False)["timings"] == manifest["timings"]
    # Without the stage manifest the phases' own fingerprints still match: nothing retrains.
    cfg.run_dir.stage("train").invalidate()
    again = train_stage(cfg, progress=False)
    assert [p["reused"] for p in again["phases"]] == [True, True]
    assert metrics.stat().st_mtime_ns == before


def test_two_processes_match_one_process(one_process, student, tmp_path):
    cfg, manifest = one_process
    config = make_workspace(tmp_path, "two", student)
    # `accelerate launch --cpu` starts more than one process only through mpirun; torchrun's
    # launcher (--multi_gpu) with ACCELERATE_USE_CPU gives 2 CPU processes over gloo.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "alignlab.train", "-c", str(config)],
        capture_output=True, text=True, env=env, timeout=600)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    two = tmp_path / "runs" / "two" / "train"
    assert trainer_state(complete_checkpoints(two / "knowledge")[-1])["world_size"] == 2
    for phase in ("knowledge", "skills"):
        one_run = records(cfg.run_dir.path / "train" / phase / "metrics.jsonl")
        two_run = records(two / phase / "metrics.jsonl")
        assert [r["tokens"] for r in two_run] == [r["tokens"] for r in one_run]
        assert [r["loss"] for r in two_run] == pytest.approx([r["loss"] for r in one_run], abs=1e-4)
        # Adam hides the gradient's scale from the losses; the logged norm (before clipping) does not.
        assert [r["grad_norm"] for r in two_run] == pytest.approx([r["grad_norm"] for r in one_run], rel=1e-3)
    assert read_json(two / "knowledge" / "phase.json")["selected"] == manifest["phases"][0]["selected"]


def test_unknown_phase_or_metric_is_a_clear_error(one_process):
    from alignlab.config import load_config
    from alignlab.errors import AlignlabError
    from alignlab.train.phases import train_stage

    cfg, _ = one_process
    path = cfg.base_dir / "other.yaml"
    path.write_text(f"name: one\nmodels: {{student: {cfg.models.student}}}\n"
                    "train: {phases: [{name: knowledge, select_by: knowledge_mcq}]}\n")
    with pytest.raises(AlignlabError, match=r"select_by \['knowledge_mcq'\].*available: loss"):
        train_stage(load_config(path), metrics={}, progress=False)
    path.write_text(f"name: one\nmodels: {{student: {cfg.models.student}}}\n"
                    "train: {max_seq_len: 64, batch_tokens: 128, phases: [{name: nope}]}\n")
    with pytest.raises(AlignlabError, match=r"nope.jsonl does not exist.*\['knowledge', 'skills'\]"):
        train_stage(load_config(path), metrics={}, progress=False)


def test_forced_training_forgets_the_finished_stage_before_it_starts(one_process, tmp_path, monkeypatch):
    """`--force` drops the stage manifest at the start (as changed inputs do) and every phase's
    state: a forced run that crashes leaves train "not finished", never the old checkpoints."""
    from alignlab.config import load_config
    from alignlab.errors import AlignlabError
    from alignlab.stage import finished_stage
    from alignlab.train import phases

    cfg, _ = one_process
    shutil.copytree(cfg.base_dir, tmp_path / "ws")
    copy = load_config(tmp_path / "ws" / "alignlab.yaml")
    # finished (other tests drop the fixture's stage manifest: its phases are then reused)
    done = phases.train_stage(copy, progress=False)
    assert finished_stage(copy, "train").manifest() == done

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-phase")

    monkeypatch.setattr(phases, "run_phase", crash)
    with pytest.raises(RuntimeError, match="killed mid-phase"):
        phases.train_stage(copy, force=True, progress=False)
    with pytest.raises(AlignlabError, match="stage 'train' has not finished"):
        finished_stage(copy, "train")
    assert not any(phases.phase_dir(copy, p.name).exists() for p in copy.train.phases)
