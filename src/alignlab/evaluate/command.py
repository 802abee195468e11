"""`alignlab eval`: evaluate each model, export the MCQ sets for lm-eval, compare two models,
and print one summary; the CLI only parses options and calls `run_eval`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from alignlab.config import Config
from alignlab.errors import ConfigError
from alignlab.evaluate.forgetting import forgetting_rows, forgetting_table
from alignlab.evaluate.lm_eval import DEFAULT_TASK, export_lm_eval_task
from alignlab.evaluate.mcq import general_mcq
from alignlab.evaluate.stage import EvalOptions, compare_models, evaluate_model, knowledge_items, model_label
from alignlab.evaluate.summary import comparison_table, results_table


def export_tasks(cfg: Config, folder: Path, options: EvalOptions) -> list[Path]:
    """The knowledge MCQ as task `alignlab_mcq` and the general set as `alignlab_general_mcq`."""
    written = []
    for task, items in ((DEFAULT_TASK, knowledge_items(cfg, options.mcq_files)),
                        ("alignlab_general_mcq", general_mcq(cfg.eval.general_mcq, cfg.base_dir))):
        if items:
            written.append(export_lm_eval_task(items, folder, task, cfg.eval.formulation))
    if not written:
        raise ConfigError("no MCQ items to export: no heldout_mcq.jsonl under the taxonomy, "
                          "no eval.mcq_files and general_mcq disabled")
    return written


def run_eval(cfg: Config, specs: Sequence[str], labels: Sequence[str] = (),
             options: EvalOptions = EvalOptions(), compare: tuple[str, str] | None = None,
             export_dir: Path | None = None, forgetting: bool = False, force: bool = False,
             console: Console | None = None) -> dict[str, Any]:
    """Everything `alignlab eval` does; returns {"results": {label: ...}, "comparison": ...}."""
    console = console or Console()
    if not specs and not compare and not export_dir:
        raise ConfigError("nothing to do: give --model SPEC (repeatable), --compare A B or "
                          "--export-lm-eval DIR; or -c alignlab.yaml alone for the pipeline's eval stage")
    if labels and len(labels) != len(specs):
        raise ConfigError(f"--label given {len(labels)} times for {len(specs)} --model; give one "
                          f"label per model or none")
    labels = list(labels) or [model_label(s) for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two models get the same label ({', '.join(labels)}); name them with --label")

    if export_dir is not None:
        for path in export_tasks(cfg, export_dir, options):
            console.print(f"lm-eval task written: {path}", highlight=False)
        console.print(f"[dim]run it with: lm_eval --model hf --model_args pretrained=<model dir> "
                      f"--include_path {export_dir.resolve()} --tasks {DEFAULT_TASK} "
                      f"--apply_chat_template[/]", highlight=False)
        if options.lm_eval_tasks and options.lm_eval_include is None:
            options = replace(options, lm_eval_include=str(export_dir))

    results = {label: evaluate_model(cfg, spec, label, options, force=force)
               for spec, label in zip(specs, labels)}
    if results:
        console.print(results_table(results))
    if forgetting and len(results) > 1:
        first, *later = labels
        for label in later:
            console.print(forgetting_table(forgetting_rows(results[first], results[label]), first, label))
    comparison = None
    if compare:
        comparison = compare_models(cfg, compare[0], compare[1])
        console.print(comparison_table(comparison))
    if results or comparison:
        console.print(f"[dim]results under {cfg.run_dir.path / 'eval'}[/]", highlight=False)
    return {"results": results, "comparison": comparison}
