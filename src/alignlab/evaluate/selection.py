"""Metrics for choosing among training checkpoints: a function from a checkpoint folder to one
number, higher is better.

    pick = knowledge_mcq_metric(cfg)      # held-out MCQ accuracy (the headline metric)
    pick(Path("runs/demo/train/phase1/step-200"))

Each checkpoint is loaded on its own and released after scoring (rather than through the
process-wide backend pool, which would keep every checkpoint in memory); its requests go
through the request cache keyed by the checkpoint's weights, so scoring it again is free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alignlab.config import Config
from alignlab.errors import ConfigError
from alignlab.evaluate.judged import answer_prompts, judge_answers, judged_summary
from alignlab.evaluate.mcq import accuracy, score_mcq
from alignlab.evaluate.stage import reported_items, reported_prompts
from alignlab.llm.cache import CachedBackend
from alignlab.llm.types import Backend
from alignlab.models import StageModels


def _checkpoint_backend(cfg: Config, checkpoint: Path, cache) -> Backend:
    from alignlab.llm.local import LocalBackend

    local = LocalBackend.from_spec(str(Path(checkpoint).resolve()), cfg.backend)
    return CachedBackend(local, cache)


def knowledge_mcq_metric(cfg: Config) -> Callable[[Path], float]:
    """Accuracy of a checkpoint on the selection share of the held-out knowledge MCQ (taxonomy +
    eval.mcq_files): questions no reported result is computed on."""
    items = reported_items(cfg, part=0)
    if not items:
        raise ConfigError(f"no held-out MCQ to select checkpoints with: add heldout_mcq.jsonl to "
                          f"the knowledge leaves under {cfg.taxonomy_path} or list files in "
                          f"eval.mcq_files")
    models = StageModels(cfg)
    key = "acc_norm" if cfg.eval.length_normalise else "acc"

    def metric(checkpoint: Path) -> float:
        backend = _checkpoint_backend(cfg, checkpoint, models.cache)
        try:
            rows = score_mcq(backend, items, cfg.eval.formulation, description=f"MCQ {Path(checkpoint).name}")
        finally:
            backend.close()
        return float(accuracy(rows)[key] or 0.0)

    return metric


def skill_judge_metric(cfg: Config) -> Callable[[Path], float]:
    """Mean judged score of a checkpoint's answers to the held-out skill prompts."""
    prompts = reported_prompts(cfg, part=0)
    if not prompts:
        raise ConfigError(f"no skill leaves with seed examples under {cfg.taxonomy_path} to "
                          f"select checkpoints with")
    models = StageModels(cfg)
    settings = cfg.eval.judged

    def metric(checkpoint: Path) -> float:
        backend = _checkpoint_backend(cfg, checkpoint, models.cache)
        try:
            answers = answer_prompts(backend, prompts, settings.max_tokens, f"answering {Path(checkpoint).name}")
        finally:
            backend.close()
        rows = judge_answers(models.backend(cfg.judge), prompts, answers, settings)
        return float(judged_summary(rows)["overall"]["mean_score"] or 0.0)

    return metric


METRICS: dict[str, Callable[[Config], Callable[[Path], float]]] = {
    "knowledge_mcq": knowledge_mcq_metric, "skill_judge": skill_judge_metric}


def checkpoint_metrics(cfg: Config) -> dict[str, Callable[[Path], float]]:
    """Every metric by name. Those a training phase selects by are built now, so a missing
    question set is reported before training starts; the others only when first called."""
    used = {phase.select_by for phase in cfg.train.phases}
    out = {}
    for name, build in METRICS.items():
        out[name] = build(cfg) if name in used else _built_on_first_call(build, cfg)
    return out


def _built_on_first_call(build: Callable[[Config], Callable[[Path], float]],
                         cfg: Config) -> Callable[[Path], float]:
    built: list[Callable[[Path], float]] = []

    def metric(checkpoint: Path) -> float:
        if not built:
            built.append(build(cfg))
        return built[0](checkpoint)

    return metric
