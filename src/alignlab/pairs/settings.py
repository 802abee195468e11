"""The `pairs:` section of alignlab.yaml: the ladder of models and how pairs are checked."""

from __future__ import annotations

from pydantic import Field, field_validator

from alignlab.llm.config import Section
from alignlab.llm.specs import parse_spec


# Besides model specs, a rung may name a model of this run: the teacher, the untrained student,
# the student after a training phase, or after the last phase.
RUNG_NAMES = ("teacher", "student", "student:<phase>", "sft")


class PairsSettings(Section):
    ladder: list[str] = Field(
        default_factory=lambda: ["teacher", "sft", "student"], min_length=2,
        description="strongest to weakest: model specs or teacher | student | student:<phase> | sft "
                    "(the last phase's selected checkpoint); every rung answers every prompt")
    max_prompts: int = Field(64, ge=2, description="held-in prompts answered by every rung")
    heldout_fraction: float = Field(0.2, ge=0, lt=1,
                                    description="share of prompts whose pairs are kept out of training")
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
            if spec not in ("teacher", "student", "sft") and not spec.startswith("student:"):
                parse_spec(spec)  # raises ConfigError saying what a spec looks like
        return ladder
