"""Every key of alignlab.yaml with its default and meaning, rendered from the typed config, so
the README's reference cannot drift from the code (a test compares them).

    python -m alignlab.config_reference              # print the reference
    python -m alignlab.config_reference README.md    # rewrite the README's reference block
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from alignlab.config import Config

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """The config sections a field holds: directly, as `X | None`, as `list[X]`, or as a list of
    a union of sections (the curation steps), unwrapping `Annotated` on the way."""
    found: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        a = stack.pop(0)
        if isinstance(a, type) and issubclass(a, BaseModel):
            found.append(a)
        else:
            stack.extend(get_args(a))
    return found


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(exclude_defaults=True) or v.model_dump() for v in value]
    return json.dumps(value, default=str)


def rows(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(dotted key, default as JSON, description) for every key, sections expanded in place:
    `train.phases[].lr` for the items of a list, `curate.steps[].dedup.jaccard` for the
    members of a list of tagged steps."""
    for name, field in model.model_fields.items():
        if name == "step" and prefix.endswith(f"{field.default}."):
            continue  # the tag of a curation step: its name is already in the key
        key = f"{prefix}{name}"
        sections = _sections(field.annotation)
        description = (field.description or "").replace("|", "\\|")
        if not sections:
            yield key, _default(field), description
            continue
        is_list = get_origin(field.annotation) is list
        default = _default(field)
        if is_list or default:
            yield key, default, description
        for section in sections:
            tag = section.model_fields.get("step")
            item = f"{key}[]." if is_list else f"{key}."
            if tag is not None and len(sections) > 1:
                item += f"{tag.default}."
            yield from rows(section, item)


def reference_markdown() -> str:
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, description in rows():
        shown = default if len(default) <= 60 else default[:57] + "..."
        lines.append(f"| `{key}` | `{shown}` | {description} |" if shown else f"| `{key}` | | {description} |")
    return "\n".join(lines) + "\n"


def with_reference(readme: str) -> str:
    """`readme` with the block between the markers replaced by the current reference."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference_markdown()}{END}{tail}"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
        path.write_text(with_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(reference_markdown(), end="")
