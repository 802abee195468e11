"""Shared builders for the curate and mix tests (no tests here): constructed samples, a
finished generate stage, and a scripted fake backend."""

from __future__ import annotations

import random
from collections.abc import Sequence

from alignlab.config import Config
from fakes import FakeBackend  # noqa: F401  (the curate and mix tests import it from here)
from alignlab.records import Sample
from alignlab.store import write_jsonl


def sample(sid: str, instruction: str, response: str, *, leaf: str = "compositional_skills/writing/poems",
           kind: str = "freeform_skill", generator: str = "freeform", unmask: bool = False,
           quality: float | None = 5.0) -> Sample:
    metadata = {"leaf": leaf, "leaf_kind": kind, "generator": generator, "teacher": "embedded:smollm2-135m"}
    if quality is not None:
        metadata["judges"] = {"quality": {"score": quality, "method": "prefix-logprobs"}}
    return Sample(sid, [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}],
                  unmask, metadata)


def random_text(rng: random.Random, vocab: Sequence[str], n: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return sorted({"".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)})


def write_stage_output(cfg: Config, stage_name: str, samples: list[Sample]) -> None:
    """What a finished stage (generate, curate) leaves behind: samples.jsonl and a manifest."""
    stage = cfg.run_dir.stage(stage_name)
    write_jsonl(stage.file("samples.jsonl"), samples)
    stage.write_manifest(fingerprint=f"{stage_name}-{len(samples)}", inputs={}, config={},
                         counts={"samples": len(samples)}, started=0.0)


def write_generate_output(cfg: Config, samples: list[Sample]) -> None:
    write_stage_output(cfg, "generate", samples)
