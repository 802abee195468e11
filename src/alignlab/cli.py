"""The `alignlab` command: parse options, call one stage function, print a summary.

Every command is a thin wrapper; the work lives in functions that `alignlab run`, Ray workers
and the tests call the same way. A stage command (`alignlab curate`, `alignlab eval-aligned`, ...)
runs its entry of `pipeline.STAGES` through `pipeline.run_stage`, exactly as `alignlab run` does.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from alignlab.errors import AlignlabError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Taxonomy + teacher -> aligned student. Run `alignlab COMMAND --help` for details.")
taxonomy_app = typer.Typer(no_args_is_help=True, help="Validate, show and diff a taxonomy tree.")
app.add_typer(taxonomy_app, name="taxonomy")

console = Console()
err_console = Console(stderr=True)

WORKSPACE_CONFIG = Path("alignlab.yaml")  # the workspace's config, where a command is run
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="alignlab.yaml of the workspace")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model spec, e.g. embedded:smollm2-135m")]


class _ConsoleLog(logging.Handler):
    """alignlab's own log lines (a PDF pypdf had to repair, a report section that failed) as
    `warning: ...` on stderr, in the console's style rather than Python's bare default."""

    def emit(self, record: logging.LogRecord) -> None:
        text = logging.Formatter("%(message)s").format(record)  # a traceback, when one was logged
        err_console.print(f"{record.levelname.lower()}: {text}", style="yellow", markup=False,
                          highlight=False, soft_wrap=True)


def main() -> None:
    """Console entry point: user errors print as one clean message, never a traceback."""
    logger = logging.getLogger("alignlab")
    logger.addHandler(_ConsoleLog(logging.WARNING))
    logger.propagate = False
    try:
        app()
    except AlignlabError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except SystemExit as e:  # typer turns Ctrl-C into exit status 130, silently
        if e.code == 130:
            err_console.print("[yellow]interrupted:[/] what had finished is kept (finished stages, the teacher's "
                              "answers in the request cache, training checkpoints); run the same command "
                              "again to go on from there", highlight=False, soft_wrap=True)
        raise


# ------------------------------------------------------------------ taxonomy

TaxonomyArg = Annotated[Path | None, typer.Argument(
    help="taxonomy folder (holding knowledge/, compositional_skills/); default: `taxonomy:` of "
         "./alignlab.yaml, else ./taxonomy", show_default=False)]
DocumentsOpt = Annotated[bool, typer.Option(help="check that knowledge documents can be read")]
OfflineOpt = Annotated[bool, typer.Option(help="do not fetch remote document repositories")]


def taxonomy_folder(path: Path | None) -> Path:
    """The folder given, else the one the workspace's config names, else ./taxonomy."""
    if path is not None:
        return path
    if WORKSPACE_CONFIG.is_file():
        from alignlab.config import load_config

        return load_config(WORKSPACE_CONFIG).taxonomy_path
    return Path("taxonomy")


@taxonomy_app.command("validate")
def taxonomy_validate(
        path: TaxonomyArg = None,
        teacher: Annotated[str | None, typer.Option(
            help="model spec of the teacher whose context bounds a seed's length "
                 "(default: models.teacher of ./alignlab.yaml, else the embedded model)")] = None,
        max_seed_tokens: Annotated[int | None, typer.Option(
            help="largest seed example, in tokens (~4 characters each); default: 1/8 of the "
                 "teacher's context")] = None,
        documents: DocumentsOpt = True,
        offline: OfflineOpt = False,
        strict: Annotated[bool, typer.Option(help="count warnings as errors (exit 1), e.g. in CI")] = False,
) -> None:
    """Check every qna.yaml: InstructLab's verdict (errors, exit 1), then alignlab's own checks
    (duplicates, seed length, documents, structure) as warnings."""
    from alignlab.taxonomy.validate import check_taxonomy_for, count_kinds, count_problems, plural, remote_leaves

    path = taxonomy_folder(path)
    leaves, problems = check_taxonomy_for(path, WORKSPACE_CONFIG, teacher=teacher, max_seed_tokens=max_seed_tokens,
                                          check_documents=documents, offline=offline)
    if strict:
        problems = [p.as_error() for p in problems]
    if offline and documents and (remote := remote_leaves(leaves)):
        console.print(f"offline: documents of {plural(len(remote), 'leaf', 'leaves')} in remote git "
                      f"repositories not fetched", style="dim", highlight=False)
    for problem in problems:
        console.print(str(problem), markup=False, highlight=False, soft_wrap=True)
    if not any(p.is_error for p in problems):
        note = f" ({count_problems(problems)})" if problems else ""
        console.print(f"{plural(len(leaves), 'leaf', 'leaves')} valid: {count_kinds(leaves)}{note}",
                      highlight=False)
        return
    broken = {p.leaf for p in problems if p.is_error}
    total = len({leaf.path for leaf in leaves} | {p.leaf for p in problems})
    console.print(f"{count_problems(problems)}; {len(broken)} of {plural(total, 'leaf', 'leaves')} invalid",
                  style="red", highlight=False)
    raise typer.Exit(1)


@taxonomy_app.command("show")
def taxonomy_show(path: TaxonomyArg = None, documents: DocumentsOpt = True, offline: OfflineOpt = False) -> None:
    """Print the tree with each leaf's kind and seed counts, and the problems `alignlab taxonomy
    validate` finds (the same checks, so the same count)."""
    from alignlab.taxonomy.show import taxonomy_tree
    from alignlab.taxonomy.validate import check_taxonomy_for, count_kinds, count_problems, plural

    path = taxonomy_folder(path)
    leaves, problems = check_taxonomy_for(path, WORKSPACE_CONFIG, check_documents=documents, offline=offline)
    console.print(taxonomy_tree(path, leaves, problems))
    note = f"; {count_problems(problems)}, run `alignlab taxonomy validate`" if problems else ""
    console.print(f"{plural(len(leaves), 'leaf', 'leaves')}: {count_kinds(leaves)}{note}", highlight=False)


@taxonomy_app.command("diff")
def taxonomy_diff(
        path: TaxonomyArg = None,
        base: Annotated[str, typer.Option(help="git ref to compare against, or 'empty' for every leaf")] = "origin/main"
) -> None:
    """List the leaves added, modified, deleted or untracked since BASE."""
    from alignlab.taxonomy import diff_taxonomy
    from alignlab.taxonomy.validate import plural

    diff = diff_taxonomy(taxonomy_folder(path), base)
    for change in diff.changes:
        note = " (uncommitted)" if change.uncommitted and change.status != "untracked" else ""
        console.print(f"{change.status:<10} {change.path}{note}", markup=False, highlight=False)
    since = f"{base} ({diff.base_commit[:12]})" if diff.base_commit else "an empty taxonomy"
    console.print(f"{plural(len(diff.changes), 'leaf', 'leaves')} changed since {since}", style="dim",
                  highlight=False)


# ------------------------------------------------------------------ models


@app.command()
def ask(prompts: Annotated[list[str], typer.Argument(help="prompts to answer, one request each")],
        model: ModelOpt = "embedded:smollm2-135m",
        max_tokens: Annotated[int, typer.Option(help="new tokens per answer")] = 96,
        temperature: float = 0.0, seed: int = 0) -> None:
    """Answer prompts in one batch and print each answer with the throughput."""
    from alignlab.llm import GenerationParams, Request, open_backend

    backend = open_backend(model)
    params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    started = time.perf_counter()
    responses = backend.generate([Request(messages=({"role": "user", "content": p},), params=params)
                                  for p in prompts])
    seconds = time.perf_counter() - started
    for prompt, response in zip(prompts, responses):
        console.print(f"[bold cyan]> {prompt}[/]", highlight=False)
        console.print(response.error and f"[red]{response.error}[/]" or response.text, highlight=False)
    tokens = sum(c.completion_tokens for r in responses for c in r.choices)
    console.print(f"[dim]{len(prompts)} answers, {tokens} new tokens in {seconds:.1f}s "
                  f"({tokens / max(seconds, 1e-9):.0f} tokens/s) from {model}[/]")


@app.command()
def serve(model: ModelOpt = "embedded:smollm2-135m",
          host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
          api_key_env: Annotated[str | None, typer.Option(
              help="environment variable holding the API key every request must send")] = None) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/chat/completions, /v1/completions)."""
    from alignlab.llm.serve import serve as serve_model

    serve_model(model, host=host, port=port, api_key_env=api_key_env)


@app.command()
def chat(model: ModelOpt = "embedded:smollm2-135m",
         system: Annotated[str | None, typer.Option(help="system prompt")] = None,
         max_tokens: Annotated[int, typer.Option(help="new tokens per answer")] = 256,
         temperature: float = 0.7) -> None:
    """Chat with a model in the terminal (/reset starts over, /exit or Ctrl-D quits)."""
    from alignlab.llm import open_backend
    from alignlab.llm.chat import chat_loop

    chat_loop(open_backend(model), name=model, system=system, max_tokens=max_tokens,
              temperature=temperature, console=console)


# ------------------------------------------------------------------ stages


ForceOpt = Annotated[bool, typer.Option(help="re-run even if nothing changed")]


def _run_stage(config: Path, name: str, force: bool, overrides: dict | None = None,
               speaker: Console | None = None, **extras: Any) -> None:
    """What every stage command does: the stage through `pipeline.run_stage`, as `alignlab run`
    runs it (same summary, same skipped line, same errors)."""
    from alignlab.config import load_config
    from alignlab.pipeline import StageContext, run_stage

    cfg = load_config(config, overrides=overrides)
    run_stage(cfg, name, StageContext(force=force, console=speaker or console, **extras))


@app.command()
def validate(config: ConfigOpt = WORKSPACE_CONFIG) -> None:
    """The pipeline's validate stage: the config's taxonomy, with the seed budget of its
    teacher (`alignlab taxonomy validate` checks any folder, with more options)."""
    _run_stage(config, "validate", force=False)


@app.command()
def generate(config: ConfigOpt = WORKSPACE_CONFIG,
             leaf: Annotated[str | None, typer.Option(help="only leaves matching this glob")] = None,
             engine: Annotated[str | None, typer.Option(help="local or ray (default: the config's)")] = None,
             force: ForceOpt = False,
             dry_run: Annotated[bool, typer.Option(
                 help="print the requests, tokens, time and cost generate would spend, per leaf; "
                      "write nothing")] = False,
             probe: Annotated[int | None, typer.Option(
                 min=0, help="--dry-run: how many planned requests of each kind to send the teacher to time it "
                             "(default: a few; 0: no time estimate)")] = None) -> None:
    """Synthetic data from the teacher for every leaf of the taxonomy, judged and filtered."""
    overrides = {"generate": {"engine": engine}} if engine else None
    if dry_run:  # a plan, not the stage: nothing is written, so nothing is skipped or summarised
        from alignlab.config import load_config
        from alignlab.pipeline import preflight
        from alignlab.sdg.dry_run import dry_run as plan_generate
        from alignlab.sdg.dry_run import print_dry_run

        cfg = load_config(config, overrides=overrides)
        preflight(cfg, ("generate",))  # as the stage would check it
        print_dry_run(console, cfg, plan_generate(cfg, leaf_pattern=leaf, probe_per_kind=probe, console=console))
        return
    _run_stage(config, "generate", force, overrides, leaf_pattern=leaf)


@app.command()
def curate(config: ConfigOpt = WORKSPACE_CONFIG, force: ForceOpt = False) -> None:
    """Filter and select the generated samples (dedup, quality, decontamination, diversity,
    style, critique-and-revise: the steps listed under `curate.steps`)."""
    _run_stage(config, "curate", force)


@app.command()
def mix(config: ConfigOpt = WORKSPACE_CONFIG, force: ForceOpt = False) -> None:
    """Build each training phase's data from the recipe under `mix:` (curated samples,
    replay of earlier phases, your own files), in exact seeded amounts."""
    _run_stage(config, "mix", force)


@app.command()
def train(config: ConfigOpt = WORKSPACE_CONFIG,
          force: Annotated[bool, typer.Option(help="retrain every phase from scratch")] = False) -> None:
    """Supervised training in phases (knowledge, then skills), each from the previous phase's
    selected checkpoint; resumes after a crash. On several processes:
    `accelerate launch --multi_gpu --num_processes N -m alignlab.train -c alignlab.yaml`
    (on CPUs with ACCELERATE_USE_CPU=true)."""
    from alignlab.train.loop import process_state

    # Under accelerate every process trains; one of them speaks.
    speaker = console if process_state().is_main_process else Console(quiet=True)
    _run_stage(config, "train", force, speaker=speaker)


@app.command()
def pairs(config: ConfigOpt = WORKSPACE_CONFIG, force: ForceOpt = False) -> None:
    """Preference pairs from a ladder of fluent rungs (`pairs.ladder`, strongest first), each rung's
    quality measured on held-out prompts; knowledge pairs checked by which answer the source chunk
    supports, the rest by the judge in both orders; written as JSONL, a datasets dataset and Parquet."""
    _run_stage(config, "pairs", force)


@app.command()
def align(config: ConfigOpt = WORKSPACE_CONFIG, force: ForceOpt = False) -> None:
    """Contrastive post-training (`align.loss.kind`: dpo, ipo, hinge, slic, simpo, orpo on the pairs,
    easy to hard; kto on unpaired answers; sft, continued SFT on the chosen answers, as a baseline);
    resumes after a crash; keeps the checkpoint with the best held-out reward accuracy, with a model
    card listing its lineage."""
    _run_stage(config, "align", force)


@app.command("eval")
def eval_(
        model: Annotated[list[str] | None, typer.Option(
            "--model", "-m", help="model spec to evaluate (repeatable)")] = None,
        config: Annotated[Path | None, typer.Option(
            "--config", "-c", help="alignlab.yaml (default: ./alignlab.yaml if present, else defaults)")] = None,
        label: Annotated[list[str] | None, typer.Option(
            help="results folder name per --model (default: from the spec)")] = None,
        mcq: Annotated[list[Path] | None, typer.Option(help="extra MCQ JSONL file (repeatable)")] = None,
        judged: Annotated[bool | None, typer.Option(
            "--judged/--no-judged", help="judge answers to held-out skill prompts (default: eval.judged)")] = None,
        compare: Annotated[tuple[str, str] | None, typer.Option(
            help="pairwise win rate of model A over model B")] = None,
        lm_eval: Annotated[str | None, typer.Option(
            "--lm-eval", help="comma-separated lm-evaluation-harness tasks")] = None,
        include_path: Annotated[Path | None, typer.Option(help="folder of extra lm-eval task YAMLs")] = None,
        limit: Annotated[int | None, typer.Option(help="lm-eval: documents per task")] = None,
        chat_template: Annotated[bool, typer.Option(
            help="lm-eval: apply the model's chat template, as alignlab's own scoring does")] = True,
        export_lm_eval: Annotated[Path | None, typer.Option(
            help="write the MCQ sets as lm-eval tasks into this folder")] = None,
        forgetting: Annotated[bool, typer.Option(
            help="table of gains and losses of each later --model against the first")] = False,
        force: Annotated[bool, typer.Option(help="re-run even if nothing changed")] = False) -> None:
    """Knowledge MCQ, judged skill prompts, pairwise win rate and lm-eval benchmarks; results
    per model and leaf under runs/<name>/eval/<label>/. Without --model, --compare or
    --export-lm-eval, in a workspace: the pipeline's eval stage (the base student and every
    training phase's selected checkpoint)."""
    from alignlab.config import Config, load_config
    from alignlab.errors import ConfigError
    from alignlab.evaluate.command import run_eval
    from alignlab.evaluate.stage import EvalOptions

    if config is None and WORKSPACE_CONFIG.is_file():
        config = WORKSPACE_CONFIG
    if config is not None and not (model or compare or export_lm_eval):
        given = {"--label": label, "--mcq": mcq, "--judged": judged is not None, "--lm-eval": lm_eval,
                 "--include-path": include_path, "--limit": limit is not None, "--forgetting": forgetting}
        if options_given := [name for name, value in given.items() if value]:
            raise ConfigError(f"{', '.join(options_given)} apply to --model; the eval stage (no --model) "
                              f"takes its settings from the config's eval: section")
        _run_stage(config, "eval", force)
        return
    cfg = load_config(config) if config is not None else Config()
    options = EvalOptions(
        mcq_files=tuple(str(p.resolve()) for p in mcq or ()), judged=judged,
        lm_eval_tasks=tuple(t.strip() for t in (lm_eval or "").split(",") if t.strip()),
        lm_eval_include=str(include_path) if include_path else None, lm_eval_limit=limit,
        lm_eval_chat=chat_template)
    pair = tuple(compare) if compare and all(compare) else None
    run_eval(cfg, model or [], label or [], options, compare=pair, export_dir=export_lm_eval,
             forgetting=forgetting, force=force, console=console)


@app.command("eval-aligned")
def eval_aligned(config: ConfigOpt = WORKSPACE_CONFIG, force: ForceOpt = False) -> None:
    """The pipeline's eval-aligned stage: base -> SFT -> aligned, with the aligned model's win
    rate over the SFT model."""
    _run_stage(config, "eval-aligned", force)


# ------------------------------------------------------------------ the whole pipeline


@app.command()
def run(config: ConfigOpt = WORKSPACE_CONFIG,
        until: Annotated[str | None, typer.Option(help="stop after this stage")] = None,
        start: Annotated[str | None, typer.Option(
            "--from", help="re-run from this stage on, taking earlier stages as they are")] = None,
        force: Annotated[list[str] | None, typer.Option(
            help="re-run this stage and every later one (repeatable)")] = None) -> None:
    """Every stage in order — validate, generate, curate, mix, train, eval, pairs, align,
    eval-aligned, report — each skipped when nothing it depends on changed. Safe to kill and
    re-run at any moment."""
    from alignlab.config import load_config
    from alignlab.pipeline import run_pipeline

    cfg = load_config(config)
    run_pipeline(cfg, until=until, start=start, force=tuple(force or ()), console=console)


@app.command()
def report(run_dir: Annotated[Path | None, typer.Argument(
               help="run directory (default: the config's runs/<name>)")] = None,
           config: ConfigOpt = WORKSPACE_CONFIG) -> None:
    """Write one self-contained report.html (plots inline, no network) for a run."""
    if run_dir is None:
        _run_stage(config, "report", force=False)
        return
    from alignlab.report import write_report

    console.print(f"report: {write_report(run_dir)}", highlight=False)  # a run directory, without its config


@app.command()
def init(folder: Annotated[Path, typer.Argument(help="where to create the workspace")] = Path("."),
         force: Annotated[bool, typer.Option(help="overwrite files that exist")] = False) -> None:
    """A new workspace: a commented alignlab.yaml (the embedded model by default) and a
    starter taxonomy with one knowledge, one freeform and one grounded skill leaf."""
    from alignlab.workspace import create_workspace

    written = create_workspace(folder, force=force)
    for path in written:
        console.print(f"  wrote {path}", highlight=False)
    console.print(f"next: cd {folder} && alignlab taxonomy validate && alignlab run", highlight=False)


if __name__ == "__main__":
    main()
