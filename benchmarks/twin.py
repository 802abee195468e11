"""Twin runs for the ablation benchmarks: a second run directory that starts from the first
run's finished stages, so only the stages under comparison run again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_copy(source: Path, target: Path) -> None:
    """Copy by hard links: checkpoints are gigabytes, and every stage writes new files by
    renaming, so the twin never changes the original's files through a shared link."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link)
    else:
        shutil.copy2(source, target)
