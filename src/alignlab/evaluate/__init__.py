"""Evaluation: knowledge MCQ by log-likelihood, judged prompts, pairwise win rate, forgetting,
and standard benchmarks through lm-evaluation-harness. `alignlab eval` runs them per model."""

from __future__ import annotations

from typing import Any


def checkpoint_metrics(cfg: Any) -> dict[str, Any]:
    """Checkpoint metrics for training's `select_by`: `knowledge_mcq` and `skill_judge`.

    Imported lazily: `alignlab.config` imports this package for its config section."""
    from alignlab.evaluate.selection import checkpoint_metrics as build

    return build(cfg)
