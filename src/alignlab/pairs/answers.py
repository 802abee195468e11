"""Drawing the answers pairs are built from: one per ladder rung, or two samples of one model.

A failed request gives `None` in place of its answer, so the pair builders can reject the
pairs it would have been part of with the reason `answer_failed` instead of crashing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend, GenerationParams, Request
from alignlab.pairs.construct import PromptLike, as_messages
from alignlab.pairs.rungs import Rung, rung_prompt


def _requests(prompts: Sequence[PromptLike], params: GenerationParams) -> list[Request]:
    return [Request(messages=tuple(as_messages(p)), params=params) for p in prompts]


def ladder_answers(rungs: Sequence[Backend], prompts: Sequence[PromptLike],
                   params: GenerationParams = GenerationParams(max_tokens=256)) -> list[list[str | None]]:
    """Every rung's answer to every prompt, rung by rung (strongest first, as given)."""
    return [[r.text if r.ok else None for r in backend.generate(_requests(prompts, params))]
            for backend in rungs]


def rung_answers(backend: Backend, rung: Rung, prompts: Sequence[PromptLike], chunks: Sequence[str | None],
                 params: GenerationParams = GenerationParams(max_tokens=256)) -> list[str | None]:
    """One rung's answer to every prompt, the way the rung answers: at its temperature (seeded
    by `params.seed`), reading each knowledge prompt's chunk when it has `context`."""
    messages = [rung_prompt(rung, as_messages(p), chunk) for p, chunk in zip(prompts, chunks)]
    return ladder_answers([backend], messages, replace(params, temperature=rung.temperature))[0]


def two_samples(backend: Backend, prompts: Sequence[PromptLike],
                params: GenerationParams = GenerationParams(temperature=0.8, max_tokens=256)
                ) -> tuple[list[str | None], list[str | None]]:
    """Two sampled answers per prompt (`n=2`; sample i is seeded `seed + i`)."""
    if params.temperature <= 0:
        raise AlignlabError("two samples of one model need temperature > 0, or they are the same answer")
    responses = backend.generate(_requests(prompts, replace(params, n=2)))
    first = [r.choices[0].text if r.ok else None for r in responses]
    second = [r.choices[1].text if r.ok else None for r in responses]
    return first, second
