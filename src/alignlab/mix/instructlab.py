"""Each mixed phase also in the layout InstructLab's training reads, so the data can be trained
with an existing InstructLab set-up:

    runs/<name>/mix/instructlab/knowledge_train_msgs_<name>.jsonl   phase `knowledge`
    runs/<name>/mix/instructlab/skills_train_msgs_<name>.jsonl      phase `skills`
    runs/<name>/mix/instructlab/<phase>_train_msgs_<name>.jsonl     any other phase, same pattern

InstructLab's data mixing names its files `knowledge_train_msgs_<suffix>.jsonl` and
`skills_train_msgs_<suffix>.jsonl`; the suffix here is the run's name rather than a time, so a
re-run writes the same files. Its training loads them with
`datasets.load_dataset("json", data_files=..., split="train")` and reads the `messages` column.
A row InstructLab trains on in full (alignlab's `unmask`, e.g. a document chunk) is one
`pretraining` message with the turns marked `<|user|>` / `<|assistant|>`, as InstructLab's own
knowledge data is. `metadata` is a JSON string, so every row has the same column type for
pyarrow whatever lineage keys a row carries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alignlab.records import Sample
from alignlab.store import write_jsonl

FOLDER = "instructlab"


def file_name(phase: str, run_name: str) -> str:
    return f"{phase}_train_msgs_{run_name}.jsonl"


def instructlab_row(sample: Sample) -> dict[str, Any]:
    messages = sample.messages
    if sample.unmask:
        text = "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in messages)
        messages = [{"role": "pretraining", "content": text}]
    return {"id": sample.id, "messages": messages, "metadata": json.dumps(sample.metadata, sort_keys=True)}


def write_instructlab_phases(folder: Path, phases: dict[str, list[Sample]], run_name: str) -> list[str]:
    """Write one file per phase under `folder`; returns the file names, in phase order."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [file_name(phase, run_name) for phase in phases]
    for stale in folder.glob("*.jsonl"):  # a phase renamed or removed since the last run
        if stale.name not in names:
            stale.unlink()
    for name, rows in zip(names, phases.values()):
        write_jsonl(folder / name, [instructlab_row(s) for s in rows])
    return names
