"""Revision pairs (the idea of CLAIR): the strongest model minimally revises a weaker answer.

The revision is chosen and the original rejected. Because the revision keeps what was already
good, the two answers differ only where the weaker one went wrong, so the pair's contrast
carries the signal rather than style or length. The prompt is `pairs_revise.jinja` (overridable
by name). Pairs carry `generator: revision`, the reviser as `chosen_model`, the original's
model as `rejected_model`, the template hash, and `similarity` (difflib ratio of the two
texts). Such minimal pairs sit at the hardest curriculum level (difficulty 1.0).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from alignlab.errors import AlignlabError
from alignlab.llm.types import Backend, GenerationParams, Request
from alignlab.pairs.construct import PromptLike, as_messages, prompt_text, reject, same_answer
from alignlab.records import Pair, Reject, stable_id
from alignlab.sdg.templates import load_template

TEMPLATE = "pairs_revise"
# Small models often announce the revision despite being asked not to.
_PREAMBLE = re.compile(r"^\s*(?:here is (?:the|my) )?revised answer\s*[:\-]\s*", re.IGNORECASE)


def revision_pairs(reviser: Backend, prompts: Sequence[PromptLike], answers: Sequence[str | None], *,
                   answer_model: str, params: GenerationParams = GenerationParams(max_tokens=512),
                   prompt_metadata: Sequence[dict[str, Any]] | None = None,
                   override_dir: str | None = None) -> tuple[list[Pair], list[Reject]]:
    """`answers[k]` is `answer_model`'s answer to `prompts[k]`; `reviser` rewrites each."""
    if len(prompts) != len(answers):
        raise AlignlabError(f"{len(prompts)} prompts but {len(answers)} answers to revise")
    if prompt_metadata is not None and len(prompt_metadata) != len(prompts):
        raise AlignlabError(f"{len(prompt_metadata)} metadata rows for {len(prompts)} prompts")
    template = load_template(TEMPLATE, override_dir)
    messages = [as_messages(p) for p in prompts]
    rows = [{"id": stable_id("revision", messages[k], reviser.model_id, answer_model, answers[k]),
             "prompt": messages[k], "answer": answers[k],
             "metadata": {**(prompt_metadata[k] if prompt_metadata else {}), "prompt_index": k}}
            for k in range(len(prompts))]
    todo = [k for k in range(len(prompts)) if answers[k] and answers[k].strip()]
    requests = [Request(messages=tuple(template.messages(prompt=prompt_text(messages[k]), answer=answers[k])),
                        params=params) for k in todo]
    responses = dict(zip(todo, reviser.generate(requests)))

    pairs: list[Pair] = []
    rejects: list[Reject] = []
    for k, row in enumerate(rows):
        response = responses.get(k)
        if response is None:
            rejects.append(reject(row, "empty_answer"))
            continue
        if not response.ok:
            rejects.append(reject(row, "revision_failed", error=response.error))
            continue
        choice = response.choices[0]
        revision = _PREAMBLE.sub("", choice.text).strip()
        if choice.finish_reason == "length":
            # A cut-off revision against a complete original would teach "shorter is better".
            rejects.append(reject({**row, "revision": revision}, "revision_truncated",
                                  max_tokens=params.max_tokens))
        elif not revision:
            rejects.append(reject(row, "revision_empty"))
        elif same_answer(revision, answers[k]):
            rejects.append(reject(row, "revision_unchanged"))
        else:
            similarity = difflib.SequenceMatcher(None, revision, answers[k], autojunk=False).ratio()
            pairs.append(Pair(
                id=row["id"], prompt=messages[k],
                chosen=[{"role": "assistant", "content": revision}],
                rejected=[{"role": "assistant", "content": answers[k]}],
                metadata={**row["metadata"], "generator": "revision", "chosen_model": reviser.model_id,
                          "rejected_model": answer_model, "revised_from": answer_model,
                          "templates": {TEMPLATE: template.hash}, "similarity": round(similarity, 4),
                          "difficulty": 1.0, "stage": "pairs"}))
    return pairs, rejects
