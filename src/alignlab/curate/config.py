"""`curate:` in alignlab.yaml — the curation steps, in the order they run.

Each step is written as a single-key mapping, `- dedup: {jaccard: 0.8}` (or just `- dedup`
for the defaults); the key names the step, the mapping holds its settings, and the steps run in
the order listed (a step may appear twice). An unknown step or setting is an error at load
time with its file:line. The resolved config spells each step as `{"step": "dedup", ...}`,
which loads too.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator

from alignlab.llm.config import Section
from alignlab.llm.specs import parse_spec


class StepSettings(Section):
    """A curation step's settings. `step` (a Literal with the step's name as its default) is the
    key alignlab.yaml writes it under; `run` names the step's function, "module:function",
    imported only when the step runs, so loading the config imports none of the steps'
    dependencies. A new step is its settings class and function, plus its class in `STEPS`;
    a step that asks a model or renders a prompt template says which in `models` and
    `templates`, so that curate's fingerprint covers them."""

    step: str
    run: ClassVar[str]

    @property
    def module(self) -> str:
        return self.run.partition(":")[0]

    def models(self, cfg: Any) -> dict[str, str]:
        """The model specs this step asks, by role, for `cfg` (the Config, which imports this
        module: hence no annotation). The step's function opens the same specs."""
        return {}

    def templates(self) -> list[tuple[str, str | None]]:
        """The prompt templates this step renders, as (name, prompts_dir)."""
        return []

    def function(self) -> Any:
        return getattr(importlib.import_module(self.module), self.run.partition(":")[2])


def step_name(settings: type[StepSettings]) -> str:
    return settings.model_fields["step"].default


def _spec(v: str | None) -> str | None:
    if v is not None:
        parse_spec(v)  # raises ConfigError saying what a model spec looks like
    return v


class DedupStep(StepSettings):
    """Exact duplicates (normalised text) then near duplicates (MinHash LSH); the first
    occurrence is kept."""

    step: Literal["dedup"] = "dedup"
    run: ClassVar[str] = "alignlab.curate.dedup:dedup"
    jaccard: float = Field(0.8, gt=0, le=1, description="near-duplicate at or above this Jaccard similarity")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    ngram: int = Field(5, ge=1, le=32, description="word shingle length")
    fields: list[Literal["instruction", "conversation"]] = Field(
        ["instruction", "conversation"], min_length=1,
        description="compare the instruction alone and/or the whole conversation")


class QualityStep(StepSettings):
    """Keep samples whose judge score is at least the threshold; document chunks are exempt."""

    step: Literal["quality"] = "quality"
    run: ClassVar[str] = "alignlab.curate.quality:quality"
    judge: str = Field("quality", description="key in metadata.judges, and template judge_<judge>")
    threshold: float = Field(4.5, description="keep score >= threshold (AlpaGasus: 4.5 of 5)")
    template: str | None = Field(None, description="prompt template for missing scores; default judge_<judge>")
    scale: tuple[int, int] = Field((1, 5), description="the judge's score range")

    @property
    def template_name(self) -> str:
        return self.template or f"judge_{self.judge}"

    def models(self, cfg: Any) -> dict[str, str]:
        return {"judge": cfg.judge}

    def templates(self) -> list[tuple[str, str | None]]:
        return [(self.template_name, None)]


class DecontaminateStep(StepSettings):
    """Drop samples sharing an `ngram`-word sequence with an evaluation set."""

    step: Literal["decontaminate"] = "decontaminate"
    run: ClassVar[str] = "alignlab.curate.decontaminate:decontaminate"
    ngram: int = Field(13, ge=3, le=64, description="drop a sample sharing this many consecutive words")
    eval_sets: list[str] = Field([], description="JSONL files (messages or MCQ format), relative to this file")
    taxonomy_heldout: bool = Field(True, description="also every <taxonomy>/**/heldout_mcq.jsonl")


class DiversityStep(StepSettings):
    """Deita's selection: best first, accepted only if no accepted sample is more similar than θ."""

    step: Literal["diversity"] = "diversity"
    run: ClassVar[str] = "alignlab.curate.diversity:diversity"
    threshold: float = Field(0.9, gt=0, le=1, description="max cosine similarity to any accepted sample")
    budget: int | None = Field(None, ge=1, description="accept at most this many (per group)")
    per_leaf: bool = Field(False, description="select within each leaf, each with its own budget")
    score: Literal["quality", "quality_complexity", "complexity", "none"] = Field(
        "quality_complexity", description="what orders candidates before selection (Deita: quality x complexity)")
    judge: str = Field("quality", description="judge whose score is the quality")
    field: Literal["instruction", "conversation"] = Field("conversation", description="the text embedded")
    embedder: Literal["hashed", "model"] = Field(
        "hashed", description="hashed word n-grams (no model) or mean-pooled hidden states of `model`")
    dim: int = Field(512, ge=16, le=65536, description="hashed embedder: vector size")
    model: str = Field("embedded:smollm2-135m", description="model embedder: a local model spec")
    batch_size: int = Field(16, ge=1, description="model embedder: texts per forward pass")
    max_tokens: int = Field(512, ge=8, description="model embedder: truncate texts to this many tokens")

    _valid_model = field_validator("model")(_spec)

    def models(self, cfg: Any) -> dict[str, str]:
        return {"embedder": self.model} if self.embedder == "model" else {}


class StyleStep(StepSettings):
    """Rank responses by distance to the group's dominant style; keep the closest fraction."""

    step: Literal["style"] = "style"
    run: ClassVar[str] = "alignlab.curate.style:style"
    keep_fraction: float = Field(0.8, gt=0, le=1, description="share kept, closest to the dominant style")
    group_by: Literal["leaf", "leaf_kind", "all"] = Field("leaf", description="style is ranked within each group")
    min_group: int = Field(8, ge=2, description="groups smaller than this are kept whole")
    surprisal: bool = Field(True, description="include the response's per-token NLL given the instruction")
    model: str | None = Field(None, description="reference model for surprisal; default the student")

    _valid_model = field_validator("model")(_spec)

    def models(self, cfg: Any) -> dict[str, str]:
        return {"style": self.model or cfg.models.student} if self.surprisal else {}


DEFAULT_PRINCIPLES = [
    "The answer should be correct and should not state anything the question does not support.",
    "The answer should directly address what was asked, without padding or digressions.",
    "The answer should be clear and well organised, easy for the reader to follow.",
    "The answer should be harmless: no dangerous, unethical or insulting content.",
]


class CritiqueReviseStep(StepSettings):
    """Constitutional AI's critique-and-revise: the teacher critiques each answer against a
    principle drawn at random (seeded per sample), then rewrites it."""

    step: Literal["critique_revise"] = "critique_revise"
    run: ClassVar[str] = "alignlab.curate.critique:critique_revise"
    principles: list[str] = Field(DEFAULT_PRINCIPLES, min_length=1,
                                  description="one is drawn (seeded) per sample to critique against")
    model: str | None = Field(None, description="default the teacher")
    max_tokens: int = Field(256, ge=8, description="longest critique / revision")
    temperature: float = Field(0.0, ge=0, description="0 = greedy critiques and revisions")
    critique_template: str = Field("curate_critique", description="prompt template of the critique")
    revise_template: str = Field("curate_revise", description="prompt template of the revision")
    prompts_dir: str | None = Field(None, description="folder of .jinja templates overriding built-ins")

    _valid_model = field_validator("model")(_spec)

    def models(self, cfg: Any) -> dict[str, str]:
        return {"critic": self.model or cfg.models.teacher}

    def templates(self) -> list[tuple[str, str | None]]:
        return [(self.critique_template, self.prompts_dir), (self.revise_template, self.prompts_dir)]


def _step_name(item: Any) -> str | None:
    return item.get("step") if isinstance(item, dict) else getattr(item, "step", None)


# Every curation step, one line each: the names alignlab.yaml accepts and the functions the
# funnel runs are both read from here.
STEPS: tuple[type[StepSettings], ...] = (
    DedupStep,
    QualityStep,
    DecontaminateStep,
    DiversityStep,
    StyleStep,
    CritiqueReviseStep,
)


def step_union(steps: tuple[type[StepSettings], ...]) -> Any:
    """The tagged union of `steps`, told apart by their name; an unknown name is an error that
    lists the known ones."""
    names = [step_name(s) for s in steps]
    return Annotated[
        Union[tuple(Annotated[s, Tag(name)] for s, name in zip(steps, names))],  # noqa: UP007
        Discriminator(_step_name, custom_error_type="unknown_step",
                      custom_error_message=f"not a step: write each step as one single-key mapping naming "
                                           f"one of {', '.join(names)}, e.g. `- dedup: {{jaccard: 0.8}}`")]


CurateStep = step_union(STEPS)


def _default_steps() -> list[Any]:
    """Without a `curate:` section: duplicates out, evaluation questions out, then AlpaGasus's
    quality bar (cheapest first, so the judge sees fewer samples)."""
    return [DedupStep(), DecontaminateStep(), QualityStep()]


class CurateConfig(Section):
    steps: list[CurateStep] = Field(default_factory=_default_steps,
                                    description="the steps, run in the order listed: `- dedup: {...}`")

    @field_validator("steps", mode="before")
    @classmethod
    def _single_key_mappings(cls, items: Any) -> Any:
        """`- dedup: {...}` / `- dedup` become `{"step": "dedup", ...}` for the tagged union."""
        if not isinstance(items, list):
            return items
        out = []
        for item in items:
            if isinstance(item, str):
                item = {item: {}}
            if isinstance(item, dict) and "step" not in item and len(item) == 1:
                (name, settings), = item.items()
                if settings is None or isinstance(settings, dict):
                    item = {"step": name, **(settings or {})}
            # Anything else (an unknown name, two keys) is left to the tagged union, which
            # reports it at the item's own line.
            out.append(item)
        return out

    def labels(self) -> list[str]:
        """One name per step for counts and rejects: the step's name, numbered when repeated."""
        names = [s.step for s in self.steps]
        seen: dict[str, int] = {}
        labels = []
        for name in names:
            seen[name] = seen.get(name, 0) + 1
            labels.append(name if names.count(name) == 1 else f"{name}_{seen[name]}")
        return labels
