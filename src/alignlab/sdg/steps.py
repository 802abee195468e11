"""The steps every generator is made of, each one batched over all live candidates.

A step sends one request per live candidate in a single `generate` call (so the local backend
batches and an HTTP backend keeps many requests in flight), then fills a field or rejects the
candidate with a reason. Generators are short sequences of these steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alignlab.llm.types import Backend, GenerationParams, OnDone, Request
from alignlab.sdg.candidates import Candidate
from alignlab.sdg.config import GenerateConfig
from alignlab.sdg.judges import JudgeSpec, run_judge
from alignlab.sdg.similarity import NoveltyPool
from alignlab.sdg.templates import load_template


class _Quiet:
    def callback(self, candidates: Sequence[Candidate]) -> OnDone | None:
        return None

    def drop(self, candidate: Candidate) -> None:
        pass


@dataclass
class GenContext:
    """What generators need: the teacher and judge backends, the settings, and progress."""

    teacher: Backend
    judge: Backend
    settings: GenerateConfig
    progress: Any = field(default_factory=_Quiet)  # sdg.progress.GenerationProgress

    @property
    def prompts_dir(self) -> str | None:
        return self.settings.prompts_dir


def live(candidates: Sequence[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.alive]


def ask_step(ctx: GenContext, candidates: Sequence[Candidate], *, step: str, into: str,
             parse: Callable[[str], str | None], params: GenerationParams,
             build: Callable[[Candidate], dict[str, Any]], templates: dict[str, str] | None = None) -> None:
    """Ask the teacher once per live candidate (`build` gives the Request's `messages` or
    `prompt`); store the parsed reply in the candidate's `into` field."""
    todo = live(candidates)
    if not todo:
        return
    requests = [Request(**build(c), params=replace(params, seed=c.seed)) for c in todo]
    responses = ctx.teacher.generate(requests, on_done=ctx.progress.callback(todo))
    for c, response in zip(todo, responses):
        c.templates.update(templates or {})
        if not response.ok:
            c.reject("teacher_error", step=step, error=response.error)
        elif into == "answer" and response.choices[0].finish_reason == "length":
            # An answer cut off at max_tokens would teach the student to stop mid-sentence.
            c.raw[step] = response.text
            c.reject("truncated", step=step, raw=response.text, max_tokens=params.max_tokens)
        else:
            c.raw[step] = response.text
            value = parse(response.text)
            if value is None:
                c.reject("unparseable", step=step, raw=response.text)
            else:
                setattr(c, into, value)
        if not c.alive:
            ctx.progress.drop(c)


def teacher_step(ctx: GenContext, candidates: Sequence[Candidate], *, step: str, template: str,
                 variables: Callable[[Candidate], dict[str, Any]], parse: Callable[[str], str | None],
                 into: str, params: GenerationParams) -> None:
    """`ask_step` with the conversation rendered from a prompt template."""
    tpl = load_template(template, ctx.prompts_dir)
    ask_step(ctx, candidates, step=step, into=into, parse=parse, params=params,
             build=lambda c: {"messages": tpl.messages(**variables(c))}, templates={template: tpl.hash})


def judge_step(ctx: GenContext, candidates: Sequence[Candidate], judge: str,
               variables: Callable[[Candidate], dict[str, Any]]) -> None:
    """Grade each live candidate; below the judge's threshold is a reject `low_<judge>`."""
    todo = live(candidates)
    if not todo:
        return
    spec = JudgeSpec(judge, f"judge_{judge}")
    threshold = getattr(ctx.settings.thresholds, judge)
    template_hash = load_template(spec.template, ctx.prompts_dir).hash
    verdicts = run_judge(ctx.judge, spec, [variables(c) for c in todo], ctx.prompts_dir,
                         on_done=ctx.progress.callback(todo))
    for c, verdict in zip(todo, verdicts):
        if verdict.method == "failed":
            c.reject("judge_error", judge=judge, error=verdict.raw)
        else:
            c.judges[judge] = verdict.lineage(ctx.judge.model_id, template_hash)
            if verdict.score is None:
                c.reject("unparseable", step=f"judge_{judge}", raw=verdict.raw)
            elif verdict.score < threshold:
                c.reject(f"low_{judge}", score=round(verdict.score, 3), threshold=threshold)
        if not c.alive:
            ctx.progress.drop(c)


def novelty_step(ctx: GenContext, candidates: Sequence[Candidate], seeds_by_leaf: dict[str, list[str]],
                 pool: Callable[[Candidate], Any] = lambda c: c.leaf) -> None:
    """Self-Instruct's filter: a question too close (ROUGE-L) to its pool is dropped. Pools
    start with the leaf's seed questions; candidates are visited in their fixed order, so the
    result does not depend on batching."""
    pools: dict[Any, NoveltyPool] = {}
    for c in sorted(live(candidates), key=lambda c: (c.leaf, c.order)):
        key = pool(c)
        if key not in pools:
            pools[key] = NoveltyPool(ctx.settings.rouge_threshold)
            for text in seeds_by_leaf.get(c.leaf, []):
                pools[key].add(text)
        admitted, score, match = pools[key].admit(c.question or "")
        if not admitted:
            c.reject("too_similar", rouge_l=round(score, 3), closest=match)
            ctx.progress.drop(c)


def cap_step(candidates: Sequence[Candidate], max_per_leaf: int) -> None:
    """Keep at most `max_per_leaf` survivors per leaf, in candidate order. Applied once over
    the whole run (not per shard), so every engine caps the same rows."""
    kept: dict[str, int] = {}
    for c in sorted(live(candidates), key=lambda c: (c.leaf, c.order)):
        kept[c.leaf] = kept.get(c.leaf, 0) + 1
        if kept[c.leaf] > max_per_leaf:
            c.reject("over_leaf_budget", max_samples_per_leaf=max_per_leaf)


def sampling(ctx: GenContext, max_tokens: int | None = None, stop: tuple[str, ...] = ()) -> GenerationParams:
    s = ctx.settings
    return GenerationParams(temperature=s.temperature, top_p=s.top_p, stop=stop,
                            max_tokens=max_tokens or s.max_new_tokens)


def questioning(ctx: GenContext) -> GenerationParams:
    """Sampling for a new question or task: one paragraph, kept short."""
    return sampling(ctx, max_tokens=ctx.settings.max_question_tokens, stop=("\n\n",))


def answering(ctx: GenContext) -> GenerationParams:
    s = ctx.settings
    return GenerationParams(temperature=s.answer_temperature, top_p=s.top_p, max_tokens=s.max_new_tokens)
