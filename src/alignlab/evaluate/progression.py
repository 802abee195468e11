"""The student's progression through the run: the same evaluations of the untrained student,
each training phase's selected checkpoint and the aligned model, and what changed between them.

- `evaluate_sft` (the pipeline's `eval` stage): base, then every phase; a forgetting table for
  each consecutive pair (base -> knowledge shows what was learned, knowledge -> skills what
  the skills phase kept of it), plus the pairwise win rate of the SFT model over the base.
- `evaluate_aligned` (`eval-aligned`): base -> SFT -> aligned, and the win rate of the aligned
  model over the SFT model.

Each model's evaluation is cached by its own manifest (`eval/<label>/`), and every request by
the request cache, so running these again costs seconds. The summaries are written to
`eval/sft.json` and `eval/aligned.json` for the report.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from alignlab.artefacts import EVAL_ALIGNED, EVAL_SFT
from alignlab.config import Config
from alignlab.evaluate.forgetting import forgetting_rows, forgetting_table
from alignlab.evaluate.stage import compare_models, evaluate_model
from alignlab.evaluate.summary import comparison_table, results_table
from alignlab.store import write_json

BASE = "base"


def _progression(cfg: Config, models: list[tuple[str, str]], force: bool) -> dict[str, Any]:
    results = {label: evaluate_model(cfg, spec, label, force=force) for label, spec in models}
    forgetting = {f"{a}->{b}": forgetting_rows(results[a], results[b])
                  for (a, _), (b, _) in zip(models, models[1:])}
    return {"models": dict(models), "results": results, "forgetting": forgetting}


def _comparison(cfg: Config, a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any] | None:
    if not cfg.eval.judged.enabled:
        return None
    result = compare_models(cfg, a[1], b[1], a[0], b[0])
    return {k: v for k, v in result.items() if k != "rows"}


def evaluate_sft(cfg: Config, force: bool = False) -> dict[str, Any]:
    from alignlab.train.phases import selected_checkpoint

    models = [(BASE, cfg.models.student)] + [(p.name, str(selected_checkpoint(cfg, p.name)))
                                             for p in cfg.train.phases]
    summary = _progression(cfg, models, force)
    summary["comparisons"] = [c for c in [_comparison(cfg, models[-1], models[0])] if c]
    write_json(cfg.run_dir.stage("eval").file(EVAL_SFT), summary)
    return summary


def evaluate_aligned(cfg: Config, force: bool = False) -> dict[str, Any]:
    from alignlab.train.align import aligned_model
    from alignlab.train.phases import trained_model

    sft = (cfg.train.phases[-1].name, str(trained_model(cfg)))
    aligned = ("aligned", str(aligned_model(cfg)))
    models = [(BASE, cfg.models.student), sft, aligned]
    summary = _progression(cfg, models, force)
    summary["comparisons"] = [c for c in [_comparison(cfg, aligned, sft)] if c]
    write_json(cfg.run_dir.stage("eval").file(EVAL_ALIGNED), summary)
    return summary


def print_evaluation(console: Console, cfg: Config, summary: dict[str, Any]) -> None:
    console.print(results_table(summary["results"]))
    for key, rows in summary["forgetting"].items():
        before, after = key.split("->")
        console.print(forgetting_table(rows, before, after))
    for comparison in summary.get("comparisons", []):
        console.print(comparison_table(comparison))
