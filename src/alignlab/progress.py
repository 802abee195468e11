"""One progress display for every long-running step: a bar with counts, rate, elapsed and ETA,
plus a free-text status (accepted/rejected, loss, tokens/s) the step keeps up to date."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn,
    TimeElapsedColumn, TimeRemainingColumn,
)
from rich.text import Text


class StatusColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("status", "")), style="dim")


def progress_bar(console: Console | None = None, transient: bool = False) -> Progress:
    """Use as a context manager; `add_task(description, total=N, status="...")`."""
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=30),
        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        StatusColumn(), console=console, transient=transient,
    )
