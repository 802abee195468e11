"""MAGPIE: draw instructions out of an aligned model by giving it only the start of a user turn.

An instruction-tuned model, shown its chat template up to where a user message begins, writes
a plausible user request itself. Those requests are answered, judged like freeform skills, and
serve as general replay data that needs no seed examples. It needs the raw chat template, so
it runs on local teachers (`enabled: auto`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from alignlab.chat_format import user_turn_prefix
from alignlab.errors import AlignlabError
from alignlab.sdg.candidates import Candidate, parse_answer, parse_question
from alignlab.sdg.generator import Generator, PlanInputs
from alignlab.sdg.steps import GenContext, answering, ask_step, judge_step, novelty_step, questioning

if TYPE_CHECKING:
    from alignlab.config import Config

LEAF = "general/magpie"
GENERATOR = "magpie"
TASK = "A request that a user might make of a helpful, general-purpose assistant."


def enabled(cfg: Config) -> bool:
    setting = cfg.generate.magpie.enabled
    local = not cfg.models.teacher.startswith("openai:")
    if setting is True and not local:
        raise AlignlabError("generate.magpie needs the teacher's raw chat template, which a model behind "
                            "an OpenAI-compatible server does not expose; set generate.magpie.enabled: false")
    return bool(cfg.generate.magpie.count) and (setting is True or (setting == "auto" and local))


def plan(leaf: None, inputs: PlanInputs) -> list[Candidate]:
    """`magpie.count` candidates of no taxonomy leaf, when MAGPIE is enabled for this teacher."""
    if not enabled(inputs.cfg):
        return []
    return [Candidate(leaf=LEAF, leaf_kind="general", generator=GENERATOR, order=(k,),
                      lineage={"sample_index": k}) for k in range(inputs.cfg.generate.magpie.count)]


def prefix_hash(prefix: str) -> str:
    """The lineage entry of the prompt MAGPIE sends: the chat template's user-turn prefix,
    hashed as every prompt template is, so a teacher with another template shows in the rows."""
    return hashlib.sha256(prefix.encode()).hexdigest()[:12]


def run(ctx: GenContext, candidates: Sequence[Candidate], leaves: Mapping[str, Any] | None = None) -> None:
    """MAGPIE candidates belong to no taxonomy leaf: `leaves` is not read."""
    if not candidates:
        return
    prefix = user_turn_prefix(ctx.teacher.tokenizer)
    # Drawing instructions out of the template needs real diversity: sample at T >= 1.
    drawing = replace(questioning(ctx), stop=(), temperature=max(ctx.settings.temperature, 1.0))
    ask_step(ctx, candidates, step="question", into="question", parse=parse_question, params=drawing,
             build=lambda c: {"prompt": prefix}, templates={"magpie": prefix_hash(prefix)})
    novelty_step(ctx, candidates, {})
    judge_step(ctx, candidates, "question", lambda c: {"task_description": TASK, "question": c.question,
                                                       "context": None})
    ask_step(ctx, candidates, step="answer", into="answer", parse=parse_answer, params=answering(ctx),
             build=lambda c: {"messages": ({"role": "user", "content": c.question},)})
    judge_step(ctx, candidates, "quality", lambda c: {"question": c.question, "answer": c.answer, "context": None})


# question, question judge, answer, quality judge
DECLARATION = Generator(GENERATOR, run, requests=4, leaf_kind=None, plan=plan)
