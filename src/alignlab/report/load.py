"""Everything the report shows, read from a run directory as the stages left it.

`load_run(run_dir)` reads each stage's outputs when they exist and leaves `None` (or an empty
collection) where a stage has not run yet, so a partial run still gives a report. A file that
exists but cannot be read does not stop the report either: it becomes a line in `problems`
(with its file:line) and its part of the report says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alignlab.artefacts import COUNTS, EVAL_ALIGNED, EVAL_SFT, MIX_SUMMARY, PAIRS, REJECTS, SAMPLES
from alignlab.errors import AlignlabError
from alignlab.records import Sample
from alignlab.store import MANIFEST, read_json, read_jsonl, read_samples

T = TypeVar("T")

# The stage folders in pipeline order; eval writes one folder per evaluated model under eval/.
STAGE_DIRS = ("generate", "curate", "mix", "train", "eval", "pairs", "align")
ALIGNED = "aligned"


@dataclass
class RunData:
    path: Path
    problems: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # "generate", "eval/base", ...
    unfinished: list[str] = field(default_factory=list)  # stage folders without a manifest yet
    # generate
    generate_counts: dict[str, Any] | None = None
    samples: list[Sample] = field(default_factory=list)
    generate_rejects: list[dict[str, Any]] = field(default_factory=list)
    # curate
    curate_counts: dict[str, Any] | None = None
    curate_rejects: list[dict[str, Any]] = field(default_factory=list)
    # mix
    mix_summary: dict[str, Any] | None = None
    # train: per phase, in training order
    train_phases: list[dict[str, Any]] = field(default_factory=list)  # phase.json (or the manifest's entry)
    train_metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # eval
    eval_results: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> results.json
    eval_sft: dict[str, Any] | None = None
    eval_aligned: dict[str, Any] | None = None
    # pairs
    pairs_counts: dict[str, Any] | None = None
    pairs_agreement: dict[str, Any] | None = None
    pair_examples: list[dict[str, Any]] = field(default_factory=list)
    # align
    align_metrics: list[dict[str, Any]] = field(default_factory=list)
    align_scores: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str((self.config or {}).get("name") or self.path.name)

    def manifest(self, stage: str) -> dict[str, Any] | None:
        return self.manifests.get(stage)

    def why_missing(self, stage: str) -> str:
        """One line on why a stage's outputs are not in the report: not run yet, or unreadable."""
        problems = [p for p in self.problems if p.startswith(f"{stage}/")]
        if problems:
            return f"The outputs of the {stage} stage could not be read: " + "; ".join(problems)
        if stage in self.unfinished:
            return f"The {stage} stage is running or was stopped before it finished."
        return f"The {stage} stage has not finished for this run yet."

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.path))
        except ValueError:
            return str(path)


def load_run(run_dir: str | Path) -> RunData:
    path = Path(run_dir)
    if not path.is_dir():
        raise AlignlabError(f"{path}: no such run directory; run `alignlab run` first or pass the "
                            f"folder runs/<name> that it wrote")
    run = RunData(path=path)
    _load_manifests(run)
    _load_generate(run)
    _load_curate(run)
    run.mix_summary = _json(run, path / "mix" / MIX_SUMMARY)
    _load_train(run)
    _load_eval(run)
    _load_pairs(run)
    _load_align(run)
    return run


# ---------------------------------------------------------------- readers that never raise

def _guard(run: RunData, path: Path, read: Callable[[Path], T]) -> T | None:
    """`read(path)`, or None when the file is missing; a broken file becomes a problem line."""
    if not path.is_file():
        return None
    try:
        return read(path)
    except json.JSONDecodeError as e:
        run.problems.append(f"{run.rel(path)}:{e.lineno}: not valid JSON ({e.msg})")
    except (AlignlabError, ValueError, OSError) as e:
        run.problems.append(f"{run.rel(path)}: {e}")
    return None


def _json(run: RunData, path: Path) -> Any:
    value = _guard(run, path, read_json)
    if value is not None and not isinstance(value, dict):
        run.problems.append(f"{run.rel(path)}: expected a JSON object, found {type(value).__name__}")
        return None
    return value


def _jsonl(run: RunData, path: Path) -> list[dict[str, Any]]:
    return _guard(run, path, lambda p: list(read_jsonl(p))) or []


# ---------------------------------------------------------------- per stage

def _load_manifests(run: RunData) -> None:
    folders: list[tuple[str, Path]] = []
    for stage in STAGE_DIRS:
        folder = run.path / stage
        if stage == "eval":
            folders += [(f"eval/{d.name}", d) for d in sorted(folder.iterdir()) if d.is_dir()
                        and d.name != "compare"] if folder.is_dir() else []
        elif folder.is_dir():
            folders.append((stage, folder))
    for key, folder in folders:
        manifest = _json(run, folder / MANIFEST)
        if manifest is None:
            run.unfinished.append(key)
        else:
            run.manifests[key] = manifest
    # The resolved config is saved beside every stage's outputs; the latest stage's is the current one.
    for _, folder in reversed(folders):
        if (config := _json(run, folder / "config.json")) is not None:
            run.config = config
            break


def _counts(run: RunData, stage: str) -> dict[str, Any] | None:
    """A stage's counts: its manifest's (a superset: totals, timings of the work), else counts.json
    (written before the manifest, so present while the stage is still finishing)."""
    manifest = run.manifest(stage)
    if manifest and isinstance(manifest.get("counts"), dict):
        return manifest["counts"]
    return _json(run, run.path / stage / COUNTS)


def _load_generate(run: RunData) -> None:
    folder = run.path / "generate"
    run.generate_counts = _counts(run, "generate")
    run.samples = _guard(run, folder / SAMPLES, read_samples) or []
    run.generate_rejects = _jsonl(run, folder / REJECTS)


def _load_curate(run: RunData) -> None:
    folder = run.path / "curate"
    run.curate_counts = _counts(run, "curate")
    run.curate_rejects = _jsonl(run, folder / REJECTS)


def _load_train(run: RunData) -> None:
    folder = run.path / "train"
    manifest = run.manifest("train") or {}
    from_manifest = {p.get("phase"): p for p in manifest.get("phases", [])}
    configured = [p.get("name") for p in ((run.config or {}).get("train") or {}).get("phases", [])]
    on_disk = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    # Training order: the config's, then the manifest's, then whatever else is on disk.
    names = list(dict.fromkeys([*configured, *from_manifest, *on_disk]))
    for name in names:
        if not name or not (folder / name).is_dir():
            continue
        phase = _json(run, folder / name / "phase.json") or dict(from_manifest.get(name) or {})
        phase.setdefault("phase", name)
        if "scores" not in phase and (scores := _json(run, folder / name / "scores.json")):
            phase["scores"] = scores
        metrics = _jsonl(run, folder / name / "metrics.jsonl")
        if metrics or len(phase) > 1:
            run.train_phases.append(phase)
            run.train_metrics[name] = metrics


def _load_eval(run: RunData) -> None:
    folder = run.path / "eval"
    run.eval_sft = _json(run, folder / EVAL_SFT)
    run.eval_aligned = _json(run, folder / EVAL_ALIGNED)
    order = [*((run.eval_sft or {}).get("models") or {}), *((run.eval_aligned or {}).get("models") or {})]
    found = sorted(d.name for d in folder.iterdir() if (d / "results.json").is_file()) if folder.is_dir() else []
    for label in dict.fromkeys([*order, *found]):
        if results := _json(run, folder / label / "results.json"):
            run.eval_results[label] = results


def _load_pairs(run: RunData) -> None:
    folder = run.path / "pairs"
    run.pairs_counts = _counts(run, "pairs")
    run.pairs_agreement = _json(run, folder / "agreement.json")
    if run.pairs_agreement is None and run.manifest("pairs"):
        run.pairs_agreement = run.manifest("pairs").get("agreement")
    run.pair_examples = _guard(run, folder / PAIRS, _first_rows) or []


def _first_rows(path: Path, n: int = 200) -> list[dict[str, Any]]:
    """The first rows only: a few examples are shown, and the file may be large."""
    rows = []
    for row in read_jsonl(path):
        rows.append(row)
        if len(rows) >= n:
            break
    return rows


def _load_align(run: RunData) -> None:
    folder = run.path / "align"
    run.align_metrics = _jsonl(run, folder / "metrics.jsonl")
    run.align_scores = _json(run, folder / "scores.json")
