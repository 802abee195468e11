"""The `pairs:` section of alignlab.yaml: the ladder of models and how pairs are checked."""

from __future__ import annotations

from pydantic import Field, field_validator

from alignlab.llm.config import Section
from alignlab.pairs.rungs import DEFAULT_LADDER, parse_rung



class PairsSettings(Section):
    ladder: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LADDER), min_length=2,
        description="strongest to weakest, each a model (a spec, or teacher | student | student:<phase> | "
                    "sft = the last phase's selected checkpoint) with optional settings "
                    "'(context, temperature=T)': context = read a knowledge prompt's source chunk first; "
                    "every rung answers every prompt")
    max_prompts: int = Field(64, ge=2, description="held-in prompts answered by every rung")
    heldout_fraction: float = Field(0.2, ge=0, lt=1,
                                    description="share of prompts whose pairs are kept out of training")
    max_tokens: int = Field(256, ge=1, description="answer length limit for every rung")
    verify: bool = Field(True, description="drop pairs the evidence or the judge confidently reverses")
    evidence: bool = Field(True, description="knowledge pairs with a known source chunk: verify by which answer "
                                             "the chunk supports (judge log-likelihoods), not by asking the judge")
    evidence_margin: float = Field(0.0, ge=0, description="drop when the chunk supports the rejected answer "
                                                          "more than the chosen by over this many nats per token")
    verify_margin: float = Field(0.1, ge=0, lt=0.5,
                                 description="drop when P(chosen better) < 0.5 - margin")
    ai_feedback: bool = Field(False, description="also build judge-ordered pairs from two samples of rung 0")
    ai_feedback_threshold: float = Field(0.75, gt=0.5, le=1.0,
                                         description="both judging orders must prefer one answer this much")
    revise: bool = Field(False, description="also build (revision by rung 0, weakest answer) pairs")
    license: str | None = Field(None, description="the dataset card's licence (a Hub licence id); default: read "
                                                  "from the taxonomy's LICENSE file, else 'other'")

    @field_validator("ladder")
    @classmethod
    def _valid_specs(cls, ladder: list[str]) -> list[str]:
        for rung in ladder:
            parse_rung(rung)  # raises ConfigError saying what a rung looks like
        return ladder
