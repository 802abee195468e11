"""Critique and revise (Constitutional AI): the teacher critiques each answer against one
principle, drawn at random from the configured list (seeded per sample, so the draw does not
depend on which other samples are present), then rewrites the answer to address the critique.

The revision replaces the last assistant turn; the original answer, the critique and the
principle go into the lineage (`metadata["revised"]`). All critiques go to the backend in one
batch, then all revisions in another. A revision that comes back empty, failed or cut off at
`max_tokens` keeps the original answer, noted in `metadata["unrevised"]` with the reason.
Document chunks are not answers and are left alone.
"""

from __future__ import annotations

import random
import re
from typing import Any

from alignlab.curate.config import CritiqueReviseStep
from alignlab.curate.steps import KEEP, StepContext, Verdict
from alignlab.llm.types import GenerationParams, Request, Response
from alignlab.records import Sample
from alignlab.sdg.templates import load_template

_LABEL = re.compile(r"^\s*(?:\*\*)?(?:revised|rewritten|improved|new)?\s*(?:answer|response|revision)"
                    r"\s*(?:\*\*)?\s*:\s*", re.IGNORECASE)


def draw_principle(principles: list[str], seed: int, sample_id: str) -> str:
    return random.Random(f"{seed}:{sample_id}").choice(principles)


def clean_revision(text: str) -> str:
    """The rewritten answer without a leading "Revised answer:" label."""
    return _LABEL.sub("", text.strip(), count=1).strip()


def _text(response: Response) -> tuple[str, str]:
    """(text, problem) of a generation: problem is "" when the text is usable."""
    if not response.ok:
        return "", f"failed: {response.error}"
    choice = response.choices[0]
    if choice.finish_reason == "length":
        return choice.text.strip(), "cut off at max_tokens"
    return choice.text.strip(), ""


def with_answer(sample: Sample, answer: str, metadata: dict[str, Any]) -> Sample:
    messages = [dict(m) for m in sample.messages]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    messages[last]["content"] = answer
    return Sample(sample.id, messages, sample.unmask, metadata)


def critique_revise(samples: list[Sample], settings: CritiqueReviseStep, ctx: StepContext) -> list[Verdict]:
    todo = [i for i, s in enumerate(samples)
            if not s.unmask and any(m["role"] == "assistant" for m in s.messages)]
    verdicts: list[Verdict] = [KEEP] * len(samples)
    if not todo:
        return verdicts
    backend = ctx.backend(settings.models(ctx.cfg)["critic"])
    critique_tpl = load_template(settings.critique_template, settings.prompts_dir)
    revise_tpl = load_template(settings.revise_template, settings.prompts_dir)
    params = GenerationParams(max_tokens=settings.max_tokens, temperature=settings.temperature,
                              seed=ctx.cfg.seed)
    principles = {i: draw_principle(settings.principles, ctx.cfg.seed, samples[i].id) for i in todo}
    items = {i: {"question": samples[i].instruction, "answer": samples[i].response,
                 "principle": principles[i]} for i in todo}

    advance = ctx.track("critique", total=len(todo))
    critiques = backend.generate([Request(messages=tuple(critique_tpl.messages(**items[i])), params=params)
                                  for i in todo], on_done=lambda _i, _r: advance())
    critique_of = {i: _text(r) for i, r in zip(todo, critiques)}
    # A critique cut off at max_tokens is still a usable critique; an empty or failed one is not.
    revisable = [i for i in todo if critique_of[i][0] and not critique_of[i][1].startswith("failed")]

    advance = ctx.track("revise", total=len(revisable))
    revisions = backend.generate(
        [Request(messages=tuple(revise_tpl.messages(**items[i], critique=critique_of[i][0])), params=params)
         for i in revisable], on_done=lambda _i, _r: advance())
    revision_of = {i: _text(r) for i, r in zip(revisable, revisions)}

    templates = {critique_tpl.name: critique_tpl.hash, revise_tpl.name: revise_tpl.hash}
    for i in todo:
        sample, critique = samples[i], critique_of[i][0]
        text, problem = revision_of.get(i, ("", critique_of[i][1] or "empty critique"))
        revision = clean_revision(text)
        lineage = {"principle": principles[i], "critique": critique, "model": backend.model_id,
                   "templates": templates}
        metadata = {**sample.metadata,
                    "templates": {**(sample.metadata.get("templates") or {}), **templates}}
        if problem or not revision:
            metadata["unrevised"] = {**lineage, "reason": problem or "empty revision"}
            verdicts[i] = Verdict(True, sample=Sample(sample.id, sample.messages, sample.unmask, metadata),
                                  note="unrevised")
        else:
            metadata["revised"] = {**lineage, "original": sample.response}
            verdicts[i] = Verdict(True, sample=with_answer(sample, revision, metadata), note="revised")
    return verdicts
