"""`alignlab curate`: generate/samples.jsonl through the configured steps into curate/.

Writes `runs/<name>/curate/`:
    samples.jsonl   the samples every step kept (revised answers and new judge scores included)
    rejects.jsonl   every rejected sample with its step, reason and detail
    counts.json     the funnel: in -> out per step, per reason, per leaf
    manifest.json   written last; a re-run with the same inputs, settings and code is skipped

Everything that can be wrong with the settings (a missing eval set, an unknown template or
model spec) is found before the first step runs.
"""

from __future__ import annotations

from typing import Any

from alignlab.artefacts import COUNTS, REJECTS, SAMPLES
from alignlab.config import Config
from alignlab.curate.decontaminate import eval_set_paths
from alignlab.curate.funnel import all_rejects, funnel_counts, run_steps
from alignlab.curate.steps import StepContext
from alignlab.llm import Backend
from alignlab.progress import progress_bar
from alignlab.sdg.templates import load_template
from alignlab.stage import finished_stage, start_stage, upstream
from alignlab.store import file_fingerprint, read_samples, write_json, write_jsonl


def _models_and_templates(cfg: Config) -> tuple[dict[str, str], dict[str, str]]:
    """The models (as weight-fingerprinted ids) and prompt templates the steps will use, as
    each step declares them."""
    models: dict[str, str] = {}
    templates: dict[str, str] = {}
    for step in cfg.curate.steps:
        models.update(step.models(cfg))
        for name, folder in step.templates():
            template = load_template(name, folder)
            templates[template.name] = template.hash
    return {role: cfg.model_id(spec) for role, spec in models.items()}, templates


def _eval_inputs(cfg: Config) -> dict[str, str]:
    inputs = {}
    for i, step in enumerate(cfg.curate.steps):
        if step.step == "decontaminate":
            for path in eval_set_paths(cfg, step, ("curate", "steps", i, "decontaminate")):
                inputs[f"eval:{path}"] = file_fingerprint(path)
    return inputs


def curate(cfg: Config, force: bool = False, backends: dict[str, Backend] | None = None) -> dict[str, Any]:
    """Run the curation steps over the generated samples; returns the stage manifest.

    `backends` maps model specs to ready backends (tests pass fakes); others are opened on
    demand behind the request cache."""
    models, templates = _models_and_templates(cfg)
    inputs = {"generate": upstream(cfg, "generate"), **_eval_inputs(cfg)}
    # The steps' modules are imported by name when they run, so no import leads to them.
    code = (__name__, *(step.module for step in cfg.curate.steps))
    run = start_stage(cfg, "curate", inputs=inputs, code=code,
                      settings={"curate": cfg.curate.model_dump(mode="json"), "seed": cfg.seed,
                                "models": models, "templates": templates}, force=force)
    if run.done:
        return run.manifest
    samples = read_samples(finished_stage(cfg, "generate").file(SAMPLES))
    ctx = StepContext(cfg, backends=dict(backends or {}))
    try:
        with progress_bar(transient=True) as progress:
            ctx.progress = progress
            survivors, reports = run_steps(samples, cfg.curate.steps, cfg.curate.labels(), ctx)
    finally:
        ctx.close()
    counts = funnel_counts(samples, survivors, reports)
    write_jsonl(run.dir.file(SAMPLES), survivors)
    write_jsonl(run.dir.file(REJECTS), all_rejects(reports))
    write_json(run.dir.file(COUNTS), counts)
    return run.finish(counts)
