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

`STAGES` is the one table of stages: each entry's function, summary, the files it reads and
writes, and what `preflight` checks before it starts. `run_stage` runs one entry — its
preflight, the rule, the stage, the skipped line, the summary — and both `alignlab run` and
every `alignlab <stage>` command go through it, so a stage says and does the same whichever
way it is started (`alignlab run` checks every stage it will visit before the first starts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from alignlab.artefacts import (CHUNKS, COUNTS, EVAL_ALIGNED, EVAL_SFT, HELDOUT_PAIRS, MIX_SUMMARY, PAIRS,
                                REJECTS, REPORT, SAMPLES, SELECTED, phase_file)
from alignlab.config import Config
from alignlab.errors import AlignlabError, ConfigError
from alignlab.llm import release_local_backends
from alignlab.llm.types import Backend
from alignlab.stage_summaries import (say_align, say_curate, say_evaluation, say_generate, say_mix, say_pairs,
                                     say_report, say_train, say_validate)


@dataclass(frozen=True)
class StageContext:
    """What a stage is told besides the config: whether to re-run it although nothing changed,
    where to print, and what a command line or a test adds."""

    force: bool = False
    console: Console = field(default_factory=Console)
    leaf_pattern: str | None = None  # generate: only leaves matching this glob (`--leaf`)
    backends: Mapping[str, Backend] = field(default_factory=dict)  # ready backends by model spec (tests)


StageFn = Callable[[Config, StageContext], dict[str, Any]]
SummaryFn = Callable[[Console, Config, dict[str, Any]], None]


def _validate(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.taxonomy import check_taxonomy
    from alignlab.taxonomy.checks import teacher_seed_budget
    from alignlab.taxonomy.errors import TaxonomyInvalid
    from alignlab.taxonomy.validate import count_kinds

    budget = teacher_seed_budget(cfg.models.teacher, cfg.base_dir)
    leaves, problems = check_taxonomy(cfg.taxonomy_path, max_seed_tokens=budget)
    if errors := [p for p in problems if p.is_error]:
        raise TaxonomyInvalid(errors)
    for warning in problems:  # InstructLab accepts the tree; what alignlab would improve is said once
        ctx.console.print(str(warning), markup=False, highlight=False, soft_wrap=True, style="yellow")
    return {"counts": {"leaves": len(leaves), "kinds": count_kinds(leaves), "warnings": len(problems)}}


def _generate(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.sdg.stage import generate

    given = [ctx.backends.get(spec) for spec in (cfg.models.teacher, cfg.judge)]
    models = (given[0], given[1]) if given[0] and given[1] else None
    return generate(cfg, leaf_pattern=ctx.leaf_pattern, force=ctx.force, console=ctx.console, models=models)


def _curate(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.curate.stage import curate

    return curate(cfg, force=ctx.force, backends=dict(ctx.backends))


def _mix(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.mix.stage import mix

    return mix(cfg, force=ctx.force)


def _train(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.train.phases import train_stage

    release_local_backends()  # the teacher's memory goes to training
    return train_stage(cfg, force=ctx.force, console=ctx.console)


def _eval(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.evaluate.progression import evaluate_sft

    return evaluate_sft(cfg, ctx.force)


def _pairs(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.pairs.stage import pairs_stage

    return pairs_stage(cfg, force=ctx.force, console=ctx.console, backends=dict(ctx.backends))


def _align(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.train.align import align_stage

    release_local_backends()
    return align_stage(cfg, force=ctx.force, console=ctx.console)


def _eval_aligned(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.evaluate.progression import evaluate_aligned

    return evaluate_aligned(cfg, ctx.force)


def _report(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    from alignlab.report import write_report

    path = write_report(cfg.run_dir.path)
    return {"counts": {"report": str(path)}}


# ------------------------------------------------------------------ checks before a stage starts

Check = Callable[[Config, list[str]], None]  # appends every problem it finds, with its file:line


def _taxonomy_exists(cfg: Config, problems: list[str]) -> None:
    if not cfg.taxonomy_path.is_dir():
        problems.append(f"{cfg.where(('taxonomy',))}: taxonomy folder {cfg.taxonomy_path} does not exist")


def _mcq_files_exist(cfg: Config, problems: list[str]) -> None:
    for i, name in enumerate(cfg.eval.mcq_files):
        if not cfg.path(name).is_file():
            problems.append(f"{cfg.where(('eval', 'mcq_files', i))}: MCQ file {cfg.path(name)} does not exist")


def _phases_agree(cfg: Config, problems: list[str]) -> None:
    """The mix recipe loads and every train phase is one of its phases: mix writes the phase
    files train reads, so both stages check the one list of phases."""
    from alignlab.mix.recipe import load_recipe

    try:
        mix_names = [p.name for p in load_recipe(cfg).recipe.phases]
    except AlignlabError as e:
        problems.append(str(e))
        return
    for i, phase in enumerate(cfg.train.phases):
        if phase.name not in mix_names:
            problems.append(f"{cfg.where(('train', 'phases', i, 'name'))}: train phase '{phase.name}' is not a "
                            f"mix phase (mix phases: {', '.join(mix_names)})")


def _ladder_names_train_phases(cfg: Config, problems: list[str]) -> None:
    for i, rung in enumerate(cfg.pairs.ladder):
        if rung.startswith("student:") and rung.split(":", 1)[1] not in [p.name for p in cfg.train.phases]:
            problems.append(f"{cfg.where(('pairs', 'ladder', i))}: ladder rung {rung!r} names no train phase")


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Stage:
    """One stage: its function, its summary, and its files as paths under runs/<name>/
    (`<phase>` and `<label>` stand for each training phase and each evaluated model)."""

    name: str
    run: StageFn
    summary: SummaryFn
    what: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()  # what `preflight` checks before it starts


def _in(stage: str, *files: str) -> tuple[str, ...]:
    return tuple(f"{stage}/{f}" for f in files)


STAGES: tuple[Stage, ...] = (
    Stage("validate", _validate, say_validate, "check the taxonomy", checks=(_taxonomy_exists,)),
    Stage("generate", _generate, say_generate, "synthetic data from the teacher",
          writes=_in("generate", SAMPLES, REJECTS, CHUNKS), checks=(_taxonomy_exists,)),
    Stage("curate", _curate, say_curate, "filter and select",
          reads=_in("generate", SAMPLES), writes=_in("curate", SAMPLES, REJECTS, COUNTS)),
    Stage("mix", _mix, say_mix, "phase datasets with replay",
          reads=_in("curate", SAMPLES), writes=_in("mix", phase_file("<phase>"), MIX_SUMMARY),
          checks=(_phases_agree,)),
    Stage("train", _train, say_train, "supervised training in phases",
          reads=_in("mix", phase_file("<phase>")), writes=_in("train", f"<phase>/{SELECTED}"),
          checks=(_phases_agree,)),
    Stage("eval", _eval, say_evaluation, "before/after each phase",
          reads=_in("train", f"<phase>/{SELECTED}"), writes=_in("eval", EVAL_SFT, "<label>/results.json"),
          checks=(_mcq_files_exist,)),
    Stage("pairs", _pairs, say_pairs, "preference pairs from a model ladder",
          reads=(*_in("curate", SAMPLES), *_in("train", f"<phase>/{SELECTED}")),
          writes=_in("pairs", PAIRS, HELDOUT_PAIRS, REJECTS, COUNTS), checks=(_ladder_names_train_phases,)),
    Stage("align", _align, say_align, "contrastive post-training",
          reads=(*_in("pairs", PAIRS, HELDOUT_PAIRS), *_in("train", f"<phase>/{SELECTED}")),
          writes=_in("align", SELECTED)),
    Stage("eval-aligned", _eval_aligned, say_evaluation, "base -> SFT -> aligned",
          reads=(*_in("train", f"<phase>/{SELECTED}"), *_in("align", SELECTED)),
          writes=_in("eval", EVAL_ALIGNED, "<label>/results.json"), checks=(_mcq_files_exist,)),
    Stage("report", _report, say_report, "one HTML page",
          reads=(*_in("generate", SAMPLES, REJECTS), *_in("curate", REJECTS, COUNTS), *_in("mix", MIX_SUMMARY),
                 *_in("eval", EVAL_SFT, EVAL_ALIGNED), *_in("pairs", PAIRS)),
          writes=(REPORT,)),
)
NAMES = tuple(s.name for s in STAGES)


class StageRan(NamedTuple):
    manifest: dict[str, Any]
    skipped: bool  # unchanged since an earlier run: its manifest was read back, not rewritten


def stage(name: str) -> Stage:
    if name not in NAMES:
        raise ConfigError(f"no such stage {name!r} (stages: {', '.join(NAMES)})")
    return STAGES[NAMES.index(name)]


def preflight(cfg: Config, names: Iterable[str] = NAMES) -> None:
    """What can be checked before the stages `names` start (the checks their entries list):
    paths the config names exist, and the stages' settings hold together. Every problem at
    once, with its file:line, before any of them writes anything."""
    wanted = [stage(name) for name in names]
    checks = dict.fromkeys(check for s in wanted for check in s.checks)  # a check shared by two runs once
    problems: list[str] = []
    for check in checks:
        check(cfg, problems)
    if problems:
        raise ConfigError("the config cannot run:\n" + "\n".join(problems))


def run_stage(cfg: Config, name: str, ctx: StageContext, *, checked: bool = False) -> StageRan:
    """Run one stage and print its summary: the same for `alignlab <stage>` and `alignlab run`.
    Its `preflight` comes first, unless the caller ran it already (`checked`: `alignlab run`
    checks every stage it will visit before the first starts). A user error (AlignlabError)
    propagates, to be printed once by the command."""
    entry = stage(name)
    if not checked:
        preflight(cfg, (name,))
    ctx.console.rule(f"[bold]{entry.name}[/] — {entry.what}")
    started = time.time()
    manifest = entry.run(cfg, ctx)
    finished = manifest.get("timings", {}).get("finished")
    skipped = finished is not None and finished < started
    if skipped:
        ctx.console.print(f"[dim]{entry.name}: unchanged since the last run (skipped; --force re-runs it)[/]")
    entry.summary(ctx.console, cfg, manifest)
    return StageRan(manifest, skipped)


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
    visited = [(i, s.name) for i, s in enumerate(STAGES)
               if (first is None or i >= first) and (last is None or i <= last)]
    preflight(cfg, [name for _, name in visited])
    results: dict[str, Any] = {}
    walls: dict[str, tuple[float, bool]] = {}  # stage -> (seconds in this run, skipped)
    started_run = time.perf_counter()
    for i, name in visited:
        forced = forced_from is not None and i >= forced_from
        clock = time.perf_counter()
        ran = run_stage(cfg, name, StageContext(force=forced, console=console), checked=True)
        walls[name] = (time.perf_counter() - clock, ran.skipped)
        results[name] = ran.manifest
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
