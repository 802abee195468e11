"""The qna.yaml format, checked with instructlab-schema's own JSON schemas.

The schema files `$ref` each other (`./version.json`), so they are served to jsonschema
through a `referencing` registry that reads them from the installed package. The schema for a
file is picked by its `version` key and its top folder (foundational skills use the
compositional skills schema, as InstructLab does).
"""

from __future__ import annotations

import functools
import json
from pathlib import PurePosixPath
from typing import Any

from instructlab.schema import schema_base, schema_versions
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from alignlab.taxonomy.leaf import Problem, problem_at
from alignlab.yamlpos import PositionedYaml

# Lists whose repeated items `checks.duplicate_questions` reports by question, more precisely.
_UNIQUE_CHECKED_ELSEWHERE = ("seed_examples", "questions_and_answers")


def known_versions() -> list[int]:
    return [int(v.name[1:]) for v in schema_versions()]


@functools.lru_cache
def _resource(version: int, uri: str) -> Resource:
    path = PurePosixPath(f"v{version}", uri.removeprefix("./"))
    contents = json.loads(schema_base().joinpath(str(path)).read_text(encoding="utf-8"))
    return Resource.from_contents(contents, default_specification=DRAFT202012)


@functools.lru_cache
def _validator(version: int, schema_name: str) -> Draft202012Validator:
    schema = _resource(version, f"{schema_name}.json").contents
    registry = Registry(retrieve=functools.partial(_resource, version))
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema, registry=registry)


def key_label(keys: tuple | list) -> str:
    """("seed_examples", 2, "answer") -> "seed_examples[2].answer"."""
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "top level"


def schema_problems(doc: PositionedYaml, tree: str, leaf: str | None) -> list[Problem]:
    """Every way `doc` breaks the instructlab-schema for its `version` and tree."""
    data = doc.data
    schema_name = "knowledge" if tree == "knowledge" else "compositional_skills"
    versions = known_versions()
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version not in versions:
        # The newest schema reports a missing or unknown version against its own `const`.
        version = versions[-1]
    schema = _resource(version, f"{schema_name}.json").contents
    if schema.get("deprecated"):
        return [problem_at(doc, ("version",), f"version {version}: {schema.get('description')}", leaf)]
    problems, missing = [], {}
    for error in _validator(version, schema_name).iter_errors(data):
        if error.validator == "required":  # one line per object listing all its missing keys
            missing.setdefault(tuple(error.absolute_path), []).append(error.message.split("'")[1])
            continue
        problems += [problem_at(doc, keys, message, leaf) for keys, message in _describe(error, version)]
    for keys, names in missing.items():
        where = f" in {key_label(keys)}" if keys else ""
        plural = "s" if len(names) > 1 else ""
        problems.append(problem_at(doc, keys, f"missing required key{plural} "
                                              f"{', '.join(map(repr, sorted(names)))}{where}", leaf))
    # The `$ref`ed version schema repeats some checks (type: object); report each once.
    return sorted(set(problems), key=lambda p: (p.line, p.col, p.message))


def _describe(error: ValidationError, version: int) -> list[tuple[tuple, str]]:
    """Where an error points and what it says; nothing for what our own checks report."""
    keys = tuple(error.absolute_path)
    label = key_label(keys)
    kind, expected = error.validator, error.validator_value
    if kind in ("unevaluatedProperties", "additionalProperties") and isinstance(error.instance, dict):
        # Keys declared by a `$ref`ed schema (version.json's `version`) are allowed too.
        known = list(error.schema.get("properties", {}))
        if "$ref" in error.schema:
            known = list(_resource(version, error.schema["$ref"]).contents.get("properties", {})) + known
        where = f" in {label}" if keys else ""
        return [(keys + (key,), f"unknown key {key!r}{where}; allowed: {', '.join(known)}")
                for key in error.instance if key not in known]
    if kind == "minItems":
        return [(keys, f"{label}: needs at least {expected} items, has {len(error.instance)}")]
    if kind == "minLength":
        return [(keys, f"{label}: must not be empty")]
    if kind == "uniqueItems":
        if keys and keys[-1] in _UNIQUE_CHECKED_ELSEWHERE:
            return []
        return [(keys, f"{label}: items must be unique")]
    if kind == "type":
        return [(keys, f"{label}: must be {_article(expected)}, got {_yaml_type(error.instance)}")]
    if kind == "const":
        return [(keys, f"{label}: must be {expected!r}, got {error.instance!r}")]
    return [(keys, f"{label}: {error.message[-200:]}")]


def _article(expected: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer"}
    if isinstance(expected, list):
        return " or ".join(names.get(e, e) for e in expected)
    return names.get(expected, str(expected))


def _yaml_type(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", bool: "a boolean",
             float: "a number", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)
