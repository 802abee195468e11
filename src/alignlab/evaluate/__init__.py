"""Evaluation: knowledge MCQ by log-likelihood, judged prompts, pairwise win rate, forgetting,
and standard benchmarks through lm-evaluation-harness. `alignlab eval` runs them per model.

This package imports nothing at import time: the config loader imports `alignlab.evaluate.config`.
Training's checkpoint metrics are `alignlab.evaluate.selection.checkpoint_metrics`.
"""
