"""The report's sections about the run and its data: overview, taxonomy, generation and
curation funnel, judge scores, and the phase mixes. Each returns a `Section`, or a missing one
with a one-line note when the stage it needs has not run yet."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from alignlab.report import plots
from alignlab.report.blocks import (Cell, Heading, Section, Table, Text, fmt, leaf, num, pct, rate, text,
                                    truncate)
from alignlab.report.load import ALIGNED, RunData

EXAMPLES_PER_REASON = 3


def _leaf_of(record: dict[str, Any]) -> str:
    return str((record.get("metadata") or {}).get("leaf") or "?")


# ---------------------------------------------------------------- 1. overview

def overview(run: RunData) -> Section:
    timings = _timings_table(run)
    done = sum(row[1].text == "done" for row in timings.rows)
    section = Section("overview", "Overview", [Text(f"Run {run.name} in {run.path}: {done} of "
                                                    f"{len(timings.rows)} stages finished.")])
    models = (run.config or {}).get("models") or {}
    if models:
        judge = models.get("judge")
        section.blocks.append(Table(["role", "model"], [
            [text("teacher"), text(models.get("teacher"), "model")],
            [text("judge"), text(judge if judge else f"{models.get('teacher')} (the teacher)", "model")],
            [text("student"), text(models.get("student"), "model")],
        ], caption="Models"))
    else:
        section.blocks.append(Text("No resolved config found in the run directory (no stage has started).", "note"))
    section.blocks.append(timings)
    versions: dict[str, list[str]] = defaultdict(list)
    for manifest in run.manifests.values():
        for package, version in (manifest.get("versions") or {}).items():
            if version not in versions[package]:
                versions[package].append(str(version))
    if versions:
        section.blocks.append(Table(["package", "version"],
                                    [[text(p), text(", ".join(v))] for p, v in versions.items()],
                                    caption="Versions (as recorded in the manifests)"))
    for problem in run.problems:
        section.blocks.append(Text(f"Could not read {problem}", "warn"))
    return section


def _timings_table(run: RunData) -> Table:
    evals = [k for k in [*run.manifests, *run.unfinished] if k.startswith("eval/")]
    progression = [f"eval/{label}" for label in ((run.eval_sft or {}).get("models") or {})]
    evals = sorted(evals, key=lambda k: (k == f"eval/{ALIGNED}", k not in progression,
                                         progression.index(k) if k in progression else 0, k))
    aligned = [k for k in evals if k == f"eval/{ALIGNED}"]
    keys = ["generate", "curate", "mix", "train", *([k for k in evals if k not in aligned] or ["eval"]),
            "pairs", "align", *(aligned or ["eval/aligned"])]
    rows, total = [], 0.0
    for key in dict.fromkeys(keys):
        manifest = run.manifest(key)
        if manifest:
            timings = manifest.get("timings") or {}
            seconds = timings.get("seconds")
            total += seconds or 0.0
            finished = timings.get("finished")
            when = datetime.fromtimestamp(finished, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if finished else None
            rows.append([text(key), Cell("done", "good"), text(when, "muted nowrap"), num(seconds, 1)])
        else:
            status = "not finished" if key in run.unfinished else "not run"
            rows.append([text(key), Cell(status, "bad" if key in run.unfinished else "muted"), text(None), num(None)])
    return Table(["stage", "status", "finished", "seconds"], rows, caption="Stages",
                 foot=[[text("total"), text(""), text(""), num(total, 1)]])


# ---------------------------------------------------------------- 2. taxonomy

def leaf_kinds(run: RunData) -> dict[str, str]:
    kinds: dict[str, str] = {}
    records = [s.metadata for s in run.samples] + [(r.get("record") or {}).get("metadata") or {}
                                                  for r in run.generate_rejects]
    for meta in records:
        if meta.get("leaf") and meta.get("leaf_kind"):
            kinds.setdefault(meta["leaf"], meta["leaf_kind"])
    return kinds


def all_leaves(run: RunData) -> list[str]:
    phases = ((run.mix_summary or {}).get("phases") or {}).values()
    return sorted({*((run.generate_counts or {}).get("by_leaf") or {}),
                   *((run.curate_counts or {}).get("by_leaf") or {}),
                   *(leaf for phase in phases for leaf in (phase.get("leaves") or {}))})


def taxonomy(run: RunData) -> Section:
    title = "Taxonomy"
    if run.generate_counts is None:
        return Section.missing("taxonomy", title, run.why_missing("generate") + " Leaves are counted from its outputs.")
    kinds = leaf_kinds(run)
    generated = run.generate_counts.get("by_leaf") or {}
    curated = (run.curate_counts or {}).get("by_leaf") or {}
    phases = (run.mix_summary or {}).get("phases") or {}
    columns = ["leaf", "kind", "accepted", "rejected", "curated"] + [f"mix: {p}" for p in phases]
    rows, totals = [], [None] * (len(columns) - 2)
    for name in all_leaves(run):
        g = generated.get(name) or {}
        values = [g.get("kept", 0), sum((g.get("rejected") or {}).values()),
                  (curated.get(name) or {}).get("out") if run.curate_counts else None,
                  *[(p.get("leaves") or {}).get(name, 0) for p in phases.values()]]
        totals = [v if t is None else t if v is None else t + v for t, v in zip(totals, values)]
        rows.append([leaf(name), text(kinds.get(name), "muted"), *[num(v) for v in values]])
    foot = [[text("all leaves"), text(""), *[num(t) for t in totals]]]
    section = Section("taxonomy", title, [
        Text("Every leaf the run generated data for: candidates the teacher's judges accepted and rejected, "
             "samples left after curation, and rows each training phase drew from it."),
        Table(columns, rows, foot=foot)])
    if run.curate_counts is None:
        section.blocks.append(Text(run.why_missing("curate"), "note"))
    return section


# ---------------------------------------------------------------- 3. funnel

def _reasons(run: RunData) -> list[tuple[str, str, int, dict[str, int]]]:
    """(stage, reason, rows, {leaf: rows}) for every rejection reason of generate and curate."""
    out = []
    generate = run.generate_counts or {}
    for reason, n in (generate.get("by_reason") or {}).items():
        per_leaf = {name: c["rejected"].get(reason, 0) for name, c in (generate.get("by_leaf") or {}).items()}
        out.append(("generate", reason, n, {k: v for k, v in per_leaf.items() if v}))
    for step in (run.curate_counts or {}).get("steps") or []:
        for reason, n in (step.get("by_reason") or {}).items():
            per_leaf = {name: (c.get("rejected") or {}).get(reason, 0)
                        for name, c in (step.get("by_leaf") or {}).items()}
            out.append((f"curate: {step['step']}", reason, n, {k: v for k, v in per_leaf.items() if v}))
    return out


def funnel(run: RunData) -> Section:
    title = "Generation and curation funnel"
    if run.generate_counts is None:
        return Section.missing("funnel", title, run.why_missing("generate"))
    generated = run.generate_counts.get("by_leaf") or {}
    steps = (run.curate_counts or {}).get("steps") or []
    leaves = sorted({*generated, *((run.curate_counts or {}).get("by_leaf") or {})})
    columns = ["leaf", "generated", "accepted", *[f"after {s['step']}" for s in steps], "kept"]
    rows, kept = [], []
    for name in leaves:
        g = generated.get(name) or {}
        accepted = g.get("kept", 0)
        total = accepted + sum((g.get("rejected") or {}).values())
        after = [((s.get("by_leaf") or {}).get(name) or {}).get("kept", 0) for s in steps]
        final = after[-1] if after else accepted
        kept.append(final)
        rows.append([leaf(name), num(total), num(accepted), *[num(a) for a in after],
                     rate(final / total if total else None)])
    section = Section("funnel", title, [
        Text(_generate_summary(run)),
        Table(columns, rows, caption="Rows per leaf through each step ('kept' is the share that reached the mix)")])
    reasons = _reasons(run)
    if reasons:
        section.blocks.append(Table(["stage", "reason", "rows", "leaves"], [
            [text(stage), text(reason), num(n), text(", ".join(f"{k} ({v})" for k, v in per_leaf.items()), "text")]
            for stage, reason, n, per_leaf in reasons], caption="Why rows were rejected"))
        segments = {"kept": kept}
        for stage, reason, _n, per_leaf in reasons:
            segments[f"{stage.replace('curate: ', '')}: {reason}"] = [per_leaf.get(name, 0) for name in leaves]
        section.blocks.append(plots.funnel_bars(leaves, segments, "Kept and rejected rows per leaf, by reason"))
        section.blocks += _example_rejects(run)
    else:
        section.blocks.append(Text("No row was rejected.", "note"))
    return section


def _generate_summary(run: RunData) -> str:
    c = run.generate_counts or {}
    rejected, chunks = c.get("rejected", 0), c.get("chunk_samples")
    out = (f"The teacher wrote {fmt(c.get('candidates'))} candidates: {fmt(c['candidates'] - rejected)} accepted, "
           f"{fmt(rejected)} rejected." if c.get("candidates") is not None
           else f"{fmt(c.get('kept'))} rows accepted, {fmt(rejected)} rejected.")
    if chunks:
        out += f" With {fmt(chunks)} document-chunk samples, generate kept {fmt(c.get('samples', c.get('kept')))} rows."
    if c.get("teacher_utilisation") is not None and c.get("wall_seconds"):
        out += f" The teacher was busy {pct(c['teacher_utilisation'])} of {fmt(c['wall_seconds'], 1)} s."
    curated = run.curate_counts
    out += (f" Curation kept {fmt(curated.get('out'))} of {fmt(curated.get('in'))}." if curated
            else " " + run.why_missing("curate"))
    return out


def reject_text(record: dict[str, Any]) -> str:
    """The readable part of a rejected row, whatever stage wrote it."""
    if isinstance(record.get("messages"), list):
        return " | ".join(f"{m.get('role')}: {m.get('content')}" for m in record["messages"] if isinstance(m, dict))
    parts = [(k, record.get(k)) for k in ("context", "question", "answer") if record.get(k)]
    if not parts and record.get("raw"):
        parts = list((record.get("raw") or {}).items())
    return " | ".join(f"{k}: {v}" for k, v in parts) or json.dumps(record, ensure_ascii=False)[:400]


def _example_rejects(run: RunData) -> list[Any]:
    rows, seen = [], Counter()
    tagged = [("generate", r) for r in run.generate_rejects] + [(f"curate: {r.get('stage')}", r)
                                                                for r in run.curate_rejects]
    for stage, reject in tagged:
        key = (stage, reject.get("reason"))
        if seen[key] >= EXAMPLES_PER_REASON:
            continue
        seen[key] += 1
        record = reject.get("record") or {}
        full = reject_text(record)
        detail = json.dumps(reject.get("detail") or {}, ensure_ascii=False, sort_keys=True)
        rows.append([text(stage), text(reject.get("reason")), leaf(_leaf_of(record)),
                     text(truncate(full), "text", truncate(full, 2000)), text(truncate(detail, 160), "text mono")])
    if not rows:
        return []
    return [Heading("Example rejects"),
            Table(["stage", "reason", "leaf", "row", "detail"], rows, cls="examples",
                  caption=f"Up to {EXAMPLES_PER_REASON} per reason; hover a row for more of its text")]


# ---------------------------------------------------------------- 4. judges

def judge_scores(run: RunData) -> dict[str, tuple[list[float], list[float], set[str]]]:
    """{judge: (scores in accepted samples, scores in rejected candidates, methods)}."""
    out: dict[str, tuple[list[float], list[float], set[str]]] = {}
    metas = [(True, s.metadata) for s in run.samples] + [(False, (r.get("record") or {}).get("metadata") or {})
                                                         for r in run.generate_rejects]
    for accepted, meta in metas:
        for name, judged in (meta.get("judges") or {}).items():
            score = judged.get("score") if isinstance(judged, dict) else None
            if isinstance(score, int | float):
                entry = out.setdefault(name, ([], [], set()))
                entry[0 if accepted else 1].append(float(score))
                entry[2].add(str(judged.get("method") or "?"))
    return out


def judges(run: RunData) -> Section:
    title = "Judge scores"
    if run.generate_counts is None:
        return Section.missing("judges", title, run.why_missing("generate"))
    scores = judge_scores(run)
    if not scores:
        return Section.missing("judges", title, "No judge scores were recorded for this run's candidates.")
    thresholds = ((run.config or {}).get("generate") or {}).get("thresholds") or {}
    rows = []
    for name, (accepted, rejected, methods) in scores.items():
        every = accepted + rejected
        limit = thresholds.get(name)
        rows.append([text(name), text(", ".join(sorted(methods))), num(len(every)),
                     num(sum(every) / len(every), 2), num(sum(accepted) / len(accepted) if accepted else None, 2),
                     num(sum(rejected) / len(rejected) if rejected else None, 2), num(limit, 2),
                     num(sum(s < limit for s in every) if limit is not None else None)])
    return Section("judges", title, [
        Text("Scores each judge gave, read from the score tokens' probabilities (the expected score) or parsed "
             "from the text; candidates rejected for any reason carry the scores they had been given."),
        Table(["judge", "method", "scored", "mean", "mean accepted", "mean rejected", "threshold", "below"], rows),
        plots.judge_histograms({k: (a, r) for k, (a, r, _) in scores.items()}, thresholds,
                               "Histogram of judge scores per judge, accepted and rejected")])


# ---------------------------------------------------------------- 5. mixes

def mixes(run: RunData) -> Section:
    title = "Phase mixes"
    phases = (run.mix_summary or {}).get("phases")
    if not phases:
        return Section.missing("mixes", title, run.why_missing("mix"))
    section = Section("mixes", title, [Text(
        f"Rows and tokens each training phase takes from each source (tokens counted by the "
        f"{(run.mix_summary or {}).get('tokens_counted_by', 'student tokenizer')}; seed "
        f"{fmt((run.mix_summary or {}).get('seed'))}).")])
    for warning in (run.mix_summary or {}).get("warnings") or []:
        section.blocks.append(Text(str(warning), "warn"))
    for name, phase in phases.items():
        sources = phase.get("sources") or {}
        tokens = phase.get("tokens") or 0
        rows = [[text(source), text(s.get("kind"), "muted"), num(s.get("available")), text(s.get("asked")),
                 num(s.get("rows")), num(s.get("tokens")), rate(s.get("tokens", 0) / tokens if tokens else None)]
                for source, s in sources.items()]
        section.blocks.append(Table(
            ["source", "kind", "available", "asked", "rows", "tokens", "share of tokens"], rows,
            caption=f"Phase {name}" + (f" ({fmt(phase.get('unmask_rows'))} rows train on every turn)"
                                       if phase.get("unmask_rows") else ""),
            foot=[[text("total"), text(""), text(""), text(""), num(phase.get("rows")), num(tokens), text("")]]))
    section.blocks.append(plots.mix_bars(
        {name: {s: (v.get("rows", 0), v.get("tokens", 0)) for s, v in (p.get("sources") or {}).items()}
         for name, p in phases.items()}, "Rows and tokens per source in each phase"))
    return section
