"""InstructLab's findings on a qna.yaml, in alignlab's words and at the key they are about.

The verdict is InstructLab's (see `instructlab.py`); this module only says each finding the
way the rest of alignlab speaks (`seed_examples[2]: must not be empty`) and places it at the
line and column of the key at fault, which InstructLab can only give when `yq` is installed.
A message this module does not recognise is passed on as InstructLab wrote it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from instructlab.schema import schema_base, schema_versions

from alignlab.taxonomy.instructlab import Finding, Verdict
from alignlab.taxonomy.leaf import Problem
from alignlab.yamlpos import PositionedYaml

_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def known_versions() -> list[int]:
    return [int(v.name[1:]) for v in schema_versions()]


def key_label(keys: tuple | list) -> str:
    """("seed_examples", 2, "answer") -> "seed_examples[2].answer"."""
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "top level"


def yaml_path_keys(yaml_path: str) -> tuple:
    """".seed_examples[2].answer" (a JSON path as InstructLab prints it) -> ("seed_examples", 2, "answer")."""
    keys: list[Any] = []
    for part in yaml_path.strip(".").split("."):
        if not part:
            continue
        name, _, _ = part.partition("[")
        if name:
            keys.append(name)
        keys += [int(i) for i in _INDEX.findall(part)]
    return tuple(keys)


def verdict_problems(verdict: Verdict, doc: PositionedYaml | None, qna_path: Path, leaf: str | None,
                     schema_name: str) -> list[Problem]:
    """One problem per thing InstructLab reported (an unknown-keys error becomes one per key)."""
    problems = []
    for finding in verdict.findings:
        problems += _problems(finding, verdict.version, doc, qna_path, leaf, schema_name)
    return problems


def _problems(finding: Finding, version: int, doc: PositionedYaml | None, qna_path: Path,
              leaf: str | None, schema_name: str) -> list[Problem]:
    keys = yaml_path_keys(finding.yaml_path) if finding.yaml_path else ()
    if finding.yaml_path is not None:  # a schema error
        said = _reworded(finding.message, keys, version, doc, schema_name)
    elif finding.line is not None:  # yamllint, which always gives its place
        said = [((), f"YAML lint: {finding.message}")]
    elif "not supported for knowledge" in finding.message or "Cannot load schema file" in finding.message:
        said = [(("version",), _version_message(finding.message, version))]
    else:
        said = [((), finding.message)]
    out = []
    for where, message in said:
        line, col = doc.loc(where) if doc is not None else (1, 1)
        if finding.line is not None:  # InstructLab's own line wins; our column only where they agree
            line, col = finding.line, finding.col or (col if finding.line == line else 1)
        out.append(Problem(qna_path, line, col, message, leaf, finding.severity))
    return out


def _version_message(message: str, version: int) -> str:
    if "Cannot load schema file" in message:
        return (f"version {version} is not a schema version instructlab-schema knows "
                f"({', '.join(map(str, known_versions()))})")
    return message


def _reworded(message: str, keys: tuple, version: int, doc: PositionedYaml | None,
              schema_name: str) -> list[tuple[tuple, str]]:
    """jsonschema's sentences, said the alignlab way, each at the key it is about."""
    label = key_label(keys)
    value = _value_at(doc.data, keys) if doc is not None else None
    where = f" in {label}" if keys else ""
    if m := re.search(r"'([^']+)' is a required property$", message):
        return [(keys, f"missing required key {m.group(1)!r}{where}")]
    if m := re.fullmatch(r"Value must have at least (\d+) items", message):
        has = f", has {len(value)}" if isinstance(value, list) else ""
        return [(keys, f"{label}: needs at least {m.group(1)} items{has} (schema version {version})")]
    if message.endswith("should be non-empty"):
        return [(keys, f"{label}: must not be empty")]
    if m := re.search(r"is not of type (.+)$", message):
        expected = " or ".join(_article(t) for t in _QUOTED.findall(m.group(1)))
        return [(keys, f"{label}: must be {expected}, got {_yaml_type(value)}")]
    if m := re.search(r"^(.+) was expected$", message):
        return [(keys, f"{label}: must be {m.group(1)}, got {value!r}")]
    if m := re.search(r"properties are not allowed \((.+) (?:was|were) unexpected\)$", message):
        allowed = ", ".join(allowed_keys(version, schema_name, keys))
        return [(keys + (key,), f"unknown key {key!r}{where}; allowed: {allowed}")
                for key in _QUOTED.findall(m.group(1))]
    if message.endswith("has non-unique elements"):
        return [(keys, f"{label}: two items are identical; remove one")]
    return [(keys, f"{label}: {message}")]


def allowed_keys(version: int, schema_name: str, keys: tuple) -> list[str]:
    """The keys the schema declares for the object at `keys` (its `$ref`ed `version` included)."""
    node = _schema(version, f"{schema_name}.json")
    for key in keys:
        node = node.get("items", {}) if isinstance(key, int) else node.get("properties", {}).get(key, {})
    names = list(node.get("properties", {}))
    if "$ref" in node:
        names = list(_schema(version, node["$ref"]).get("properties", {})) + names
    return names


def _schema(version: int, name: str) -> dict:
    return json.loads(schema_base().joinpath(f"v{version}", name.removeprefix("./")).read_text(encoding="utf-8"))


def _value_at(data: Any, keys: tuple) -> Any:
    for key in keys:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _article(expected: str) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer"}
    return names.get(expected, expected)


def _yaml_type(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", bool: "a boolean",
             float: "a number", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)
