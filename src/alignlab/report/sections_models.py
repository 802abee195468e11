"""The report's sections about the models: training curves per phase, evaluation before and
after each phase (with forgetting and win rates), preference pairs and alignment, and the final
base -> SFT -> aligned comparison."""

from __future__ import annotations

import re
from typing import Any

from alignlab.evaluate.summary import ALL, result_rows
from alignlab.report import plots
from alignlab.report.blocks import (Cell, Heading, Section, Table, Text, delta, fmt, leaf, measured, num,
                                    rate, short_model, text, truncate)
from alignlab.report.load import ALIGNED, RunData
from alignlab.stats import format_delta, paired_items, significant

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def checkpoints(scores: dict[str, Any] | None) -> list[tuple[int, str, float | None]]:
    """(step, name, score) of every scored checkpoint, by step."""
    out = []
    for name, score in (scores or {}).items():
        if m := _CHECKPOINT.search(name):
            out.append((int(m.group(1)), name, score if isinstance(score, int | float) else None))
    return sorted(out)


# ---------------------------------------------------------------- 6. training

def training(run: RunData) -> Section:
    title = "Training"
    if not run.train_phases:
        return Section.missing("training", title, run.why_missing("train"))
    section = Section("training", title, [Text(
        "Loss and learning rate per optimizer step. Dotted lines mark the scored checkpoints; the solid "
        "orange line is the checkpoint each phase selected and handed to the next.")])
    for phase in run.train_phases:
        name = phase["phase"]
        metrics = run.train_metrics.get(name) or []
        samples = phase.get("samples") or {}
        select_by = phase.get("select_by")
        order = "lower is better" if phase.get("lower_is_better") else "higher is better"
        skipped = sum((phase.get("skipped") or {}).values())
        speeds = [m["tokens_per_s"] for m in metrics if isinstance(m.get("tokens_per_s"), int | float)]
        section.blocks += [Heading(f"Phase {name}"), Table(
            ["start", "method", "epochs", "trained", "validation", "skipped", "steps", "last loss", "tokens/s"],
            [[short_model(phase.get("start")), text(phase.get("method")), num(phase.get("epochs")),
              num(samples.get("trained")), num(samples.get("validation")), num(skipped),
              text(f"{fmt(phase.get('steps'))} / {fmt(phase.get('total_steps'))}", "num"),
              num(phase.get("last_loss")), num(sum(speeds) / len(speeds) if speeds else None, 0)]])]
        if not phase.get("finished", True):
            section.blocks.append(Text(f"Phase {name} has not finished: the curves stop at its last logged step.",
                                       "note"))
        marks = checkpoints(phase.get("scores"))
        if metrics:
            section.blocks.append(plots.curves(
                metrics, [("loss", ["loss"]), ("learning rate", ["lr"])], marks, phase.get("selected"),
                f"Loss and learning rate of phase {name}"))
        else:
            section.blocks.append(Text(f"No optimizer step logged for phase {name}.", "note"))
        if marks:
            section.blocks.append(Table(
                ["checkpoint", "step", f"{select_by or 'score'} ({order})", "selected"],
                [[text(ckpt), num(step), num(score, 4, "selected" if ckpt == phase.get("selected") else ""),
                  Cell("✓ selected", "selected") if ckpt == phase.get("selected") else text("")]
                 for step, ckpt, score in marks], caption=f"Checkpoints of phase {name}"))
    return section


# ---------------------------------------------------------------- 7. evaluation

def headline(result: dict[str, Any]) -> dict[str, tuple[Any, Any, dict[str, float]]]:
    """The few numbers that sum a model up: overall accuracies and the mean judged score, each
    as (value, 95 % interval, {item: value}) so two models can be compared on the same items."""
    out: dict[str, tuple[Any, Any, dict[str, float]]] = {}

    def add(name: str, stats: dict[str, Any], key: str) -> None:
        out[name] = (stats.get(key), stats.get(f"{key}_ci"), (stats.get("per_item") or {}).get(key) or {})

    for section, name in (("mcq", "knowledge MCQ"), ("general", "general MCQ")):
        if summary := result.get(section):
            metric = summary.get("headline", "acc")
            add(f"{name} {metric}", summary.get("overall") or {}, metric)
    if judged := result.get("judged"):
        scale = judged.get("scale") or [1, 5]
        add(f"judged score {scale[0]}-{scale[1]}", judged.get("overall") or {}, "mean_score")
    for task, metrics in (result.get("lm_eval") or {}).items():
        for metric in ("acc", "acc_norm", "exact_match"):
            if metric in metrics:
                out[f"{task} {metric}"] = (metrics[metric], None, {})
                break
    return out


def _paired_change(metric: str, before: tuple[Any, Any, dict[str, float]] | None,
                   after: tuple[Any, Any, dict[str, float]] | None) -> Cell:
    if before is None or after is None:
        return delta(None)
    paired = paired_items(before[2], after[2])
    if paired is None:
        a, b = before[0], after[0]
        return delta(b - a if a is not None and b is not None else None)
    return _change({"metric": metric.split()[-1], "paired": paired})


def _results_table(results: dict[str, dict[str, Any]], caption: str) -> Table:
    per_model = {label: result_rows(r) for label, r in results.items()}
    keys = list(dict.fromkeys(k for rows in per_model.values() for k in rows))
    rows = [[text(metric), leaf(name) if name != ALL else text(name, "muted"),
             *[measured(*r.get((metric, name), (None, None))) for r in per_model.values()]]
            for metric, name in keys]
    return Table(["metric", "leaf / task", *per_model], rows, caption=f"{caption} (with 95 % intervals)")


def _change(row: dict[str, Any]) -> Cell:
    """The change, its interval and paired test; coloured only when the interval excludes zero."""
    paired = row.get("paired")
    if not paired:
        return delta(row.get("delta"))
    cls = {1: "gain", -1: "loss", 0: ""}[significant(paired)]
    points = str(row.get("metric", "")).endswith(("acc", "acc_norm"))
    return text(format_delta(paired, points=points), f"num nowrap {cls}".strip())


def _forgetting_table(rows: list[dict[str, Any]], before: str, after: str) -> Table:
    return Table(["metric", "leaf", before, after, "change [95 % CI], paired test"],
                 [[text(r.get("metric")), leaf(r.get("leaf") or "?") if r.get("leaf") != ALL else text(ALL, "muted"),
                   num(r.get("before")), num(r.get("after")), _change(r)] for r in rows],
                 caption=f"{before} → {after} on the same items (green: a gain whose 95 % interval lies above zero, "
                         f"red: a loss below it; a change whose interval crosses zero is not coloured)")


def _win_rate_cell(s: dict[str, Any]) -> Cell:
    """Coloured when the win rate's interval excludes 0.5 (a real preference, not a coin)."""
    ci = s.get("win_rate_ci")
    cls = "" if not ci else "gain" if ci[0] > 0.5 else "loss" if ci[1] < 0.5 else ""
    return measured(s.get("win_rate"), ci, cls, percent=True)


def _win_rates(comparisons: list[dict[str, Any]]) -> Table | None:
    rows = []
    for c in comparisons:
        a, b = (c.get("a") or {}).get("label"), (c.get("b") or {}).get("label")
        by_leaf = dict(c.get("by_leaf") or {})
        by_leaf[ALL] = c.get("overall") or {}
        for name, s in by_leaf.items():
            rows.append([text(f"{a} vs {b}", "nowrap"), leaf(name) if name != ALL else text(ALL, "muted"),
                         num(s.get("n")), num(s.get("wins")), num(s.get("ties")), num(s.get("losses")),
                         num(s.get("unparseable")),
                         _win_rate_cell(s)])
    if not rows:
        return None
    return Table(["comparison", "leaf", "prompts", "wins", "ties", "losses", "unparseable", "win rate"], rows,
                 caption="Pairwise win rate judged by the teacher (both answer orders asked; green when the 95 % "
                         "interval lies above 0.5, red when below)")


def evaluation(run: RunData) -> Section:
    title = "Evaluation before and after each phase"
    sft = run.eval_sft
    labels = list((sft or {}).get("models") or [label for label in run.eval_results if label != ALIGNED])
    results = {label: run.eval_results[label] for label in labels if label in run.eval_results}
    if not results:
        return Section.missing("evaluation", title, run.why_missing("eval"))
    section = Section("evaluation", title, [_results_table(results, "Every model on every evaluation")])
    if sft is None:
        section.blocks.append(Text("eval/sft.json is missing: the forgetting tables need the whole progression.",
                                   "note"))
        return section
    for key, rows in (sft.get("forgetting") or {}).items():
        before, _, after = key.partition("->")
        section.blocks.append(_forgetting_table(rows, before, after))
    if table := _win_rates(sft.get("comparisons") or []):
        section.blocks.append(table)
    return section


# ---------------------------------------------------------------- 8. pairs and alignment

def _difficulty_key(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")


def _ladder_table(ladder: list[str], measured: list[dict[str, Any]]) -> Table:
    """The ladder, with each rung's quality as the judge measured it on the held-out prompts."""
    by_rung = {row.get("rung"): row for row in measured}
    rows = []
    for i, model in enumerate(ladder):
        q = by_rung.get(i, {})
        low, high = q.get("quality_low"), q.get("quality_high")
        rows.append([num(i), short_model(model, 80), num(q.get("quality"), 2),
                     text(None if low is None else f"{low:.2f} to {high:.2f}"), num(q.get("degenerate"))])
    return Table(["rung", "model", "quality (1-5)", "95% interval", "degenerate answers"], rows,
                 caption="The ladder, strongest first, each rung graded by the judge on the held-out prompts")


def pairs(run: RunData) -> Section:
    title = "Preference pairs and alignment"
    counts = run.pairs_counts
    if counts is None:
        return Section.missing("pairs", title, run.why_missing("pairs"))
    ladder = counts.get("ladder") or []
    by_reason = counts.get("by_reason") or {}
    section = Section("pairs", title, [
        Text("Pairs come from answering the same prompts with a ladder of models: the stronger rung's answer is "
             "chosen, the weaker's rejected. Difficulty grows as the rungs get closer."),
        Table(["prompts", "pairs", "held-out pairs", "rejected", "why"],
              [[num(counts.get("prompts")), num(counts.get("pairs")), num(counts.get("heldout_pairs")),
                num(counts.get("rejected")), text(", ".join(f"{r} ({n})" for r, n in by_reason.items()))]]),
        _ladder_table(ladder, (run.manifest("pairs") or {}).get("rungs") or [])])
    difficulty = dict(sorted((counts.get("by_difficulty") or {}).items(), key=lambda kv: _difficulty_key(kv[0])))
    if difficulty:
        section.blocks.append(plots.counts_bars(difficulty, "difficulty (higher is harder)",
                                                "Number of training pairs per difficulty"))
    if agreement := run.pairs_agreement:
        rows = [[text(key), short_model(a.get("chosen_model"), 30), short_model(a.get("rejected_model"), 30),
                 num(a.get("pairs")), num(a.get("by_evidence")), num(a.get("agree")), num(a.get("disagree")),
                 num(a.get("dropped")),
                 num(a.get("unreadable")), rate(a.get("agreement")), num(a.get("mean_p_chosen"))]
                for key, a in agreement.items()]
        section.blocks.append(Table(
            ["rungs", "chosen model", "rejected model", "pairs", "by evidence", "agree", "disagree", "dropped",
             "unreadable", "agreement", "mean p(chosen)"], rows,
            caption="Does the evidence agree with the ladder? Per rung pair: knowledge pairs by which answer "
                    "the source chunk supports, the others by the judge in both orders"))
    section.blocks += _pair_examples(run)
    section.blocks += _alignment(run)
    return section


def _pair_examples(run: RunData) -> list[Any]:
    shown: dict[Any, dict[str, Any]] = {}
    for pair in run.pair_examples:
        shown.setdefault((pair.get("metadata") or {}).get("difficulty"), pair)
    if not shown:
        return []
    def last(messages: Any) -> str:
        return str(messages[-1].get("content", "")) if isinstance(messages, list) and messages else ""
    rows = [[num(d, 2), leaf((p.get("metadata") or {}).get("leaf") or "?"),
             text(truncate(last(p.get("prompt")), 200), "text"), text(truncate(last(p.get("chosen")), 200), "text"),
             text(truncate(last(p.get("rejected")), 200), "text")]
            for d, p in sorted(shown.items(), key=lambda kv: _difficulty_key(str(kv[0])))]
    return [Table(["difficulty", "leaf", "prompt", "chosen", "rejected"], rows, cls="examples",
                  caption="One example pair per difficulty")]


def _alignment(run: RunData) -> list[Any]:
    manifest = run.manifest("align")
    if manifest is None and not run.align_metrics:
        return [Heading("Alignment"), Text(run.why_missing("align"), "note")]
    c = (manifest or {}).get("counts") or {}
    before, after = c.get("heldout_reward_accuracy_before"), c.get("heldout_reward_accuracy")
    # KTO trains on single answers marked desirable or not; the paired losses on pairs.
    data = (text(f"{c['desirable']} desirable + {c.get('undesirable', 0)} undesirable answers "
                  f"({c.get('unpaired_from')})") if "desirable" in c else num(c.get("pairs")))
    blocks: list[Any] = [Heading("Alignment"), Table(
        ["loss", "order", "trained on", "steps", "selected", "held-out reward accuracy before", "after", "change"],
        [[text(c.get("loss")), text(c.get("order")), data,
          num(c.get("steps")), text(c.get("selected"), "selected"), rate(before), rate(after),
          delta(after - before if before is not None and after is not None else None)]],
        caption="Reward accuracy: the share of held-out pairs whose chosen answer gets the higher reward, "
                "as the loss defines it (β·log π/π_ref for dpo/ipo/hinge/kto, the policy's own "
                "log-probability for slic and sft, per token for simpo/orpo)")]
    if manifest is None:
        blocks.append(Text("The align stage has not finished: the curves stop at its last logged step.", "note"))
    if run.align_metrics:
        last_panel = (("KTO reference point z (KL estimate)", ["kl"]) if "kl" in run.align_metrics[0]
                      else ("curriculum difficulty", ["difficulty"]))
        blocks.append(plots.curves(
            run.align_metrics,
            [("loss", ["loss"]), ("rewards", ["rewards/chosen", "rewards/rejected", "rewards/margin"]),
             ("reward accuracy (training batch)", ["rewards/accuracy"]), last_panel],
            checkpoints(run.align_scores), c.get("selected"),
            "Alignment loss, rewards, reward accuracy and difficulty"))
    return blocks


# ---------------------------------------------------------------- 9. final comparison

def final(run: RunData) -> Section:
    title = "Base → SFT → aligned"
    summary = run.eval_aligned or run.eval_sft
    if summary is None:
        return Section.missing("final", title, run.why_missing("eval-aligned"))
    labels = list(summary.get("models") or [])
    if run.eval_aligned is None:  # only the SFT progression: its first and last model
        labels = labels[:1] + labels[-1:] if len(labels) > 1 else labels
    results = {label: (summary.get("results") or {}).get(label) or run.eval_results.get(label) for label in labels}
    results = {label: r for label, r in results.items() if r}
    if not results:
        return Section.missing("final", title, run.why_missing("eval-aligned"))
    per_model = {label: headline(r) for label, r in results.items()}
    metrics = list(dict.fromkeys(m for h in per_model.values() for m in h))
    first, last = labels[0], labels[-1]
    rows = []
    for metric in metrics:
        cells = [measured(*per_model[label][metric][:2]) if metric in per_model[label] else measured(None)
                 for label in per_model]
        rows.append([text(metric), *cells,
                     _paired_change(metric, per_model[first].get(metric), per_model[last].get(metric))])
    values = {m: [(per_model[label].get(m) or (None,))[0] for label in per_model] for m in metrics}
    section = Section("final", title, [
        Table(["metric", *per_model, f"{first} → {last} [95 % CI], paired test"], rows,
              caption="Headline metrics (overall) with 95 % intervals; the middle model is the last SFT phase's "
                      "selected checkpoint"),
        plots.grouped_bars(list(per_model), values, "Headline metrics of each model")])
    if run.eval_aligned is None:
        section.blocks.append(Text("The aligned model has not been evaluated yet (the eval-aligned stage): "
                                   "shown is base → SFT only.", "note"))
    elif table := _win_rates(run.eval_aligned.get("comparisons") or []):
        section.blocks.append(table)
    return section
