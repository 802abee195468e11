"""The `eval:` section of alignlab.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alignlab.llm.config import Section


class JudgedSettings(Section):
    enabled: bool = Field(True, description="grade answers to held-out skill prompts with the judge")
    max_prompts_per_leaf: int = Field(20, ge=1, description="held-out prompts taken from each skill leaf")
    max_tokens: int = Field(256, ge=1, description="new tokens per answer of the model under test")
    template: str = Field("judge_quality", description="judge prompt template (sdg/prompts/<name>.jinja)")
    pairwise_template: str = Field("judge_pairwise", description="template for pairwise comparison")
    tie_band: float = Field(0.1, ge=0.0, lt=0.5,
                            description="a comparison with |P(A better) - 0.5| <= tie_band is a tie")


class EvalConfig(Section):
    mcq_files: list[str] = Field(default_factory=list,
                                 description="extra MCQ JSONL files {id, question, choices, answer[, leaf]}")
    general_mcq: str | None = Field(
        "builtin", description="general-knowledge MCQ file for forgetting; 'builtin' is the shipped "
                               "set, null disables")
    teacher_mcq_per_leaf: int = Field(10, ge=0, description="teacher-written MCQ per knowledge leaf "
                                                            "from held-out chunks; 0 disables")
    formulation: Literal["plain", "lettered"] = Field(
        "plain", description="plain: the question alone; lettered: the question followed by A-D options")
    # Summed by default: knowledge answers are short names and numbers, where dividing by a
    # length of 4-6 characters mostly rewards the longer option (on the shipped general set
    # the embedded model scores 0.75 summed, 0.62 normalised).
    length_normalise: bool = Field(
        False, description="headline accuracy divides each option's log-likelihood by its length "
                           "in characters (lm-eval's acc_norm); false uses the summed log-likelihood")
    judged: JudgedSettings = JudgedSettings()
    selection_share: float = Field(
        0.33, ge=0, lt=1, description="share of the held-out MCQ and judged prompts used only to select "
                                       "checkpoints, never in reported results (0: both use all, which "
                                       "flatters the reported figures)")
