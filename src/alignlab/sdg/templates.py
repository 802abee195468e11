"""Prompt templates: Jinja files under `sdg/prompts/`, one conversation per file.

A template renders to text in which a line `### system`, `### user` or `### assistant` starts
a message. A final assistant message is a prefill the model continues (e.g. "Score:"). Each
template's hash goes into the lineage of every row it produced, so a changed prompt is visible
in the data and re-runs the stage. A user folder of templates can override built-ins by name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import jinja2

from alignlab.errors import ConfigError

BUILTIN_DIR = Path(__file__).parent / "prompts"
_ROLE_LINE = re.compile(r"^### (system|user|assistant)[ \t]*$", re.MULTILINE)
_env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          trim_blocks=True, lstrip_blocks=True, autoescape=False)


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    text: str

    @cached_property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    @cached_property
    def compiled(self) -> jinja2.Template:
        """Compiled once per template: compiling costs far more than rendering, and every
        candidate of every step renders the same few templates."""
        return _env.from_string(self.text)

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        try:
            rendered = self.compiled.render(**variables)
        except jinja2.UndefinedError as e:
            raise ConfigError(f"template {self.path}: {e.message}") from e
        parts = _ROLE_LINE.split(rendered)
        if parts[0].strip():
            raise ConfigError(f"template {self.path}: text before the first '### <role>' line")
        messages = [{"role": role, "content": content.strip("\n")}
                    for role, content in zip(parts[1::2], parts[2::2])]
        if not messages:
            raise ConfigError(f"template {self.path}: no '### system|user|assistant' lines")
        return messages


@cache
def load_template(name: str, override_dir: str | None = None) -> Template:
    for folder in ([Path(override_dir)] if override_dir else []) + [BUILTIN_DIR]:
        path = folder / f"{name}.jinja"
        if path.is_file():
            return Template(name=name, path=path, text=path.read_text(encoding="utf-8"))
    raise ConfigError(f"prompt template '{name}' not found in "
                      f"{override_dir + ' or ' if override_dir else ''}{BUILTIN_DIR}")
