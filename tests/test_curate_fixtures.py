"""Shared builders for the curate and mix tests (no tests here): constructed samples, a
finished generate stage, and a scripted fake backend."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from alignlab.config import Config
from alignlab.llm.types import BackendStats, Choice, Request, Response, Score, ScoreRequest
from alignlab.records import Sample
from alignlab.store import write_jsonl


def sample(sid: str, instruction: str, response: str, *, leaf: str = "compositional_skills/writing/poems",
           kind: str = "freeform_skill", generator: str = "freeform", unmask: bool = False,
           quality: float | None = 5.0) -> Sample:
    metadata = {"leaf": leaf, "leaf_kind": kind, "generator": generator, "teacher": "embedded:smollm2-135m"}
    if quality is not None:
        metadata["judges"] = {"quality": {"score": quality, "method": "logprobs"}}
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


class FakeBackend:
    """The Backend protocol with scripted answers: `reply(request) -> text` and
    `score(request) -> (logprob, n_tokens)`; every call is recorded."""

    def __init__(self, reply: Callable[[Request], str] | None = None,
                 score: Callable[[ScoreRequest], tuple[float, int]] | None = None,
                 model_id: str = "fake-model"):
        self.model_id = model_id
        self.stats = BackendStats()
        self.reply = reply or (lambda r: "")
        self.score = score or (lambda r: (-1.0 * len(r.continuation.split()), len(r.continuation.split())))
        self.generate_calls: list[list[Request]] = []
        self.score_calls: list[list[ScoreRequest]] = []

    def generate(self, requests, on_done=None):
        self.generate_calls.append(list(requests))
        out = []
        for i, r in enumerate(requests):
            response = Response(choices=[Choice(self.reply(r))])
            out.append(response)
            if on_done:
                on_done(i, response)
        return out

    def loglikelihood(self, requests):
        self.score_calls.append(list(requests))
        return [Score(*self.score(r)) for r in requests]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass
