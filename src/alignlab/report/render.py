"""Laying the sections out as one HTML page (Jinja2, autoescaped) and writing it atomically."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from alignlab.artefacts import REPORT
from alignlab.report import sections_data, sections_models
from alignlab.report.blocks import Section, Text
from alignlab.report.load import RunData, load_run
from alignlab.store import write_text

REPORT_NAME = REPORT
log = logging.getLogger(__name__)

SectionBuilder = Callable[[RunData], Section]
BUILDERS: tuple[tuple[str, str, SectionBuilder], ...] = (
    ("overview", "Overview", sections_data.overview),
    ("taxonomy", "Taxonomy", sections_data.taxonomy),
    ("funnel", "Generation and curation funnel", sections_data.funnel),
    ("judges", "Judge scores", sections_data.judges),
    ("mixes", "Phase mixes", sections_data.mixes),
    ("training", "Training", sections_models.training),
    ("evaluation", "Evaluation before and after each phase", sections_models.evaluation),
    ("pairs", "Preference pairs and alignment", sections_models.pairs),
    ("final", "Base → SFT → aligned", sections_models.final),
)


def build_sections(run: RunData) -> list[Section]:
    """Every section in order. A section whose inputs have a shape it does not expect says so
    in the page instead of taking the whole report down with it."""
    sections = []
    for id, title, build in BUILDERS:
        try:
            sections.append(build(run))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            log.warning("report section %s failed", id, exc_info=True)
            sections.append(Section(id, title, [Text(
                f"This section could not be built from the run's files ({type(e).__name__}: {e}).", "warn")]))
    return sections


def _environment() -> jinja2.Environment:
    # Autoescaping on: sample texts come from a model and may hold any markup.
    return jinja2.Environment(loader=jinja2.PackageLoader("alignlab", "report"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(run: RunData, generated_at: datetime | None = None) -> str:
    """The page; everything but the `generated` time is the same for the same run."""
    generated_at = generated_at or datetime.now(UTC)
    return _environment().get_template("report.html.jinja").render(
        run=run, sections=build_sections(run), generated=generated_at.strftime("%Y-%m-%d %H:%M UTC"))


def write_report(run_dir: str | Path) -> Path:
    """Write `<run_dir>/report.html` and return its path."""
    run = load_run(run_dir)
    return write_text(run.path / REPORT_NAME, render_html(run))
