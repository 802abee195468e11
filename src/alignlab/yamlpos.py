"""YAML with positions: load a file and remember the line of every key and item.

Both alignlab.yaml errors and taxonomy validation report `file:line:col`; this is the one
place that maps a path inside the document (`("generate", "judges", 0, "threshold")`) back to
where it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[int, int]  # 1-based line, column


@dataclass
class PositionedYaml:
    path: Path
    data: Any
    positions: dict[tuple, Loc] = field(default_factory=dict)
    duplicate_keys: list[tuple[tuple, Loc]] = field(default_factory=list)

    def loc(self, keys: tuple | list) -> Loc:
        """Position of the deepest prefix of `keys` that exists (the parent when a key is missing)."""
        keys = tuple(keys)
        while keys and keys not in self.positions:
            keys = keys[:-1]
        return self.positions.get(keys, (1, 1))

    def where(self, keys: tuple | list) -> str:
        line, col = self.loc(keys)
        return f"{self.path}:{line}:{col}"


class YamlSyntaxError(ValueError):
    def __init__(self, path: Path, line: int, col: int, message: str):
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path, self.line, self.col, self.message = path, line, col, message


def _walk(node: yaml.Node, keys: tuple, out: PositionedYaml) -> None:
    out.positions.setdefault(keys, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                out.duplicate_keys.append((keys + (key,), where))
            seen.add(key)
            out.positions[keys + (key,)] = where
            _walk(value_node, keys + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, keys + (i,), out)


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path, text: str | None = None) -> PositionedYaml:
    """Parse YAML and record positions; a syntax error raises `YamlSyntaxError` with file:line:col."""
    path = Path(path)
    if text is None:
        text = path.read_text(encoding="utf-8")
    try:
        try:
            # libyaml where present (several times faster: a large taxonomy is thousands of files);
            # a file it refuses is parsed again in Python, whose error messages users see.
            node = yaml.compose(text, Loader=_FAST_LOADER)
            data = yaml.load(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(path, line, col, f"YAML syntax: {e.problem or e}") from e
    out = PositionedYaml(path=path, data=data)
    if node is not None:
        _walk(node, (), out)
    return out
