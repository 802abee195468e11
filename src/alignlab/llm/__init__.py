"""Models behind one protocol: `open_backend(spec, ...)` gives a `Backend` for any model spec.

Local models are loaded once per process and shared (the teacher and the judge are often the
same model); every backend is wrapped in the request cache when one is given.
"""

from __future__ import annotations

from pathlib import Path

from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.config import BackendSettings
from alignlab.llm.specs import ModelSpec, parse_spec
from alignlab.llm.types import (
    Backend, BackendStats, Choice, GenerationParams, Request, Response, Score, ScoreRequest,
    TokenLogprob,
)

__all__ = [
    "Backend", "BackendSettings", "BackendStats", "CachedBackend", "Choice", "GenerationParams",
    "ModelSpec", "Request", "RequestCache", "Response", "Score", "ScoreRequest", "TokenLogprob",
    "open_backend", "parse_spec",
]

_local_backends: dict[str, Backend] = {}


def open_backend(spec: ModelSpec | str, settings: BackendSettings | None = None,
                 cache: RequestCache | None = None, base_dir: Path | None = None,
                 tokenizer: str | None = None) -> Backend:
    """`tokenizer` (a served model's: local directory or embedded spec) lets prompts be
    rendered here for servers that cannot continue a message (llm/render.py)."""
    settings = settings or BackendSettings()
    if isinstance(spec, str):
        spec = parse_spec(spec, base_dir)
    backend: Backend
    if spec.kind == "openai":
        from alignlab.llm.openai_backend import OpenAIBackend

        if tokenizer is not None and not tokenizer.startswith("embedded:"):
            tokenizer = parse_spec(tokenizer, base_dir).name
        backend = OpenAIBackend(spec, settings, cache=cache, tokenizer=tokenizer)
    else:
        from alignlab.llm.hf import model_id
        from alignlab.llm.local import LocalBackend

        key = (f"{model_id(spec)}|{settings.max_batch_size}|{settings.max_batch_tokens}|{settings.precision}"
               f"|{settings.device}")
        if key not in _local_backends:
            _local_backends[key] = LocalBackend.from_spec(spec, settings)
        backend = _local_backends[key]
    return CachedBackend(backend, cache) if cache is not None else backend


def release_local_backends() -> None:
    """Drop loaded local models (between stages that need the memory, e.g. before training)."""
    _local_backends.clear()
