"""`mix:` in alignlab.yaml (or a recipe file named by `mix.recipe`) — the training phases and
what goes into each.

    mix:
      seed: 0
      phases:
        - name: knowledge
          sources:
            - {select: {leaf_kind: knowledge}}                 # ratio 1.0 of the matching samples
        - name: skills
          sources:
            - {select: {leaf_kind: [freeform_skill, grounded_skill, general]}}
            - {phase: knowledge, ratio: 0.2}                   # replay: a fifth of phase 1's rows
            - {phase: knowledge, token_ratio: 0.2}             # ... or of its tokens
            - {file: data/general.jsonl, count: 50}            # your own data, exactly 50 rows

A source is exactly one of `select` (curated samples whose metadata match), `phase` (the mix
of an earlier phase: replay) or `file` (a JSONL of samples, relative to the file that names
it). Its size is a `ratio` of what the source holds (rounded half up) or an exact `count`;
two keys rather than one `size` so that `1` and `1.0` never mean different things. Asking for
more than the source holds is an error unless `replace: true`, which repeats every row
⌊k/n⌋ times and draws the remaining k mod n without repeats.

A replay buffer is better sized in tokens than in rows: a phase-1 row may be a short Q&A or a
whole document chunk ten times longer, so "half the rows" can mean a tenth or nearly all of
phase 1's tokens depending on the draw. `tokens: N` (or `token_ratio: r`, a share of the
source's tokens) draws rows in a seeded order until their tokens, counted with the student's
tokenizer, reach the budget.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from alignlab.errors import ConfigError
from alignlab.llm.config import Section

LeafKind = Literal["knowledge", "freeform_skill", "grounded_skill", "general"]


class Select(Section):
    """Curated samples whose metadata match every given field (a list matches any of its values)."""

    leaf: list[str] | None = Field(None, description="leaf path glob(s) (fnmatch: * crosses /), e.g. knowledge/geo*")
    leaf_kind: list[LeafKind] | None = Field(None, description="knowledge, freeform_skill, grounded_skill, general")
    generator: list[str] | None = Field(None, description="e.g. knowledge_qa, knowledge_chunk, magpie")
    teacher: list[str] | None = Field(None, description="model id(s) that wrote the sample")
    unmask: bool | None = Field(None, description="true: document chunks only; false: no chunks")

    @field_validator("leaf", "leaf_kind", "generator", "teacher", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _not_empty(self) -> Select:
        if not self.model_fields_set:
            raise ConfigError("select needs at least one field (leaf, leaf_kind, generator, teacher, unmask)")
        return self


class Source(Section):
    name: str | None = Field(None, description="label in metadata.source; derived when omitted")
    select: Select | None = Field(None, description="curated samples whose metadata match every field")
    phase: str | None = Field(None, description="an earlier phase, replayed")
    file: str | None = Field(None, description="JSONL of samples in messages format")
    ratio: float | None = Field(None, gt=0, description="share of what the source holds (default 1.0)")
    count: int | None = Field(None, ge=0, description="exact number of rows")
    tokens: int | None = Field(None, ge=0, description="rows drawn until their tokens reach this many")
    token_ratio: float | None = Field(None, gt=0, le=1,
                                      description="rows drawn until their tokens reach this share of the source's")
    replace: bool = Field(False, description="allow more rows than the source holds (by repeating)")

    @model_validator(mode="after")
    def _one_kind_one_size(self) -> Source:
        kinds = [k for k in ("select", "phase", "file") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ConfigError(f"a source needs exactly one of select, phase, file; got "
                              f"{', '.join(kinds) or 'none'}")
        sizes = [k for k in ("ratio", "count", "tokens", "token_ratio") if getattr(self, k) is not None]
        if len(sizes) > 1:
            raise ConfigError(f"give a source one size (ratio, count, tokens or token_ratio), not {' and '.join(sizes)}")
        return self

    @property
    def by_tokens(self) -> bool:
        return self.tokens is not None or self.token_ratio is not None

    def size_label(self) -> str:
        for key in ("count", "tokens", "token_ratio", "ratio"):
            if getattr(self, key) is not None:
                return f"{key} {getattr(self, key)}"
        return "ratio 1.0"

    @property
    def kind(self) -> str:
        return "select" if self.select is not None else "phase" if self.phase is not None else "file"

    def label(self) -> str:
        if self.name:
            return self.name
        if self.select is not None:
            fields = self.select.model_dump(exclude_none=True)
            return "curated[" + ",".join(f"{k}={'|'.join(map(str, v)) if isinstance(v, list) else v}"
                                         for k, v in fields.items()) + "]"
        return f"replay:{self.phase}" if self.phase is not None else f"file:{self.file}"


class Phase(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="output file <name>.jsonl")
    sources: list[Source] = Field(min_length=1, description="what the phase is drawn from")
    shuffle: bool = Field(True, description="shuffle the phase's rows (seeded)")


def _default_phases() -> list[Phase]:
    """LAB's recipe: knowledge first, then skills with a replay of a fifth of the knowledge phase."""
    return [Phase(name="knowledge", sources=[Source(select=Select(leaf_kind=["knowledge"]))]),
            Phase(name="skills", sources=[
                Source(select=Select(leaf_kind=["freeform_skill", "grounded_skill", "general"])),
                Source(phase="knowledge", ratio=0.2)])]


class Recipe(Section):
    seed: int | None = Field(None, description="sampling seed; default the config's seed")
    phases: list[Phase] = Field(default_factory=_default_phases, min_length=1,
                                description="training phases in order (LAB: knowledge, then skills + replay)")


class MixConfig(Recipe):
    recipe: str | None = Field(None, description="YAML file holding seed and phases instead of this section")

    @model_validator(mode="after")
    def _recipe_or_inline(self) -> MixConfig:
        if self.recipe is not None and self.model_fields_set & {"phases", "seed"}:
            raise ConfigError("mix.recipe names a recipe file: put seed and phases there, not here")
        return self
