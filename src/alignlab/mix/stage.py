"""`alignlab mix`: curated samples, replayed phases and user files into one file per phase.

Writes `runs/<name>/mix/`:
    <phase>.jsonl   rows in the InstructLab/TRL messages format (`id`, `messages`, `unmask`,
                    `metadata` with `source` and `phase` added), one file per phase in order
    instructlab/    the same phases as InstructLab's training reads them
                    (`knowledge_train_msgs_<name>.jsonl`, `skills_train_msgs_<name>.jsonl`)
    summary.json    rows and tokens per phase and source, rows per leaf
    manifest.json   written last; unchanged recipe, files, curated data and code skip the stage

Tokens are counted with the student's tokenizer over the chat-template rendering when it can
be loaded, else estimated as characters / 4 (the summary says which).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from rich.markup import escape
from rich.table import Table

from alignlab.artefacts import MIX_SUMMARY, SAMPLES, phase_file
from alignlab.chat_format import render
from alignlab.config import Config
from alignlab.curate.funnel import empty_curate_error
from alignlab.errors import AlignlabError
from alignlab.leaf_table import LeafTable
from alignlab.mix import instructlab
from alignlab.mix.instructlab import write_instructlab_phases
from alignlab.mix.recipe import load_recipe
from alignlab.mix.sampling import PhaseMix, mix_phases
from alignlab.records import Sample
from alignlab.stage import finished_stage, start_stage, upstream
from alignlab.store import file_fingerprint, read_samples, write_json, write_jsonl


def token_counter(cfg: Config) -> tuple[Callable[[list[Sample]], list[int]], str]:
    """(count tokens of each sample, what counted them)."""
    from alignlab.llm.specs import parse_spec

    try:
        spec = parse_spec(cfg.models.student, cfg.base_dir)
        if not spec.is_local:
            raise AlignlabError("served over HTTP")
        from alignlab.llm.hf import load_tokenizer

        tokenizer = load_tokenizer(spec)
    except (AlignlabError, OSError, ValueError):
        return (lambda rows: [sum(len(m["content"]) for m in s.messages) // 4 for s in rows]), "estimate: chars/4"

    def count(rows: list[Sample]) -> list[int]:
        if not rows:
            return []
        if tokenizer.chat_template:
            texts = [render(tokenizer, s.messages) for s in rows]
        else:
            texts = ["\n".join(m["content"] for m in s.messages) for s in rows]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False).input_ids]
    return count, f"tokenizer of {cfg.models.student}"


def _student_identity(cfg: Config) -> str:
    """The student's tokenizer counts the tokens: its identity (a local directory's covers its
    tokenizer files), or the spec alone where no directory can be read and tokens are estimated."""
    try:
        return cfg.model_id(cfg.models.student)
    except AlignlabError:
        return cfg.models.student


def summarise(phases: list[PhaseMix], count: Callable[[list[Sample]], list[int]], counted_by: str,
              seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed, "tokens_counted_by": counted_by, "phases": {}, "warnings": []}
    for phase in phases:
        tokens = dict(zip((s.id for s in phase.rows), count(phase.rows)))
        sources = {}
        for draw in phase.sources:
            sources[draw.label] = {"kind": draw.kind, "available": draw.available, "asked": draw.request,
                                   "rows": len(draw.rows), "tokens": sum(tokens[s.id] for s in draw.rows)}
            if draw.available == 0:
                out["warnings"].append(f"phase '{phase.name}': source {draw.label} holds no rows")
        out["phases"][phase.name] = {
            "rows": len(phase.rows), "tokens": sum(tokens.values()),
            "unmask_rows": sum(s.unmask for s in phase.rows), "sources": sources,
            "leaves": dict(sorted(Counter(str(s.metadata.get("leaf", "(no leaf)")) for s in phase.rows).items())),
        }
    return out


def mix(cfg: Config, force: bool = False) -> dict[str, Any]:
    """Build every phase's file from the recipe; returns the stage manifest."""
    resolved = load_recipe(cfg)  # every recipe problem surfaces here, with its file:line
    # An empty curate is the end of the run (its summary said why); started on its own, mix says
    # the same, rather than write empty phases for training to fail on later.
    if any(source.kind == "select" for phase in resolved.recipe.phases for source in phase.sources):
        if error := empty_curate_error(finished_stage(cfg, "curate").manifest()["counts"]):
            raise error
    inputs = {"curate": upstream(cfg, "curate")}
    if resolved.recipe_file is not None:
        inputs["recipe"] = file_fingerprint(resolved.recipe_file)
    for name in resolved.files:
        inputs[f"file:{name}"] = file_fingerprint(resolved.file_path(name))
    inputs["student"] = _student_identity(cfg)
    run = start_stage(cfg, "mix", inputs=inputs, code=(__name__,),
                      settings={"recipe": resolved.recipe.model_dump(mode="json"), "seed": resolved.seed},
                      force=force)
    if run.done:
        return run.manifest
    curated = read_samples(finished_stage(cfg, "curate").file(SAMPLES))
    count, counted_by = token_counter(cfg)
    phases = mix_phases(curated, resolved, count)
    summary = summarise(phases, count, counted_by, resolved.seed)
    for stale in run.dir.path.glob("*.jsonl"):  # a phase renamed or removed since the last run
        if stale.stem not in {p.name for p in phases}:
            stale.unlink()
    for phase in phases:
        write_jsonl(run.dir.file(phase_file(phase.name)), phase.rows)
    summary["instructlab_files"] = write_instructlab_phases(
        run.dir.path / instructlab.FOLDER, {p.name: p.rows for p in phases}, cfg.name)
    write_json(run.dir.file(MIX_SUMMARY), summary)
    return run.finish(summary)


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """Rows and tokens per phase and source, then rows per leaf and phase."""
    sources = Table(title=f"mix (seed {summary['seed']}; tokens: {summary['tokens_counted_by']})",
                    title_justify="left")
    for col, justify in (("phase", "left"), ("source", "left"), ("available", "right"), ("asked", "left"),
                         ("rows", "right"), ("tokens", "right")):
        sources.add_column(col, justify=justify)
    for name, phase in summary["phases"].items():
        for label, s in phase["sources"].items():
            sources.add_row(escape(name), escape(label), str(s["available"]), s["asked"], str(s["rows"]),
                            f"{s['tokens']:,}")
        sources.add_row(f"[bold]{escape(name)}[/]", "[bold]total[/]", "", "", f"[bold]{phase['rows']}[/]",
                        f"[bold]{phase['tokens']:,}[/]", end_section=True)
    leaves = LeafTable(title="rows per leaf", title_justify="left")
    leaves.add_column("leaf")
    names = list(summary["phases"])
    for name in names:
        leaves.add_column(name, justify="right")
    all_leaves = sorted({leaf for p in summary["phases"].values() for leaf in p["leaves"]})
    for leaf in all_leaves:
        leaves.add_row(escape(leaf), *[str(summary["phases"][n]["leaves"].get(leaf, 0)) for n in names])
    return [sources, leaves]
