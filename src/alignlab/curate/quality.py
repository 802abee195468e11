"""Quality threshold (AlpaGasus): keep a sample only when its judge score reaches the threshold.

The score is `metadata.judges[<judge>].score`, written by the generate stage. A sample without
one is judged here, once, in one batch through the request cache (so a re-run never asks
again), and the new score goes into its lineage. Document chunks (`unmask: true`) are the
source text itself and are exempt.
"""

from __future__ import annotations

from alignlab.curate.config import QualityStep
from alignlab.curate.steps import KEEP, StepContext, Verdict
from alignlab.records import Sample
from alignlab.sdg.judges import Judgement, JudgeSpec, judge_requests, read_score
from alignlab.sdg.templates import load_template


def judge_score(sample: Sample, judge: str) -> float | None:
    entry = (sample.metadata.get("judges") or {}).get(judge)
    score = entry.get("score") if isinstance(entry, dict) else entry
    return float(score) if isinstance(score, (int, float)) else None


def judge_items(samples: list[Sample]) -> list[dict[str, str]]:
    """The variables judge templates use, for each sample."""
    return [{"question": s.instruction, "answer": s.response,
             "context": str(s.metadata.get("context") or ""),
             "task_description": str(s.metadata.get("task_description") or "")} for s in samples]


def with_judgement(sample: Sample, judge: str, lineage: dict) -> Sample:
    judges = {**(sample.metadata.get("judges") or {}), judge: lineage}
    return Sample(sample.id, sample.messages, sample.unmask, {**sample.metadata, "judges": judges})


def quality(samples: list[Sample], settings: QualityStep, ctx: StepContext) -> list[Verdict]:
    scored = list(samples)
    missing = [i for i, s in enumerate(samples) if not s.unmask and judge_score(s, settings.judge) is None]
    if missing:
        spec = JudgeSpec(settings.judge, settings.template_name, settings.scale)
        template_hash = load_template(spec.template).hash
        backend = ctx.backend(settings.models(ctx.cfg)["judge"])
        advance = ctx.track(f"judging {settings.judge}", total=len(missing))
        # run_judge's batch, with a callback per answer so the bar moves as judging goes.
        responses = backend.generate(judge_requests(spec, judge_items([samples[i] for i in missing])),
                                     on_done=lambda _i, _r: advance())
        judgements = [read_score(r.choices[0], spec.scale) if r.ok
                      else Judgement(None, "failed", raw=r.error or "") for r in responses]
        for i, judgement in zip(missing, judgements):
            lineage = {**judgement.lineage(backend.model_id, template_hash), "stage": "curate"}
            if judgement.score is None:
                lineage["raw"] = judgement.raw[:200]  # what the judge said instead of a score
            scored[i] = with_judgement(samples[i], settings.judge, lineage)

    verdicts = []
    for original, sample in zip(samples, scored):
        changed = sample if sample is not original else None
        if sample.unmask:
            verdicts.append(KEEP)
            continue
        score = judge_score(sample, settings.judge)
        if score is None:
            entry = sample.metadata["judges"][settings.judge]
            verdicts.append(Verdict(False, "unscored", {"judge": settings.judge, "method": entry.get("method", ""),
                                                        "raw": entry.get("raw", "")}, sample=changed))
        elif score < settings.threshold:
            verdicts.append(Verdict(False, "low_quality",
                                    {"judge": settings.judge, "score": round(score, 4),
                                     "threshold": settings.threshold}, sample=changed))
        else:
            verdicts.append(Verdict(True, sample=changed))
    return verdicts
