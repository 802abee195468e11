"""The `pairs:` section of alignlab.yaml: the ladder of models and how pairs are checked."""

from __future__ import annotations

from pydantic import Field, field_validator

from alignlab.llm.config import Section
from alignlab.llm.specs import parse_spec


class PairsSettings(Section):
    ladder: list[str] = Field(
        default_factory=lambda: ["embedded:smollm2-135m", "embedded:smollm2-135m?layers=20",
                                 "embedded:smollm2-135m?layers=12"],
        min_length=2, description="model specs from strongest to weakest; every rung answers every prompt")
    max_tokens: int = Field(256, ge=1, description="answer length limit for every rung")
    verify: bool = Field(True, description="drop pairs the judge confidently reverses")
    verify_margin: float = Field(0.1, ge=0, lt=0.5,
                                 description="drop when P(chosen better) < 0.5 - margin")
    ai_feedback: bool = Field(False, description="also build judge-ordered pairs from two samples of rung 0")
    ai_feedback_threshold: float = Field(0.75, gt=0.5, le=1.0,
                                         description="both judging orders must prefer one answer this much")
    revise: bool = Field(False, description="also build (revision by rung 0, weakest answer) pairs")

    @field_validator("ladder")
    @classmethod
    def _valid_specs(cls, ladder: list[str]) -> list[str]:
        for spec in ladder:
            parse_spec(spec)  # raises ConfigError saying what a spec looks like
        return ladder
