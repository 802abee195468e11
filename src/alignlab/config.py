"""alignlab.yaml: typed, validated at load time, every error pointing at its file:line.

Each stage owns its section's model (in its own package); this module composes them, resolves
paths against the config file's folder, and saves the resolved config beside every output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, PrivateAttr, ValidationError, field_validator

from alignlab.curate.config import CurateConfig
from alignlab.errors import AlignlabError, ConfigError
from alignlab.evaluate.config import EvalConfig
from alignlab.llm.cache import RequestCache
from alignlab.llm.config import BackendSettings, Section
from alignlab.llm.specs import parse_spec
from alignlab.mix.config import MixConfig
from alignlab.sdg.config import GenerateConfig
from alignlab.pairs.settings import PairsSettings
from alignlab.store import RunDir
from alignlab.train.config import AlignConfig, TrainConfig
from alignlab.yamlpos import PositionedYaml, YamlSyntaxError, load_yaml


ModelT = TypeVar("ModelT", bound=Section)


class Models(Section):
    teacher: str = Field("embedded:smollm2-135m", description="model spec of the model that writes the data")
    judge: str | None = Field(None, description="defaults to the teacher")
    teacher_tokenizer: str | None = Field(
        None, description="served teacher: a local Hugging Face directory or embedded:... whose chat template "
                          "renders prompts for /completions; detected from the model id when it names one we ship")
    student: str = Field("embedded:smollm2-135m", description="model spec of the model trained (local)")

    @field_validator("teacher", "judge", "student", "teacher_tokenizer")
    @classmethod
    def _valid_spec(cls, v: str | None) -> str | None:
        if v is not None:
            parse_spec(v)  # raises ConfigError with what a spec looks like
        return v


class Config(Section):
    name: str = Field("default", pattern=r"^[A-Za-z0-9._-]+$", description="run name: runs/<name>/")
    runs: str = Field("runs", description="folder holding run directories, relative to this file")
    taxonomy: str = Field("taxonomy", description="taxonomy root, relative to this file")
    seed: int = Field(0, description="seed every stage derives its randomness from")
    models: Models = Models()
    backend: BackendSettings = BackendSettings()
    generate: GenerateConfig = GenerateConfig()
    curate: CurateConfig = CurateConfig()
    mix: MixConfig = MixConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    pairs: PairsSettings = PairsSettings()
    align: AlignConfig = AlignConfig()

    # Set by `load_config`: the folder relative paths resolve against.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    # Set by `load_config`: the file, so checks made later (a missing file, an unknown phase)
    # can still point at the line that wrote it.
    _source: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def path(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.path(self.runs) / self.name)

    @property
    def taxonomy_path(self) -> Path:
        return self.path(self.taxonomy)

    @property
    def cache_path(self) -> Path:
        return self.path(self.backend.cache) if self.backend.cache else self.run_dir.path / "requests.sqlite"

    def request_cache(self) -> RequestCache:
        """The run's request cache: every stage asks its models through it."""
        return RequestCache(self.cache_path)

    @property
    def judge(self) -> str:
        return self.models.judge or self.models.teacher

    def model_id(self, spec: str) -> str:
        """A model's identity in stage fingerprints: its spec, and for a local directory the
        fingerprint of its weights too, so a model retrained in place re-runs what used it."""
        from alignlab.llm.hf import model_id  # lazily: the config loader stays light

        return model_id(parse_spec(spec, self.base_dir))

    def tokenizer_for(self, spec: str) -> str | None:
        """`models.teacher_tokenizer` for the served teacher's spec (the judge too, when it is
        the teacher); other models' tokenizers are detected from their ids."""
        return self.models.teacher_tokenizer if spec == self.models.teacher else None

    def where(self, keys: tuple | list) -> str:
        """`alignlab.yaml:line:col` of a key path such as ("mix", "phases", 1, "sources", 0)."""
        if self._source is None or not self._source.is_file():
            return f"{self._source or 'config'} ({'.'.join(map(str, keys))})"
        return load_yaml(self._source).where(keys)

    def resolved(self) -> dict[str, Any]:
        """The config as run (defaults filled in), saved beside every stage's outputs."""
        return self.model_dump(mode="json")


def _message(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return f"unknown key '{err['loc'][-1]}'"
    if isinstance(err.get("ctx", {}).get("error"), AlignlabError):
        return str(err["ctx"]["error"])
    return msg.removeprefix("Value error, ")


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` laid over `base`, nested sections merged key by key (command-line options)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def load_validated(path: Path, model: type[ModelT], what: str,
                   overrides: dict[str, Any] | None = None) -> tuple[ModelT, PositionedYaml]:
    """Read a YAML file and validate it as `model`; every problem at once, as file:line:col.
    Serves alignlab.yaml and any file a config section names (a mix recipe)."""
    try:
        doc = load_yaml(path)
    except YamlSyntaxError as e:
        raise ConfigError(str(e)) from e
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: {what} must be a mapping of keys to values")
    problems = [f"{path}:{line}:{col}: duplicate key '{keys[-1]}'" for keys, (line, col) in doc.duplicate_keys]
    try:
        value = model.model_validate(_merged(data, overrides or {}))
    except ValidationError as e:
        value = None
        problems += [f"{doc.where(tuple(err['loc']))}: {'.'.join(map(str, err['loc']))}: {_message(err)}"
                     for err in e.errors()]
    if problems or value is None:
        raise ConfigError(f"invalid {what}:\n" + "\n".join(problems))
    return value, doc


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate; every problem is reported at once as `file:line:col: message`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (create one with `alignlab init`)")
    cfg, _ = load_validated(path, Config, "config", overrides)
    cfg._base_dir = path.resolve().parent
    cfg._source = path.resolve()
    return cfg
