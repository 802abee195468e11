"""The README documents what exists: every config key and every command."""

from __future__ import annotations

from pathlib import Path

from alignlab.cli import app, taxonomy_app
from alignlab.config_reference import with_reference

README = Path(__file__).parent.parent / "README.md"


def test_readme_opens_with_the_two_commands():
    code = README.read_text().split("```")[1]
    assert [line.split("#")[0].strip() for line in code.strip().splitlines()[1:]] == ["make demo", "make test"]


def test_config_reference_is_current():
    text = README.read_text()
    assert text == with_reference(text), "run: python -m alignlab.config_reference README.md"


def test_every_command_is_documented():
    text = README.read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert len(names) > 10
    for name in names:
        assert f"`alignlab {name.rstrip('_')}" in text, name
    for c in taxonomy_app.registered_commands:
        assert f"`alignlab taxonomy {c.name}" in text, c.name
