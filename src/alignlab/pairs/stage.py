"""`alignlab pairs`: preference pairs from a ladder of models, no human labels.

    alignlab pairs -c alignlab.yaml

Prompts are drawn from the curated training data (held-in skill and knowledge questions, never
evaluation sets), spread evenly over the leaves. Every rung of `pairs.ladder` (a model and how
it answers, see pairs/rungs.py) answers every prompt (batched, through the request cache, so a
killed run resumes); every (stronger, weaker) rung pair gives a pair with its gap and
difficulty; the judge checks each in both orders and drops those it confidently reverses. A
share of the prompts is held out: their pairs measure reward accuracy after `alignlab align`
and are never trained on, and the judge grades every rung's answers to them, so each rung's
own quality is measured (`pairs.quality`).

Writes `runs/<name>/pairs/`: `pairs.jsonl`, `heldout_pairs.jsonl`, `rejects.jsonl`,
`agreement.json` (ladder vs judge per rung pair), `rungs.json` (each rung's measured quality),
`counts.json`; the pairs as a Hugging Face dataset (`dataset/`) and Parquet with a dataset card
(`parquet/`, see pairs/export.py); `manifest.json` last.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from alignlab.artefacts import COUNTS, HELDOUT_PAIRS, PAIRS, REJECTS, SAMPLES
from alignlab.config import Config
from alignlab.errors import AlignlabError
from alignlab.llm import GenerationParams, release_local_backends
from alignlab.llm.types import Backend
from alignlab.models import StageModels
from alignlab.pairs.answers import rung_answers, two_samples
from alignlab.pairs.export import export_pairs, taxonomy_license
from alignlab.pairs.construct import construct_pairs
from alignlab.pairs.feedback import ai_feedback_pairs
from alignlab.pairs.quality import rung_quality
from alignlab.pairs.revise import revision_pairs
from alignlab.pairs.rungs import Rung, parse_rung
from alignlab.pairs.verify import verify_pairs
from alignlab.records import Pair, Reject, Sample, stable_id
from alignlab.stage import finished_stage, start_stage, upstream
from alignlab.store import read_samples, write_json, write_jsonl


def resolve_rung(cfg: Config, rung: str) -> str:
    """A ladder entry as a model spec: run-relative names become the models they stand for."""
    from alignlab.train.phases import selected_checkpoint, trained_model

    if rung == "teacher":
        return cfg.models.teacher
    if rung == "student":
        return cfg.models.student
    if rung == "sft":
        return str(trained_model(cfg))
    if rung.startswith("student:"):
        return str(selected_checkpoint(cfg, rung.split(":", 1)[1]))
    return rung


def _needs_training(ladder: list[Rung]) -> bool:
    return any(r.model == "sft" or r.model.startswith("student:") for r in ladder)


def resolve_ladder(cfg: Config) -> tuple[list[Rung], list[str], list[str]]:
    """The rungs with their model specs and labels (model id + settings); a rung naming the
    same model with the same settings as a stronger one is the same rung, kept once (e.g.
    teacher and student when both are the embedded model)."""
    seen: dict[str, tuple[Rung, str]] = {}
    for text in cfg.pairs.ladder:
        rung = parse_rung(text)
        spec = resolve_rung(cfg, rung.model)
        seen.setdefault(rung.label(cfg.model_id(spec)), (rung, spec))
    labels = list(seen)
    rungs, specs = [r for r, _ in seen.values()], [spec for _, spec in seen.values()]
    if len(rungs) < 2:
        raise AlignlabError(f"pairs.ladder {cfg.pairs.ladder} names a single model ({labels[0]}); a ladder needs "
                            f"at least two different rungs, e.g. add 'sft(temperature=1.2)' or 'student'")
    return rungs, specs, labels


def chunk_texts(samples: list[Sample]) -> dict[str, str]:
    """Document chunks by id: the knowledge-infusion samples carry each chunk's text."""
    return {str(s.metadata["chunk_id"]): s.response for s in samples if s.unmask and s.metadata.get("chunk_id")}


def choose_prompts(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """Up to `n` distinct instructions, round-robin over the leaves (seeded order within each),
    so every leaf is represented before any leaf gets a second prompt."""
    by_leaf: dict[str, list[Sample]] = defaultdict(list)
    seen: set[str] = set()
    for s in samples:
        if not s.unmask and s.instruction.strip() and s.instruction not in seen:
            seen.add(s.instruction)
            by_leaf[str(s.metadata.get("leaf", ""))].append(s)
    rng = random.Random(seed)
    queues = []
    for leaf in sorted(by_leaf):
        rows = sorted(by_leaf[leaf], key=lambda s: s.id)
        rng.shuffle(rows)
        queues.append(rows)
    chosen: list[Sample] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def split_heldout(pairs: list[Pair], heldout: set[int]) -> tuple[list[Pair], list[Pair]]:
    train = [p for p in pairs if p.metadata["prompt_index"] not in heldout]
    return train, [p for p in pairs if p.metadata["prompt_index"] in heldout]


def pairs_stage(cfg: Config, *, force: bool = False, console: Console | None = None,
                backends: dict[str, Backend] | None = None) -> dict[str, Any]:
    """Build, verify and split the pairs; `backends` maps resolved specs to ready backends (tests)."""
    console = console or Console()
    s = cfg.pairs
    rungs, ladder, labels = resolve_ladder(cfg)
    inputs = {"curate": upstream(cfg, "curate")}
    if _needs_training(rungs):
        inputs["train"] = upstream(cfg, "train")
    run = start_stage(cfg, "pairs", inputs=inputs, code=(__name__,),
                      settings={"pairs": s.model_dump(mode="json"), "ladder": labels,
                                "judge": cfg.model_id(cfg.judge), "seed": cfg.seed}, force=force)
    if run.done:
        return run.manifest
    curated = read_samples(finished_stage(cfg, "curate").file(SAMPLES))
    samples = choose_prompts(curated, s.max_prompts, cfg.seed)
    if len(samples) < 2:
        raise AlignlabError(f"pairs: the curated data holds {len(samples)} usable prompt(s); at least 2 "
                            f"are needed (see runs/{cfg.name}/curate/counts.json for what curation removed)")
    prompts = [[m for m in s_.messages if m["role"] != "assistant"] for s_ in samples]
    meta = [{"leaf": x.metadata.get("leaf"), "leaf_kind": x.metadata.get("leaf_kind"), "source_sample": x.id,
             **({"chunk_id": x.metadata["chunk_id"]} if x.metadata.get("chunk_id") else {})} for x in samples]
    by_id = chunk_texts(curated)
    chunks = [by_id.get(str(m.get("chunk_id"))) for m in meta]

    models = StageModels(cfg, given=backends or {})
    backend = models.backend
    params = GenerationParams(max_tokens=s.max_tokens, seed=cfg.seed)
    with console.status(f"pairs: {len(ladder)} rungs answer {len(prompts)} prompts"):
        answers = [rung_answers(backend(spec), rung, prompts, chunks, params) for rung, spec in zip(rungs, ladder)]
    heldout = _heldout_prompts(cfg, len(prompts))
    judge = backend(cfg.judge)
    with console.status(f"pairs: the judge grades every rung on {len(heldout)} held-out prompts"):
        quality = rung_quality(judge, labels, prompts, answers, sorted(heldout), chunks)
    pairs, rejects = construct_pairs(prompts, answers, labels, prompt_metadata=meta)
    agreement: dict[str, Any] = {}
    if s.verify and pairs:
        with console.status(f"pairs: the judge compares {len(pairs)} pairs in both orders"):
            verified = verify_pairs(judge, pairs, s.verify_margin, chunks=by_id if s.evidence else None,
                                    evidence_margin=s.evidence_margin)
        pairs, rejects = verified.kept, rejects + verified.rejected
        agreement = {f"{k[0]}>{k[1]}": v.to_dict() for k, v in verified.agreement.items()}
    if s.ai_feedback:
        first, second = two_samples(backend(ladder[0]), prompts, replace(params, temperature=0.8))
        more, dropped = ai_feedback_pairs(judge, prompts, first, second, model=labels[0],
                                          threshold=s.ai_feedback_threshold, prompt_metadata=meta)
        pairs, rejects = pairs + more, rejects + dropped
    if s.revise:
        more, dropped = revision_pairs(backend(ladder[0]), prompts, answers[-1], answer_model=labels[-1],
                                       params=params, prompt_metadata=meta)
        pairs, rejects = pairs + more, rejects + dropped
    models.close()
    release_local_backends()

    train, held = split_heldout(pairs, heldout)
    write_jsonl(run.dir.file(PAIRS), train)
    write_jsonl(run.dir.file(HELDOUT_PAIRS), held)
    write_jsonl(run.dir.file(REJECTS), rejects)
    write_json(run.dir.file("agreement.json"), agreement)
    write_json(run.dir.file("rungs.json"), quality)
    counts = summarise(train, held, rejects, len(prompts), labels)
    write_json(run.dir.file(COUNTS), counts)
    exported = export_pairs(run.dir.path, train, held, counts=counts, agreement=agreement, rungs=quality,
                            license=s.license or taxonomy_license(cfg.taxonomy_path), name=cfg.name)
    return run.finish(counts, extra={"agreement": agreement, "rungs": quality, "exported": exported})


def _heldout_prompts(cfg: Config, n: int) -> set[int]:
    rng = random.Random(stable_id("heldout", cfg.seed))
    order = list(range(n))
    rng.shuffle(order)
    return set(order[:max(1, round(cfg.pairs.heldout_fraction * n))] if cfg.pairs.heldout_fraction else [])


def summarise(train: list[Pair], held: list[Pair], rejects: list[Reject], prompts: int,
              ladder: list[str]) -> dict[str, Any]:
    by_difficulty = Counter(round(float(p.metadata.get("difficulty", 0)), 3) for p in train)
    return {"prompts": prompts, "ladder": ladder, "pairs": len(train), "heldout_pairs": len(held),
            "rejected": len(rejects), "by_reason": dict(Counter(r.reason for r in rejects)),
            "by_difficulty": {str(k): v for k, v in sorted(by_difficulty.items())},
            "by_generator": dict(Counter(p.metadata.get("generator", "ladder") for p in train + held))}


def print_rungs(console: Console, rungs: list[dict[str, Any]]) -> None:
    """Each rung's measured quality on the held-out prompts; a rung scoring above the rung
    above it is flagged, since the ladder assumed the opposite."""
    table = Table(title="pairs: each rung's quality on the held-out prompts (judge, 1-5)", title_justify="left")
    for col in ("rung", "prompts", "quality", "95% interval", "degenerate", "order"):
        table.add_column(col, justify="left" if col in ("rung", "order") else "right")
    for row in rungs:
        low, high = row.get("quality_low"), row.get("quality_high")
        below = row.get("below_rung_above")
        table.add_row(f"{row['rung']}: {row['model']}", str(row["prompts"]),
                      "-" if row["quality"] is None else f"{row['quality']:.2f}",
                      "-" if low is None else f"{low:.2f} to {high:.2f}", str(row["degenerate"]),
                      "" if below is None else ("as assumed" if below else "[yellow]above the rung above[/]"))
    console.print(table)


def print_summary(console: Console, cfg: Config, manifest: dict[str, Any]) -> None:
    counts, agreement = manifest["counts"], manifest.get("agreement", {})
    if manifest.get("rungs"):
        print_rungs(console, manifest["rungs"])
    if agreement:
        table = Table(title="pairs: does the evidence (knowledge, the chunk's support) or the judge (the rest) "
                            "agree with the ladder?", title_justify="left")
        for col in ("chosen rung", "rejected rung", "pairs", "by evidence", "agree", "disagree", "dropped",
                    "unreadable", "agreement"):
            table.add_column(col, justify="left" if "rung" in col else "right")
        for row in agreement.values():
            rate = row["agreement"]
            table.add_row(f"{row['chosen_rung']}: {row['chosen_model']}", f"{row['rejected_rung']}: "
                          f"{row['rejected_model']}", str(row["pairs"]), str(row.get("by_evidence", 0)),
                          str(row["agree"]), str(row["disagree"]),
                          str(row["dropped"]), str(row["unreadable"]), "-" if rate is None else f"{rate:.0%}")
        console.print(table)
    reasons = ", ".join(f"{r} {n}" for r, n in counts["by_reason"].items()) or "none"
    console.print(f"pairs: {counts['pairs']} for training, {counts['heldout_pairs']} held out, from "
                  f"{counts['prompts']} prompts; rejected {counts['rejected']} ({reasons}); by difficulty "
                  f"{counts['by_difficulty']}", highlight=False)
