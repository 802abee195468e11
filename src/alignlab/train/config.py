"""The `train:` section of alignlab.yaml: shared hyperparameters, and the phases that may
override them.

    train:
      method: full            # or lora
      lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}
      max_seq_len: 1024       # longer samples are reported and skipped, never truncated
      batch_tokens: 4096      # padded tokens (rows x longest row) per micro-batch
      effective_batch: 16384  # padded-token budget per optimizer step: a multiple of batch_tokens
      lr: 1.0e-4
      warmup: 0.1             # fraction of the phase's optimizer steps
      phases:
        - {name: knowledge, epochs: 3, select_by: knowledge_mcq}
        - {name: skills, epochs: 2, lr: 5.0e-5, select_by: skill_judge}

The effective batch is counted in micro-batches of `batch_tokens` padded tokens: a step takes
`effective_batch / batch_tokens` micro-batches in all, shared out over the processes, so the
same config gives the same optimizer steps on one process or eight.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from alignlab.errors import ConfigError
from alignlab.llm.config import Precision, Section
from alignlab.train.losses import LOSSES

CurriculumOrder = Literal["easy_to_hard", "hard_to_easy", "mixed"]


class LoraSettings(Section):
    r: int = Field(16, ge=1, description="rank of the low-rank update")
    alpha: float = Field(32, gt=0, description="scale: the update is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      description="linear layers that get adapters")


class LoopHyperparameters(Section):
    """What every training loop is run with: supervised phases (`train:`) and alignment (`align:`)."""

    method: Literal["full", "lora"] = Field("full", description="full fine-tune, or LoRA adapters (merged on save)")
    lora: LoraSettings = LoraSettings()
    precision: Precision = Field(
        "fp32", description="bf16: matmuls in bfloat16 under autocast (weights and optimizer stay fp32); "
                            "about twice as fast on CPUs with AVX512-BF16 or AMX")
    lr: float = Field(1.0e-4, gt=0, description="peak learning rate (AdamW), after warm-up, cosine decay")
    warmup: float = Field(0.1, ge=0, lt=1, description="warm-up, as a fraction of the steps")
    max_grad_norm: float = Field(1.0, ge=0, description="0 turns clipping off")
    save_every: int = Field(50, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, description="checkpoints kept besides the best and the last")
    seed: int = Field(0, description="data order and initialisation seed")


class Hyperparameters(LoopHyperparameters):
    """What a phase may override; validated once the phase's overrides are applied."""

    max_seq_len: int = Field(1024, ge=8, description="longer samples are skipped and reported")
    batch_tokens: int = Field(4096, ge=8, description="padded tokens per micro-batch")
    effective_batch: int | None = Field(
        None, ge=8, description="padded-token budget per optimizer step (a multiple of "
                                "batch_tokens); default: 4 micro-batches")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay, on matrices only")

    @model_validator(mode="after")
    def _consistent(self) -> Hyperparameters:
        if self.max_seq_len > self.batch_tokens:
            raise ValueError(f"max_seq_len ({self.max_seq_len}) must not exceed batch_tokens "
                             f"({self.batch_tokens}): a micro-batch must hold the longest sample")
        if self.effective_batch is not None and self.effective_batch % self.batch_tokens:
            raise ValueError(f"effective_batch ({self.effective_batch}) must be a multiple of "
                             f"batch_tokens ({self.batch_tokens})")
        return self

    @property
    def micro_batches_per_step(self) -> int:
        """Micro-batches per optimizer step, over all processes together."""
        return 4 if self.effective_batch is None else self.effective_batch // self.batch_tokens


OVERRIDABLE = tuple(Hyperparameters.model_fields)


class _Phase(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$", description="a phase of the mix stage")
    epochs: int = Field(1, ge=1, description="passes over the phase's data")
    select_by: str = Field("loss", description="checkpoint metric; 'loss' = held-out loss")

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in OVERRIDABLE if getattr(self, k) is not None}


def _override(name: str, field: FieldInfo) -> tuple[Any, FieldInfo]:
    """A phase's optional copy of a `train:` setting: the same type and bounds, None = inherit."""
    kind = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    return kind | None, Field(None, description=f"this phase's train.{name}")


# One training phase: the mix file of the same name, trained for `epochs`; every hyperparameter
# left out is inherited from the `train:` section. Its override fields are derived from
# `Hyperparameters`, so a new setting is declared once and every phase may override it.
PhaseConfig = create_model("PhaseConfig", __base__=_Phase, __module__=__name__,
                           **{k: _override(k, f) for k, f in Hyperparameters.model_fields.items()})


def _default_phases() -> list[PhaseConfig]:
    return [PhaseConfig(name="knowledge"), PhaseConfig(name="skills")]


class TrainConfig(Hyperparameters):
    phases: list[PhaseConfig] = Field(default_factory=_default_phases,
                                      description="phases in training order, each a mix phase")
    val_fraction: float = Field(0.05, ge=0, lt=1, description="held out of each phase for `loss`")
    val_max_samples: int = Field(64, ge=1, description="cap on the held-out split")
    tensorboard: bool = Field(True, description="also log to TensorBoard when it is installed")

    @model_validator(mode="after")
    def _phases_valid(self) -> TrainConfig:
        names = [p.name for p in self.phases]
        if not names:
            raise ValueError("train.phases is empty: list at least one phase of the mix")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"phase names must be unique; repeated: {', '.join(dupes)}")
        for phase in self.phases:
            try:
                self.resolve(phase)
            except ValueError as e:
                raise ValueError(f"phase '{phase.name}': {e}") from e
        return self

    def shared(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in OVERRIDABLE}

    def resolve(self, phase: PhaseConfig) -> Hyperparameters:
        """The phase's hyperparameters: the shared ones with the phase's overrides applied."""
        data = self.model_dump(include=set(OVERRIDABLE))
        data.update({k: (v.model_dump() if isinstance(v, Section) else v)
                     for k, v in phase.overrides().items()})
        try:
            return Hyperparameters.model_validate(data)
        except ValidationError as e:
            raise ValueError("; ".join(err["msg"].removeprefix("Value error, ")
                                       for err in e.errors())) from None

    def phase(self, name: str) -> PhaseConfig:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)


class PreferenceLossConfig(Section):
    """Which loss of `train.losses.LOSSES` align trains with, and its settings."""

    kind: str = Field("dpo", description=" | ".join(f"{name} ({loss.note})" if loss.note else name
                                                    for name, loss in LOSSES.items()))
    beta: float = Field(0.1, gt=0, description="dpo/ipo/hinge/kto: strength of the pull towards the reference; "
                                               "simpo: reward scale (its authors use 2-10); orpo: weight "
                                               "of the odds-ratio term")
    delta: float = Field(1.0, ge=0, description="slic: the log-probability margin to enforce")
    lam: float = Field(0.1, ge=0, description="slic: weight of the chosen answer's NLL (mean per token)")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="dpo: probability a label is flipped")
    gamma: float = Field(0.5, ge=0, description="simpo: target reward margin")
    desirable_weight: float = Field(1.0, gt=0, description="kto: weight of the accepted answers' loss")
    undesirable_weight: float = Field(1.0, gt=0, description="kto: weight of the rejected answers' loss")

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind not in LOSSES:
            raise ValueError(f"unknown loss {kind!r}: the losses are {', '.join(LOSSES)} "
                             f"(declared in alignlab/train/losses.py:LOSSES)")
        return kind

    @model_validator(mode="after")
    def _settings_of_this_loss(self) -> PreferenceLossConfig:
        # Settings that only some losses read: setting one for another loss is a mistake worth an error.
        for key in type(self).model_fields:
            kinds = sorted(name for name, loss in LOSSES.items() if key in loss.settings)
            # Compared with the default, not with "was it written", so a dumped config reloads.
            if kinds and getattr(self, key) != type(self).model_fields[key].default and self.kind not in kinds:
                raise ConfigError(f"{key} applies to the {' / '.join(kinds)} loss only, not to {self.kind!r}")
        return self

    @property
    def needs_reference(self) -> bool:
        return LOSSES[self.kind].reference

    @property
    def unpaired(self) -> bool:
        """KTO trains on single answers marked desirable or not, not on pairs."""
        return not LOSSES[self.kind].paired


class AlignConfig(LoopHyperparameters):
    """`align:` in alignlab.yaml: contrastive post-training on the pairs (see train/align.py).
    The loop's settings are `train:`'s (LoopHyperparameters), with smaller defaults for lr and
    keep_checkpoints: alignment moves a trained model a little."""

    start: str = Field("sft", description="model to align: 'sft' (after supervised training) or a spec")
    loss: PreferenceLossConfig = PreferenceLossConfig()
    order: CurriculumOrder = Field("easy_to_hard", description="easy_to_hard | hard_to_easy | mixed")
    unpaired_from: Literal["judged", "pairs"] = Field(
        "judged", description="kto's answers: 'judged' = curated samples (desirable) and the judge's "
                              "low_quality rejects (undesirable); 'pairs' = each pair's two answers")
    epochs: int = Field(2, ge=1, description="passes over the pairs, each in curriculum order")
    batch_pairs: int = Field(4, ge=1, description="pairs per micro-batch (one forward of 2x rows)")
    micro_batches_per_step: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_length: int = Field(512, ge=16, description="prompt + answer tokens; longer pairs are cut")
    lr: float = Field(5.0e-6, gt=0, description="peak learning rate")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept besides the best and the last")
