"""The pieces a report section is made of — headings, text, tables and figures — and the number
formats they share.

Sections are built as plain data from these blocks; the template only lays them out, so all the
decisions (what to show, how to colour a delta) stay in Python and are easy to test. Every text
is plain text: the template escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MISSING = "–"


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""  # CSS classes: num, gain, loss, good, bad, selected, leaf, text, muted
    title: str = ""  # shown on hover: the untruncated text or the full model path


@dataclass
class Heading:
    text: str
    kind: str = "heading"


@dataclass
class Text:
    text: str
    cls: str = ""  # "note" for a stage not run yet, "warn" for a problem
    kind: str = "text"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    foot: list[list[Cell]] = field(default_factory=list)
    cls: str = ""  # "examples" for tables of long texts
    kind: str = "table"

    @property
    def column_classes(self) -> list[str]:
        """A column is right-aligned when its cells are numbers."""
        first = self.rows[0] if self.rows else (self.foot[0] if self.foot else [])
        return ["num" if i < len(first) and "num" in first[i].cls.split() else ""
                for i in range(len(self.columns))]


@dataclass
class Figure:
    src: str  # a data: URI
    alt: str
    width: int  # CSS pixels at which the image is shown (it is drawn denser, for sharp text)
    caption: str = ""
    kind: str = "figure"


Block = Heading | Text | Table | Figure


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    note: str = ""  # set when the section has nothing to show yet, saying why

    @classmethod
    def missing(cls, id: str, title: str, note: str) -> Section:
        return cls(id=id, title=title, note=note)


# ---------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def pct(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1%}"


def num(value: Any, digits: int = 3, cls: str = "") -> Cell:
    return Cell(fmt(value, digits), f"num {cls}".strip())


def measured(value: float | None, ci: Any = None, cls: str = "", percent: bool = False) -> Cell:
    """A figure followed by its 95 % interval."""
    show = pct if percent else fmt
    interval = "" if not ci or value is None else f" [{show(ci[0])}, {show(ci[1])}]"
    return Cell(show(value) + interval, f"num {cls}".strip(), "95 % interval" if interval else "")


def rate(value: float | None, cls: str = "") -> Cell:
    return Cell(pct(value), f"num {cls}".strip())


def text(value: Any, cls: str = "", title: str = "") -> Cell:
    return Cell(MISSING if value is None else str(value), cls, title)


def leaf(path: str) -> Cell:
    return Cell(path, "leaf", path)


def delta(value: float | None, digits: int = 3, tolerance: float = 1e-9) -> Cell:
    """A change: gains green, losses red, no change plain."""
    if value is None:
        return Cell(MISSING, "num")
    cls = "gain" if value > tolerance else "loss" if value < -tolerance else ""
    return Cell(f"{value:+.{digits}f}", f"num {cls}".strip())


def truncate(value: Any, limit: int = 280) -> str:
    s = " ".join(str(value).split()) if value is not None else ""
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def short_model(spec: Any, limit: int = 48) -> Cell:
    """A model spec or path, shortened to its tail for a table, whole on hover."""
    s = MISSING if spec is None else str(spec)
    shown = s if len(s) <= limit else "…" + s[-(limit - 1):]
    return Cell(shown, "model", s)
