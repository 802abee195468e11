"""Ladder rungs: a model, and how it answers — fluent ways to make it weaker (or stronger).

A rung is a model (a run name or any model spec) with optional settings in parentheses:

    teacher(context)        the teacher, reading the prompt's source chunk first (knowledge
                            prompts; the pair's prompt stays the question alone)
    sft                     the student after the last training phase
    sft(temperature=1.2)    the same model sampling at a higher temperature (seeded)
    student:knowledge       the student after an earlier phase: an earlier SFT checkpoint
    student                 the student before training
    embedded:smollm2-135m?layers=12    any model spec; a truncated model is possible, but it
                            writes broken text, so the contrast teaches "do not babble"

Every rung stays a fluent model, so a pair contrasts answers of different quality rather than
text against noise. The ladder's order (strongest first) is an assumption: the pairs stage
measures each rung's own quality on the held-out prompts (`pairs.quality`) and says where the
measurement disagrees. Two rungs naming the same model the same way are one rung.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from alignlab.errors import ConfigError
from alignlab.llm.specs import parse_spec
from alignlab.records import Message, user_turn

RUN_NAMES = ("teacher", "student", "sft")  # and student:<phase>
DEFAULT_LADDER = ("teacher(context)", "sft", "sft(temperature=1.2)", "student")
SETTINGS_HELP = "rung settings are '(context)', '(temperature=T)' or both, e.g. 'sft(context, temperature=1.2)'"
_WITH_SETTINGS = re.compile(r"^(?P<model>.+?)\((?P<settings>[^()]*)\)$")


@dataclass(frozen=True)
class Rung:
    model: str  # a run name (teacher | student | student:<phase> | sft) or a model spec
    temperature: float = 0.0  # 0 = greedy
    context: bool = False  # knowledge prompts: read the source chunk before the question

    @property
    def settings(self) -> str:
        parts = (["context"] if self.context else []) + ([f"temperature={self.temperature:g}"]
                                                         if self.temperature else [])
        return f"({', '.join(parts)})" if parts else ""

    def label(self, model_id: str) -> str:
        """What pairs record as chosen_model / rejected_model: the model's id and its settings."""
        return model_id + self.settings


def parse_rung(text: str) -> Rung:
    text = text.strip()
    match = _WITH_SETTINGS.match(text)
    model, settings = (match["model"].strip(), match["settings"]) if match else (text, "")
    if model not in RUN_NAMES and not model.startswith("student:"):
        parse_spec(model)  # raises ConfigError saying what a spec looks like
    temperature, context = 0.0, False
    for item in filter(None, (s.strip() for s in settings.split(","))):
        key, _, value = item.partition("=")
        if key == "context" and not value:
            context = True
        elif key == "temperature":
            try:
                temperature = float(value)
            except ValueError:
                raise ConfigError(f"ladder rung {text!r}: temperature must be a number, got {value!r}") from None
            if not 0 <= temperature <= 2:
                raise ConfigError(f"ladder rung {text!r}: temperature must be in [0, 2], got {temperature}")
        else:
            raise ConfigError(f"ladder rung {text!r}: unknown setting {item!r}; {SETTINGS_HELP}")
    return Rung(model, temperature, context)


def with_chunk(prompt: Sequence[Message], chunk: str) -> list[Message]:
    """The prompt with the chunk before the last user turn's question (as a grounded skill's
    context goes); the rungs that read the chunk and the evidence check both use it."""
    messages = [dict(m) for m in prompt]
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    messages[last]["content"] = user_turn(messages[last]["content"], chunk)
    return messages


def rung_prompt(rung: Rung, prompt: Sequence[Message], chunk: str | None) -> list[Message]:
    """The messages this rung answers: with `context`, the prompt `with_chunk`."""
    return with_chunk(prompt, chunk) if rung.context and chunk else [dict(m) for m in prompt]


# ---------------------------------------------------------------- is the text fluent?

def repetition_ratio(tokens: Sequence[int | str], n: int = 3) -> float:
    """Share of the n-grams that repeat an earlier one: 0 for text that never repeats itself,
    near 1 for a loop like ". , and , and , and"."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def round_trips(tokenizer, text: str) -> bool:
    """The text survives encode → decode unchanged (no broken bytes or stray special tokens)."""
    return tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text
