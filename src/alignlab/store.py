"""Run directories, atomic writes and manifests.

Every stage writes into `runs/<name>/<stage>/`. Files are written to a temporary name and
renamed into place, so a reader never sees half a file; the stage's `manifest.json` is written
last, so its presence means the stage finished. A stage whose manifest fingerprint matches
the current one (config + inputs + code) is skipped on re-run.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from alignlab.errors import StoreError
from alignlab.records import Pair, Sample

MANIFEST = "manifest.json"


# ---------------------------------------------------------------- fingerprints

def fingerprint(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys), so equal configs hash equally."""
    payload = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


_file_hash_memo: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_hash_memo:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _file_hash_memo[key] = h.hexdigest()
    return _file_hash_memo[key]


def tree_fingerprint(root: str | Path, pattern: str = "**/*") -> str:
    """Fingerprint of every file under `root` (names and bytes), for folders of inputs."""
    root = Path(root)
    files = sorted(p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    return fingerprint([(str(p.relative_to(root)), file_fingerprint(p)) for p in files])


def code_version(*objects: Any) -> str:
    """Fingerprint of the source that defines `objects`: a package's whole folder (code and
    prompt templates), the file of a module, function or class, or a file named by its path.

    Recorded in each manifest so that editing a stage's code re-runs that stage.
    """
    files: set[Path] = set()
    for o in objects:
        if hasattr(o, "__path__"):  # a package
            for folder in o.__path__:
                files.update(p for p in Path(folder).rglob("*")
                             if p.is_file() and p.suffix in (".py", ".jinja", ".yaml", ".json"))
        elif isinstance(o, Path):
            files.add(o)
        elif inspect.getsourcefile(o):
            files.add(Path(inspect.getsourcefile(o)))
    return fingerprint([(p.name, file_fingerprint(p)) for p in sorted(files)])


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("alignlab", "torch", "transformers", "accelerate", "peft"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------- atomic writes

def _explain(e: OSError, path: Path) -> StoreError:
    if e.errno == errno.ENOSPC:
        why = "the disk is full"
    elif e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        why = "the run directory is not writable"
    else:
        why = e.strerror or str(e)
    return StoreError(f"cannot write {path}: {why}. Files written before this one are intact; "
                      f"free space or fix permissions and re-run to continue where it stopped.")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make every output private to its writer
    except OSError as e:
        raise _explain(e, path) from e
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        raise _explain(e, path) from e
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _as_dict(row: Any) -> dict[str, Any]:
    return row.to_dict() if hasattr(row, "to_dict") else row


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write rows (dicts or records) atomically; returns the row count."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(_as_dict(row), ensure_ascii=False, default=str) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
    return n


class JsonlStream:
    """Rows written as they are decided, to `.<name>.partial` beside `path`; `finish()` renames
    the whole file into place in one step, so `path` is never half-written. A run killed half-way
    leaves only the partial file, which the next run starts again from empty."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.rows = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.partial, "w", encoding="utf-8")
        except OSError as e:
            raise _explain(e, self.path) from e

    def write(self, row: Any) -> None:
        self._file.write(json.dumps(_as_dict(row), ensure_ascii=False, default=str) + "\n")
        self.rows += 1

    def finish(self) -> int:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.partial, self.path)
        except OSError as e:
            raise _explain(e, self.path) from e
        return self.rows

    def close(self) -> None:
        """Stop writing without finishing (an error or an interrupt): the partial file stays."""
        if not self._file.closed:
            self._file.close()


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; a bad line raises with its file:line."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise StoreError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise StoreError(f"{path}:{lineno}: each line must be a JSON object")
            yield row


def read_samples(path: str | Path) -> list[Sample]:
    return [Sample.from_dict(d, f"{path}:{i}") for i, d in enumerate(read_jsonl(path), 1)]


def read_pairs(path: str | Path) -> list[Pair]:
    return [Pair.from_dict(d, f"{path}:{i}") for i, d in enumerate(read_jsonl(path), 1)]


# ---------------------------------------------------------------- run and stage directories

@dataclass(frozen=True)
class StageDir:
    """`runs/<name>/<stage>/`: outputs, the resolved config, and a manifest written last."""

    path: Path
    stage: str

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        try:
            return read_json(self.manifest_path)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(self, stage_fingerprint: str) -> bool:
        m = self.manifest()
        return bool(m) and m.get("fingerprint") == stage_fingerprint

    def invalidate(self) -> None:
        """Forget that this stage finished (its outputs stay until overwritten). Every process of
        a distributed stage may call it at once: whichever unlinks second finds nothing to do."""
        self.manifest_path.unlink(missing_ok=True)

    def write_manifest(self, *, fingerprint: str, inputs: dict[str, str], config: Any,
                       counts: dict[str, Any], started: float, extra: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
        outputs = {p.name: file_fingerprint(p) for p in sorted(self.path.iterdir())
                   if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
        manifest = {
            "stage": self.stage,
            "fingerprint": fingerprint,
            "inputs": inputs,
            "outputs": outputs,
            "config": config,
            "counts": counts,
            "timings": {"started": started, "finished": time.time(),
                        "seconds": round(time.time() - started, 3)},
            "versions": versions(),
            "argv": sys.argv,
            **(extra or {}),
        }
        write_json(self.manifest_path, manifest)
        return manifest


@dataclass(frozen=True)
class RunDir:
    path: Path

    def stage(self, name: str) -> StageDir:
        d = StageDir(self.path / name, name)
        try:
            d.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _explain(e, d.path) from e
        return d
