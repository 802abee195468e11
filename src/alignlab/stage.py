"""What every stage shares: its directory, its fingerprint, and the manifest written last.

A stage function begins with `start_stage(...)`; when `run.done` it returns the finished
manifest instead of working again (unless forced); after its outputs are written it calls
`run.finish(counts)`. The fingerprint covers the stage's settings, the models it uses, the
fingerprints of its inputs (upstream manifests, files) and its own code, so a change to any of
them re-runs the stage and, through the inputs, everything downstream. Its code is every
alignlab module its entry modules import, however indirectly (see codedeps.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from alignlab.config import Config
from alignlab.errors import AlignlabError
from alignlab.codedeps import stage_code_version
from alignlab.store import StageDir, fingerprint, write_json


@dataclass
class StageRun:
    cfg: Config
    dir: StageDir
    fingerprint: str
    inputs: dict[str, str]
    settings: dict[str, Any]
    started: float = field(default_factory=time.time)
    # The manifest of the last run with this same fingerprint, kept when `force` makes it
    # invalid (generate carries its recovery count on).
    previous: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.dir.is_done(self.fingerprint)

    @property
    def manifest(self) -> dict[str, Any] | None:
        return self.dir.manifest()

    def finish(self, counts: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        write_json(self.dir.file("config.json"), self.cfg.resolved())
        return self.dir.write_manifest(fingerprint=self.fingerprint, inputs=self.inputs,
                                       config=self.settings, counts=counts, started=self.started,
                                       extra=extra)


def start_stage(cfg: Config, name: str, *, settings: dict[str, Any], inputs: dict[str, str],
                code: tuple[str, ...], force: bool = False) -> StageRun:
    """Open `runs/<name>/<stage>/` and compute the stage's fingerprint. `code` names the
    stage's entry modules (its own, and any it imports by name at run time); `force`: the
    stage is about to redo its work although nothing changed."""
    stage_dir = cfg.run_dir.stage(name)
    fp = fingerprint({"stage": name, "settings": settings, "inputs": inputs,
                      "code": stage_code_version(*code)})
    run = StageRun(cfg=cfg, dir=stage_dir, fingerprint=fp, inputs=inputs, settings=settings)
    # A stage about to run with other inputs, or forced to redo its work, no longer holds what
    # its last manifest says: forget that it finished, so a run stopped midway (Ctrl-C, a crash)
    # leaves later stages told "has not finished", never handed the previous run's outputs as current.
    if run.done:
        run.previous = run.manifest
    if run.manifest is not None and (force or not run.done):
        stage_dir.invalidate()
    return run


def finished_stage(cfg: Config, name: str) -> StageDir:
    """An upstream stage's directory; a clear error when it has not finished yet."""
    stage_dir = StageDir(cfg.run_dir.path / name, name)
    if stage_dir.manifest() is None:
        raise AlignlabError(f"stage '{name}' has not finished in {stage_dir.path}; "
                            f"run `alignlab {name} -c <config>` (or `alignlab run`) first")
    return stage_dir


def upstream(cfg: Config, name: str) -> str:
    """The fingerprint of a finished upstream stage, used as this stage's input fingerprint.
    A stage re-run to recover failed requests keeps its fingerprint but changed its outputs,
    so its recovery count is part of what downstream stages see."""
    manifest = finished_stage(cfg, name).manifest()
    recoveries = manifest.get("recoveries")
    return f"{manifest['fingerprint']}/recovery-{recoveries}" if recoveries else manifest["fingerprint"]
