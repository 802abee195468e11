"""What each stage prints when it ends (or is skipped): one summary per entry of the stage table
(`pipeline.STAGES`), read from the stage's manifest so a skipped stage says what it said when it ran.
Each imports its stage's own printing lazily, so the table loads without the stages' dependencies.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from alignlab.config import Config
from alignlab.stage import finished_stage


def say_validate(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.taxonomy.validate import plural

    c = manifest["counts"]
    warnings = f", {plural(c['warnings'], 'warning')}" if c.get("warnings") else ""
    console.print(f"taxonomy: {plural(c['leaves'], 'leaf', 'leaves')} valid ({c['kinds']}){warnings}",
                  highlight=False)


def say_generate(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.sdg.stage import print_summary

    print_summary(console, cfg, manifest)


def say_curate(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.curate.funnel import empty_curate_error, funnel_tables

    from alignlab.sdg.stage import leaf_subset_note

    for table in funnel_tables(manifest["counts"]):
        console.print(table)
    # curate ran on generate's outputs, so generate has finished: its manifest says on which leaves
    if note := leaf_subset_note(finished_stage(cfg, "generate").manifest()):
        console.print(f"[yellow]{note}[/]", highlight=False)
    # Nothing to train on is the end of the run: mix and every stage after it need samples.
    if error := empty_curate_error(manifest["counts"]):
        raise error


def say_mix(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.mix import instructlab
    from alignlab.mix.stage import summary_tables

    for table in summary_tables(manifest["counts"]):
        console.print(table)
    for warning in manifest["counts"]["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if files := manifest["counts"].get("instructlab_files"):
        console.print(f"for InstructLab's training: {cfg.run_dir.path / 'mix' / instructlab.FOLDER}/ "
                      f"({', '.join(files)})", highlight=False)


def say_train(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.train.phases import summary_table

    console.print(summary_table(manifest))


def say_pairs(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.pairs.stage import print_summary

    print_summary(console, cfg, manifest)


def say_align(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.train.align import print_summary

    print_summary(console, cfg, manifest)


def say_evaluation(console: Console, cfg: Config, summary: dict[str, Any]) -> None:
    from alignlab.evaluate.progression import print_evaluation

    print_evaluation(console, cfg, summary)


def say_report(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    console.print(f"report: {manifest['counts']['report']}", highlight=False)
