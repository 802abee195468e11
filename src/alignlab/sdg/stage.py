"""`alignlab generate`: the teacher writes training data for every leaf of the taxonomy.

    alignlab generate -c alignlab.yaml [--leaf 'compositional_skills/*'] [--engine ray]

Writes `runs/<name>/generate/`: `samples.jsonl` (accepted, the Sample contract), `rejects.jsonl`
(every reject with its reason and the raw teacher text), `counts.json` (per leaf, per reason),
`chunks.jsonl` (the document chunks), and `manifest.json` last. Candidates are generated in
windows of whole leaves, and each window's samples and rejects are written as soon as they are
decided (to partial files renamed into place at the end), so memory holds one window whatever
the size of the taxonomy. Killed at any point, a re-run asks the teacher nothing it already
answered (the request cache) and writes the same files.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from alignlab.artefacts import CHUNKS, REJECTS, SAMPLES
from alignlab.config import Config
from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend
from alignlab.progress import progress_bar
from alignlab.sdg import knowledge
from alignlab.sdg.candidates import Candidate
from alignlab.sdg.generator import PlanInputs
from alignlab.sdg.generators import open_models, plan_candidates, run_generators
from alignlab.sdg.diagnosis import (
    count_judge_methods, likely_cause, server_findings, server_line, text_fallback_line,
)
from alignlab.sdg.progress import GenerationProgress
from alignlab.sdg.steps import GenContext, cap_step
from alignlab.sdg.traffic import distinct_models, from_counts, sent_by, since, traffic_line
from alignlab.stage import start_stage
from alignlab.store import JsonlStream, read_jsonl, tree_fingerprint, write_jsonl
from alignlab.tally import Tally, counts_table
from alignlab.taxonomy import Document, DocumentError, Leaf, Problem, resolve_documents
from alignlab.taxonomy.load import load_selected
from alignlab.taxonomy.validate import plural
from alignlab.taxonomy.chunking import Chunk, chunk_text


RETRYABLE = ("teacher_error", "judge_error")
# Candidates generated at once, in whole leaves: enough to keep any server busy (every step
# sends one request per candidate of the window), few enough that memory does not grow with
# the taxonomy.
WINDOW_CANDIDATES = 4096


@dataclass
class Plan:
    leaves: dict[str, Leaf]
    chunks: dict[str, list[Chunk]]  # knowledge leaf -> its chunks
    candidates: list[Candidate]


def select_leaves(cfg: Config, pattern: str | None, console: Console | None = None) -> list[Leaf]:
    """The leaves to generate for; raises with every error of a selected leaf, before any
    teacher call. Errors in leaves `--leaf` left out are one warning line on `console`."""
    leaves, elsewhere = load_selected(cfg.taxonomy_path, pattern)
    if pattern and not leaves:
        raise AlignlabError(f"--leaf {pattern!r} matches no leaf of {cfg.taxonomy_path}")
    if elsewhere and console is not None:
        console.print(f"warning: {elsewhere_note(elsewhere)}; --leaf {pattern!r} does not need them "
                      f"(`alignlab taxonomy validate` lists them)", style="yellow", markup=False, highlight=False,
                      soft_wrap=True)
    return leaves


def elsewhere_note(errors: list[Problem], named: int = 3) -> str:
    """"2 errors in 1 other leaf (compositional_skills/writing/x)": the leaves, a few by name."""
    broken = sorted({p.leaf or str(p.path) for p in errors})
    names = ", ".join(broken[:named]) + (f", and {len(broken) - named} more" if len(broken) > named else "")
    return f"{plural(len(errors), 'error')} in {plural(len(broken), 'other leaf', 'other leaves')} ({names})"


def leaf_documents(leaves: list[Leaf]) -> tuple[dict[str, list[Document]], dict[str, str]]:
    """Every knowledge leaf's documents (remote repositories cloned now, into $ALIGNLAB_HOME/repos),
    read before any teacher call; a leaf whose documents cannot be read fails alone, with why."""
    documents, failed = {}, {}
    for leaf in leaves:
        if leaf.kind != "knowledge":
            continue
        found, problems = resolve_documents(leaf)
        if problems:
            failed[leaf.path] = "\n".join(map(str, problems))
        else:
            documents[leaf.path] = found
    return documents, failed


def plan(cfg: Config, leaves: list[Leaf], documents: dict[str, list[Document]], count_tokens: Any) -> Plan:
    """The documents cut into chunks, and every generator's candidates (`plan_candidates`)."""
    s = cfg.generate
    chunks = {leaf.path: [c for doc in documents[leaf.path]
                          for c in chunk_text(doc.text, doc.path, count_tokens, s.chunk_tokens, s.chunk_overlap)]
              for leaf in leaves if leaf.path in documents}
    return Plan({lf.path: lf for lf in leaves}, chunks, plan_candidates(leaves, PlanInputs(cfg, chunks)))


def generate(cfg: Config, *, leaf_pattern: str | None = None, force: bool = False,
             console: Console | None = None, models: tuple[Backend, Backend] | None = None
             ) -> dict[str, Any]:
    """Run the stage; `models` (teacher, judge) replaces the configured ones (tests)."""
    console = console or Console()
    s = cfg.generate
    leaves = select_leaves(cfg, leaf_pattern, console)
    run = start_stage(cfg, "generate", code=(__name__,),
                      settings={"generate": s.model_dump(mode="json"), "leaf_pattern": leaf_pattern},
                      inputs={"taxonomy": tree_fingerprint(cfg.taxonomy_path),
                              "teacher": cfg.model_id(cfg.models.teacher), "judge": cfg.model_id(cfg.judge)},
                      force=force)
    # A finished run whose requests failed (server errors) is not done: the next plain run
    # re-asks exactly those; every answered request comes from the cache.
    retry = failed_requests(run.manifest) if run.done else 0
    if run.done and not retry:
        return run.manifest
    recoveries = (run.previous or {}).get("recoveries", 0)
    documents, failed = leaf_documents(leaves)
    leaves = [leaf for leaf in leaves if leaf.path not in failed]
    teacher, judge = models or open_models(cfg)
    work = plan(cfg, leaves, documents, teacher.count_tokens)
    # Teacher and judge are often one model: count its time once, and only this stage's share.
    models = distinct_models((teacher, judge))
    busy_before = sum(b.stats.seconds for b in models)
    sent_before = sent_by(models)
    tokens_before = teacher.stats.completion_tokens
    started = time.perf_counter()
    n_candidates, planned_leaves = len(work.candidates), sorted({c.leaf for c in work.candidates})
    bar = progress_bar(console)
    tracker = GenerationProgress(bar, work.candidates)  # its bars added before drawing starts
    served = getattr(teacher, "backend", teacher)
    tracker.in_flight_limit = lambda: served.limit.current if getattr(served, "limit", None) else None
    samples_out = JsonlStream(run.dir.file(SAMPLES))
    tally = Tally("generate", stream=JsonlStream(run.dir.file(REJECTS)))
    methods: Counter[str] = Counter()  # how the judges read their scores, over every candidate
    try:
        with bar:
            ctx = GenContext(teacher=teacher, judge=judge, settings=s, progress=tracker)
            if s.engine == "ray":
                from alignlab.sdg.ray_engine import run_on_ray

                windows = [run_on_ray(cfg, work, tracker)]
            else:
                windows = leaf_windows(work.candidates, WINDOW_CANDIDATES)
            work.candidates = []  # each window is let go once written: memory holds one window
            while windows:
                window = windows.pop(0)
                if s.engine != "ray":
                    run_generators(ctx, window, work.leaves)
                cap_step(window, s.max_samples_per_leaf)
                write_decided(window, teacher.model_id, samples_out, tally, methods)
            seed_samples = write_given(work, samples_out, tally)
            for leaf in planned_leaves:
                tracker.finish_leaf(leaf, tally.kept.get(leaf, 0))
        wall = time.perf_counter() - started
        n_samples = samples_out.finish()
        counts = tally.write(run.dir)  # finishes rejects.jsonl
    finally:
        samples_out.close()
        tally.stream.close()
    write_jsonl(run.dir.file(CHUNKS), [{"leaf": leaf, **c.__dict__}
                                              for leaf, cs in work.chunks.items() for c in cs])
    busy = sum(b.stats.seconds for b in models) - busy_before
    counts.update(candidates=n_candidates, samples=n_samples,
                  chunk_samples=sum(len(c) for c in work.chunks.values()), seed_samples=seed_samples,
                  wall_seconds=round(wall, 2),
                  teacher_seconds=round(busy, 2), teacher_utilisation=round(busy / wall, 3) if wall else None,
                  teacher_tokens=teacher.stats.completion_tokens - tokens_before,
                  teacher_server=server_findings(teacher), judge_methods=dict(sorted(methods.items())),
                  sent=since(sent_before, models).as_dict())
    if retry:
        counts.update(retried=retry, recovered=max(0, retry - failed_requests({"counts": counts})))
        recoveries += counts["recovered"] > 0  # only new samples make later stages run again
    if failed:
        # The other leaves' samples are written and their teacher replies cached; without a
        # manifest the stage runs again once the documents can be read, asking nothing twice.
        raise DocumentError(f"generate wrote {n_samples} samples for the other leaves, but "
                            f"{len(failed)} knowledge leaf(s) failed before any teacher call:\n"
                            + "\n".join(failed.values()) + "\nfix their document: and run generate again")
    return run.finish(counts, extra={"recoveries": recoveries} if recoveries else None)


def failed_requests(manifest: dict[str, Any] | None) -> int:
    """Candidates lost to a failed request (not to a verdict): worth asking again."""
    by_reason = ((manifest or {}).get("counts") or {}).get("by_reason") or {}
    return sum(by_reason.get(reason, 0) for reason in RETRYABLE)


def leaf_windows(candidates: list[Candidate], size: int) -> list[list[Candidate]]:
    """The candidates in runs of whole leaves, in leaf order, each about `size` candidates (one
    leaf larger than that is a window alone). Novelty pools and the per-leaf cap never cross a
    leaf, so a window decides exactly what the whole run would, and the windows written one
    after another are in the order of sorting the whole run by (leaf, generator, order)."""
    by_leaf: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_leaf.setdefault(c.leaf, []).append(c)
    windows: list[list[Candidate]] = [[]]
    for leaf in sorted(by_leaf):
        if windows[-1] and len(windows[-1]) + len(by_leaf[leaf]) > size:
            windows.append([])
        windows[-1] += by_leaf[leaf]
    return [w for w in windows if w]


def write_decided(candidates: list[Candidate], teacher: str, samples: JsonlStream, tally: Tally,
                  methods: Counter[str]) -> None:
    """Accepted candidates become samples; rejects keep their reason and everything produced;
    `methods` counts how their judgements were read."""
    for c in sorted(candidates, key=lambda c: (c.leaf, c.generator, c.order)):
        if c.alive:
            sample = c.to_sample(teacher)
            samples.write(sample)
            tally.keep(c.leaf)
            count_judge_methods(sample.metadata, methods)
        else:
            record = c.to_reject_record(teacher)
            tally.reject(record, c.rejected, c.leaf, detail=c.detail)
            count_judge_methods(record.get("metadata") or {}, methods)


def write_given(work: Plan, samples: JsonlStream, tally: Tally) -> int:
    """The knowledge chunks and seed Q&A, which need no teacher, after every generated sample;
    returns how many seed samples there were."""
    seeds = 0
    for path, chunks in sorted(work.chunks.items()):
        given = knowledge.chunk_samples(work.leaves[path], chunks) + knowledge.seed_samples(work.leaves[path])
        for sample in given:
            samples.write(sample)
            seeds += sample.metadata["generator"] == knowledge.SEED_GENERATOR
        tally.keep(path, len(given))
    return seeds


def print_summary(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    """Per-leaf accepted/rejected table; for a leaf that kept nothing, which reason removed most,
    with an example; the totals and the teacher's utilisation."""
    counts = manifest["counts"]
    out = cfg.run_dir.path / "generate"
    rejects = list(read_jsonl(out / REJECTS)) if (out / REJECTS).exists() else []
    samples = list(read_jsonl(out / SAMPLES)) if (out / SAMPLES).exists() else []
    given = (knowledge.CHUNK_GENERATOR, knowledge.SEED_GENERATOR)
    generated = {s["metadata"]["leaf"] for s in samples if s["metadata"]["generator"] not in given}
    console.print(counts_table(counts, "generate: accepted and rejected per leaf"))
    for leaf, c in counts["by_leaf"].items():
        # A knowledge leaf keeps its chunks and seed Q&A whatever the teacher does: what matters
        # is whether any *generated* candidate survived.
        if leaf not in generated and c["rejected"]:
            reason, n = max(c["rejected"].items(), key=lambda kv: kv[1])
            example = next((r for r in rejects if r["reason"] == reason
                            and r["record"].get("metadata", {}).get("leaf") == leaf), None)
            shown = ((example["record"].get("question") or example["record"].get("raw")) if example else "")
            console.print(f"[yellow]{leaf}: every {'generated ' if c['kept'] else ''}candidate was rejected; "
                          f"most by '{reason}' ({n}), e.g. {str(shown)[:160]!r} "
                          f"{example['detail'] if example else ''}[/]", highlight=False)
            cause = likely_cause(reason, counts.get("teacher_server"))
            if cause:
                console.print(f"[yellow]  {cause}[/]", highlight=False)
    if counts.get("teacher_server"):
        console.print(server_line(counts["teacher_server"]), highlight=False)
    fallback = text_fallback_line(counts.get("judge_methods") or {})
    if fallback:
        console.print(f"[yellow]{fallback}[/]", highlight=False)
    if counts.get("retried"):
        console.print(f"recovered {counts['recovered']} of the {counts['retried']} candidates whose requests "
                      f"had failed in the previous run (every other request came from the cache)"
                      + ("" if counts["recovered"] == counts["retried"] else
                         "; the rest failed again: run generate again once the server is healthy"),
                      highlight=False)
    util = counts.get("teacher_utilisation")
    given = counts["chunk_samples"] + counts["seed_samples"]
    console.print(f"generate: {counts['samples']} samples ({counts['samples'] - given} generated, "
                  f"{counts['chunk_samples']} document chunks, {counts['seed_samples']} seed Q&A; "
                  f"{counts['rejected']} candidates rejected) in {counts['wall_seconds']:.0f}s"
                  + (f", teacher busy {util:.0%} of the time" if util is not None else ""), highlight=False)
    sent = from_counts(counts)
    if sent is not None:  # in the terms of `generate --dry-run`, measured at the backends
        console.print(f"sent to the teacher and judge: {traffic_line(sent, cfg.backend.price_per_million_tokens)}",
                      highlight=False)
    if note := leaf_subset_note(manifest):
        console.print(f"[yellow]{note}[/]", highlight=False)


def leaf_subset_note(manifest: dict[str, Any] | None) -> str | None:
    """Said when generate ran on `--leaf` alone: its outputs replace the last run's, so every
    later stage sees those leaves and no other."""
    pattern = ((manifest or {}).get("config") or {}).get("leaf_pattern")
    if not pattern:
        return None
    leaves = len(manifest["counts"]["by_leaf"])
    return (f"generate ran on --leaf {pattern!r} alone: its outputs hold those {leaves} leaves and no other, "
            f"and curate, mix and training see only them; a plain `alignlab generate` covers every leaf "
            f"(answers already given come from the request cache)")
