"""What a curation step is: a function `(samples, settings, ctx) -> one Verdict per sample`.

A verdict says keep or reject with a reason (and a detail worth auditing: which sample it
duplicates, which eval set it shares an n-gram with). A kept sample may come back changed: a
revised answer, or a judge score added to its metadata. Steps that need a model ask the context
for one, so the request cache, batching settings and tests' fake backends are one concern here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alignlab.config import Config
from alignlab.llm import Backend
from alignlab.models import StageModels
from alignlab.records import Sample


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str = ""  # why it was rejected; "" when kept
    detail: dict[str, Any] = field(default_factory=dict)
    sample: Sample | None = None  # a kept sample's replacement
    note: str = ""  # a kept sample's remark worth counting, e.g. "unrevised"


KEEP = Verdict(True)


def reject(reason: str, **detail: Any) -> Verdict:
    return Verdict(False, reason, detail)


@dataclass
class StepContext:
    """The config, the models steps ask for (`StageModels`: opened once, behind the request
    cache) and progress."""

    cfg: Config
    progress: Any = None  # a rich Progress (alignlab.progress.progress_bar) or None
    backends: Mapping[str, Backend] = field(default_factory=dict)  # spec -> backend; tests put fakes here
    models: StageModels = field(init=False)

    def __post_init__(self) -> None:
        self.models = StageModels(self.cfg, given=self.backends)

    def backend(self, spec: str) -> Backend:
        return self.models.backend(spec)

    def track(self, description: str, total: int) -> Callable[..., None]:
        """A task on the progress display; call the result with how many items just finished."""
        if self.progress is None:
            return lambda n=1, **status: None
        task = self.progress.add_task(description, total=total, status="")

        def advance(n: int = 1, **status: Any) -> None:
            self.progress.update(task, advance=n,
                                 **({"status": " ".join(f"{k} {v}" for k, v in status.items())}
                                    if status else {}))
        return advance

    def close(self) -> None:
        self.models.close()


StepFunction = Callable[[list[Sample], Any, StepContext], list[Verdict]]


def leaf_of(sample: Sample) -> str:
    return str(sample.metadata.get("leaf") or "(no leaf)")
