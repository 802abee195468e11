"""The aligned model's card: `align/selected/README.md`, so the directory is a Hugging Face
model repo that says where it came from.

The lineage: the model alignment started from (and, for the supervised student, the training
stage that produced it), the teacher and judge, the ladder whose pairs it was trained on with
each rung's measured quality, the loss and its settings, the curriculum, and the held-out
reward accuracy before and after. Every line is read from the stages' manifests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.config import Config
from alignlab.store import write_text


def model_card(cfg: Config, *, start_id: str, counts: dict[str, Any], pairs_manifest: dict[str, Any],
               license: str) -> str:
    a, pairs = cfg.align, pairs_manifest.get("counts") or {}
    before, after = counts.get("heldout_reward_accuracy_before"), counts.get("heldout_reward_accuracy")
    data = (f"{counts['desirable']} desirable and {counts['undesirable']} undesirable answers "
            f"({counts['unpaired_from']})" if "desirable" in counts else f"{counts.get('pairs')} preference pairs")
    lines = ["---", f"license: {license}", "library_name: transformers", "pipeline_tag: text-generation",
             "tags:", "- alignlab", f"- {a.loss.kind}", f"base_model: {start_id}", "---", "",
             f"# {cfg.name}: aligned with {a.loss.kind}", "",
             "## Lineage", "",
             f"- started from: `{start_id}`" + (" (the supervised student, after the last training phase)"
                                                 if a.start == "sft" else ""),
             f"- teacher: `{cfg.models.teacher}`; judge: `{cfg.judge}`; taxonomy: `{cfg.taxonomy}`",
             f"- trained on: {data}, from the pairs stage `{pairs_manifest.get('fingerprint', '?')}`",
             f"- loss: `{a.loss.model_dump(mode='json')}`; order: {counts.get('order')}; epochs: {a.epochs}; "
             f"lr: {a.lr}; {counts.get('steps')} optimizer steps; selected checkpoint: {counts.get('selected')}",
             f"- held-out reward accuracy: {_pct(before)} before, {_pct(after)} after", "",
             "## Ladder (strongest first), each rung's quality on the held-out prompts", ""]
    measured = {r.get("rung"): r for r in pairs_manifest.get("rungs") or []}
    for i, model in enumerate(pairs.get("ladder") or []):
        quality = measured.get(i, {}).get("quality")
        lines.append(f"{i}. `{model}`" + (f" — quality {quality:.2f} of 5" if quality is not None else ""))
    return "\n".join(lines + [""])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def write_model_card(model_dir: Path, text: str) -> Path:
    return write_text(model_dir / "README.md", text)
