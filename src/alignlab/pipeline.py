"""`alignlab run`: every stage in order, each skipped when nothing it depends on changed.

    alignlab run -c alignlab.yaml [--until STAGE] [--from STAGE] [--force STAGE]

validate -> generate -> curate -> mix -> train -> eval -> pairs -> align -> eval-aligned -> report

Each stage fingerprints its settings, its inputs (the fingerprints of the stages before it) and
its own code, and writes a manifest last; a stage whose manifest matches is skipped, so a
change re-runs that stage and, through the fingerprints, everything after it — never anything
before. Killed at any moment (even `kill -9`), a re-run picks up where it stopped: finished
stages are skipped, teacher requests come from the request cache, training resumes from its
last checkpoint. `--force STAGE` re-runs that stage and every later one; `--from STAGE` does
the same, taking the stages before it as they are; `--until STAGE` stops after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from alignlab.config import Config
from alignlab.errors import AlignlabError, ConfigError
from alignlab.evaluate.progression import evaluate_aligned, evaluate_sft, print_evaluation
from alignlab.llm import release_local_backends

StageFn = Callable[[Config, bool, Console], dict[str, Any]]
SummaryFn = Callable[[Console, Config, dict[str, Any]], None]


def _validate(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.taxonomy import check_taxonomy
    from alignlab.taxonomy.checks import teacher_seed_budget
    from alignlab.taxonomy.errors import TaxonomyInvalid
    from alignlab.taxonomy.validate import count_kinds

    budget = teacher_seed_budget(cfg.models.teacher, cfg.base_dir)
    leaves, problems = check_taxonomy(cfg.taxonomy_path, max_seed_tokens=budget)
    if errors := [p for p in problems if p.is_error]:
        raise TaxonomyInvalid(errors)
    for warning in problems:  # InstructLab accepts the tree; what alignlab would improve is said once
        console.print(str(warning), markup=False, highlight=False, soft_wrap=True, style="yellow")
    return {"counts": {"leaves": len(leaves), "kinds": count_kinds(leaves), "warnings": len(problems)}}


def _generate(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.sdg.stage import generate

    return generate(cfg, force=force, console=console)


def _curate(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.curate.stage import curate

    return curate(cfg, force=force)


def _mix(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.mix.stage import mix

    return mix(cfg, force=force)


def _train(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.train.phases import train_stage

    release_local_backends()  # the teacher's memory goes to training
    return train_stage(cfg, force=force, console=console)


def _pairs(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.pairs.stage import pairs_stage

    return pairs_stage(cfg, force=force, console=console)


def _align(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.train.align import align_stage

    release_local_backends()
    return align_stage(cfg, force=force, console=console)


def _report(cfg: Config, force: bool, console: Console) -> dict[str, Any]:
    from alignlab.report import write_report

    path = write_report(cfg.run_dir.path)
    return {"counts": {"report": str(path)}}


# ------------------------------------------------------------------ summaries


def _say_validate(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    c = manifest["counts"]
    warnings = f", {c['warnings']} warnings" if c.get("warnings") else ""
    console.print(f"taxonomy: {c['leaves']} leaves valid ({c['kinds']}){warnings}", highlight=False)


def _say_generate(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.sdg.stage import print_summary

    print_summary(console, cfg, manifest)


def _say_curate(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.curate.funnel import empty_explanation, funnel_tables

    for table in funnel_tables(manifest["counts"]):
        console.print(table)
    if explanation := empty_explanation(manifest["counts"]):
        raise AlignlabError(explanation)


def _say_mix(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.mix.stage import summary_tables

    for table in summary_tables(manifest["counts"]):
        console.print(table)


def _say_train(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.train.phases import summary_table

    console.print(summary_table(manifest))


def _say_pairs(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.pairs.stage import print_summary

    print_summary(console, cfg, manifest)


def _say_align(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    from alignlab.train.align import print_summary

    print_summary(console, cfg, manifest)


def _say_report(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    console.print(f"report: {manifest['counts']['report']}", highlight=False)


@dataclass(frozen=True)
class Stage:
    name: str
    run: StageFn
    summary: SummaryFn
    what: str


STAGES: tuple[Stage, ...] = (
    Stage("validate", _validate, _say_validate, "check the taxonomy"),
    Stage("generate", _generate, _say_generate, "synthetic data from the teacher"),
    Stage("curate", _curate, _say_curate, "filter and select"),
    Stage("mix", _mix, _say_mix, "phase datasets with replay"),
    Stage("train", _train, _say_train, "supervised training in phases"),
    Stage("eval", lambda c, f, con: evaluate_sft(c, f), print_evaluation, "before/after each phase"),
    Stage("pairs", _pairs, _say_pairs, "preference pairs from a model ladder"),
    Stage("align", _align, _say_align, "contrastive post-training"),
    Stage("eval-aligned", lambda c, f, con: evaluate_aligned(c, f), print_evaluation, "base -> SFT -> aligned"),
    Stage("report", _report, _say_report, "one HTML page"),
)
NAMES = tuple(s.name for s in STAGES)


def _index(name: str | None, option: str) -> int | None:
    if name is None:
        return None
    if name not in NAMES:
        raise ConfigError(f"{option} {name!r}: no such stage (stages: {', '.join(NAMES)})")
    return NAMES.index(name)


def run_pipeline(cfg: Config, *, until: str | None = None, start: str | None = None,
                 force: tuple[str, ...] = (), console: Console | None = None) -> dict[str, Any]:
    """Run the stages in order; returns {stage: manifest} of the stages that were visited."""
    console = console or Console()
    last = _index(until, "--until")
    first = _index(start, "--from")
    forced_from = min([i for i in [first, *(_index(f, "--force") for f in force)] if i is not None], default=None)
    preflight(cfg)
    results: dict[str, Any] = {}
    walls: dict[str, tuple[float, bool]] = {}  # stage -> (seconds in this run, skipped)
    started_run = time.perf_counter()
    for i, stage in enumerate(STAGES):
        if last is not None and i > last:
            break
        if first is not None and i < first:
            continue
        forced = forced_from is not None and i >= forced_from
        console.rule(f"[bold]{stage.name}[/] — {stage.what}")
        started, clock = time.time(), time.perf_counter()
        manifest = stage.run(cfg, forced, console)
        finished = manifest.get("timings", {}).get("finished")
        skipped = finished is not None and finished < started
        if skipped:
            console.print(f"[dim]{stage.name}: unchanged since the last run (skipped)[/]")
        stage.summary(console, cfg, manifest)
        walls[stage.name] = (time.perf_counter() - clock, skipped)
        results[stage.name] = manifest
    release_local_backends()
    total = time.perf_counter() - started_run
    console.print(wall_time_table(walls, total))
    console.print(f"[bold green]done[/] in {total:.0f}s; outputs in {cfg.run_dir.path}", highlight=False)
    return results


def wall_time_table(walls: dict[str, tuple[float, bool]], total: float) -> Table:
    """Where this run's time went, stage by stage (a skipped stage costs its check only)."""
    table = Table(title="wall time per stage (this run)", title_justify="left")
    for name, justify in (("stage", "left"), ("seconds", "right"), ("share", "right"), ("", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name, (seconds, skipped) in walls.items():
        table.add_row(name, f"{seconds:.1f}", f"{seconds / total:.0%}" if total > 0 else "-",
                      "skipped: unchanged" if skipped else "")
    table.add_row("[bold]total[/]", f"[bold]{total:.1f}[/]", "", "")
    return table


def preflight(cfg: Config) -> None:
    """What can be checked before any stage starts: paths the config names exist, and the
    stages' own settings hold together. Every problem at once, with its file:line."""
    problems = []
    if not cfg.taxonomy_path.is_dir():
        problems.append(f"{cfg.where(('taxonomy',))}: taxonomy folder {cfg.taxonomy_path} does not exist")
    for i, name in enumerate(cfg.eval.mcq_files):
        if not cfg.path(name).is_file():
            problems.append(f"{cfg.where(('eval', 'mcq_files', i))}: MCQ file {cfg.path(name)} does not exist")
    mix_names = [p.name for p in _mix_phases(cfg, problems)]
    for i, phase in enumerate(cfg.train.phases):
        if mix_names and phase.name not in mix_names:
            problems.append(f"{cfg.where(('train', 'phases', i, 'name'))}: train phase '{phase.name}' is not a "
                            f"mix phase (mix phases: {', '.join(mix_names)})")
    for i, rung in enumerate(cfg.pairs.ladder):
        if rung.startswith("student:") and rung.split(":", 1)[1] not in [p.name for p in cfg.train.phases]:
            problems.append(f"{cfg.where(('pairs', 'ladder', i))}: ladder rung {rung!r} names no train phase")
    if problems:
        raise ConfigError("the config cannot run:\n" + "\n".join(problems))


def _mix_phases(cfg: Config, problems: list[str]) -> list[Any]:
    from alignlab.mix.recipe import load_recipe

    try:
        return load_recipe(cfg).recipe.phases
    except AlignlabError as e:
        problems.append(str(e))
        return []
