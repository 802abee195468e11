"""`alignlab init`: a new workspace, a copy of the demo — its commented alignlab.yaml (the
embedded model as teacher, judge and student) and its three-leaf taxonomy — to edit from."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from alignlab.errors import AlignlabError

STARTER = Path(__file__).parent / "starter"


def create_workspace(folder: str | Path, force: bool = False) -> list[Path]:
    folder = Path(folder)
    config, taxonomy = folder / "alignlab.yaml", folder / "taxonomy"
    existing = [p for p in (config, taxonomy) if p.exists()]
    if existing and not force:
        raise AlignlabError(f"{', '.join(map(str, existing))} already exist(s); nothing was written "
                            f"(use --force to overwrite)")
    folder.mkdir(parents=True, exist_ok=True)
    text = (STARTER / "alignlab.yaml").read_text(encoding="utf-8")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-.") or "default"
    config.write_text(re.sub(r"(?m)^name: .*$", f"name: {name}", text, count=1), encoding="utf-8")
    # --force overwrites the starter's own files and nothing else: leaves the user wrote (and a
    # cloned taxonomy's .git) stay where they are.
    written = shutil.copytree(STARTER / "taxonomy", taxonomy, dirs_exist_ok=True,
                              ignore=shutil.ignore_patterns("__pycache__"))
    starter = STARTER / "taxonomy"
    return [config, *sorted(written / p.relative_to(starter) for p in starter.rglob("*")
                            if p.is_file() and "__pycache__" not in p.parts)]
