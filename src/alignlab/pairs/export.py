"""The pairs in the formats people load: a Hugging Face `datasets` dataset on disk, Parquet,
and a dataset card.

    runs/<name>/pairs/dataset/            DatasetDict.save_to_disk: splits train and test
    runs/<name>/pairs/parquet/{train,test}.parquet
    runs/<name>/pairs/parquet/README.md   the dataset card (YAML header: licence, the Parquet
                                          files as the default config), so the folder is a Hub repo

Each row is TRL's conversational preference format — `prompt` (messages), `chosen` and
`rejected` (one assistant message each) — plus `id` and the pair's `metadata` as a JSON string
(its keys differ between pairs, a column type cannot). `datasets.load_from_disk(...)["train"]`
goes straight into `trl.DPOTrainer(train_dataset=...)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignlab.records import Pair
from alignlab.store import write_text

# The first words of common licence texts, for a taxonomy that ships a LICENSE file.
LICENSES = {"apache license": "apache-2.0", "mit license": "mit", "attribution 4.0": "cc-by-4.0",
            "attribution-sharealike 4.0": "cc-by-sa-4.0", "cc0": "cc0-1.0"}


def taxonomy_license(taxonomy: Path) -> str:
    """The licence of the taxonomy as a Hub licence id, from its LICENSE file; 'other' if none."""
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING"):
        path = taxonomy / name
        if path.is_file():
            head = path.read_text(errors="replace")[:2000].lower()
            # Longest names first, so "attribution-sharealike 4.0" is not read as "attribution 4.0".
            for words, spdx in sorted(LICENSES.items(), key=lambda kv: -len(kv[0])):
                if words in head:
                    return spdx
    return "other"


def pair_columns(pairs: Sequence[Pair]) -> dict[str, list[Any]]:
    """Column lists (rather than rows, so an empty split keeps its columns)."""
    return {"id": [p.id for p in pairs], "prompt": [p.prompt for p in pairs], "chosen": [p.chosen for p in pairs],
            "rejected": [p.rejected for p in pairs],
            "metadata": [json.dumps(p.metadata, sort_keys=True, ensure_ascii=False) for p in pairs]}


def export_pairs(out: Path, train: Sequence[Pair], test: Sequence[Pair], *, counts: dict[str, Any],
                 agreement: dict[str, Any], rungs: list[dict[str, Any]], license: str, name: str) -> dict[str, str]:
    """Write the dataset, the Parquet files and the card; returns what was written where."""
    from datasets import Dataset, DatasetDict, Features, Value

    messages = [{"role": Value("string"), "content": Value("string")}]
    features = Features({"id": Value("string"), "prompt": messages, "chosen": messages, "rejected": messages,
                         "metadata": Value("string")})
    splits = DatasetDict({split: Dataset.from_dict(pair_columns(rows), features=features)
                          for split, rows in (("train", train), ("test", test))})
    # One shard per split even when a split is empty: zero shards would not load back.
    splits.save_to_disk(str(out / "dataset"), num_shards={split: 1 for split in splits})
    parquet = out / "parquet"
    parquet.mkdir(parents=True, exist_ok=True)
    for split, data in splits.items():
        data.to_parquet(str(parquet / f"{split}.parquet"))
    write_text(parquet / "README.md", dataset_card(name, counts, agreement, rungs, license))
    return {"dataset": str(out / "dataset"), "parquet": str(parquet), "card": str(parquet / "README.md")}


def dataset_card(name: str, counts: dict[str, Any], agreement: dict[str, Any], rungs: list[dict[str, Any]],
                 license: str) -> str:
    lines = ["---", f"license: {license}", "task_categories:", "- text-generation", "tags:", "- dpo",
             "- preference", "- alignlab", "configs:", "- config_name: default", "  data_files:",
             "  - split: train", "    path: train.parquet", "  - split: test", "    path: test.parquet", "---", "",
             f"# {name}: preference pairs", "",
             "Pairs built without human labels by alignlab: the same prompts answered by a ladder of models, "
             "the stronger rung's answer chosen, the weaker's rejected, each pair verified by the evidence "
             "(knowledge: which answer the source chunk supports) or by a judge in both orders.", "",
             f"- pairs: {counts.get('pairs', 0)} train, {counts.get('heldout_pairs', 0)} test (held-out prompts), "
             f"from {counts.get('prompts', 0)} prompts; {counts.get('rejected', 0)} rejected "
             f"({', '.join(f'{r} {n}' for r, n in (counts.get('by_reason') or {}).items()) or 'none'})",
             f"- by difficulty: {counts.get('by_difficulty', {})}",
             f"- licence of the taxonomy the prompts come from: {license}", "",
             "## Rungs (strongest first) and their quality on the held-out prompts", "",
             "| rung | model | quality (1-5) | 95% interval |", "|---|---|---|---|"]
    measured = {r.get("rung"): r for r in rungs}
    for i, model in enumerate(counts.get("ladder") or []):
        q = measured.get(i, {})
        interval = "-" if q.get("quality_low") is None else f"{q['quality_low']:.2f} to {q['quality_high']:.2f}"
        quality = "-" if q.get("quality") is None else f"{q['quality']:.2f}"
        lines.append(f"| {i} | `{model}` | {quality} | {interval} |")
    lines += ["", "## Agreement of the evidence with the ladder, per rung pair", "",
              "| rungs | pairs | by evidence | agree | disagree | dropped | agreement |", "|---|---|---|---|---|---|---|"]
    for key, a in agreement.items():
        rate = "-" if a.get("agreement") is None else f"{a['agreement']:.0%}"
        lines.append(f"| {key} | {a.get('pairs')} | {a.get('by_evidence', 0)} | {a.get('agree')} | "
                     f"{a.get('disagree')} | {a.get('dropped')} | {rate} |")
    lines += ["", "## Loading", "", "```python", "from datasets import load_dataset",
              "pairs = load_dataset(\"parquet\", data_files={\"train\": \"train.parquet\", \"test\": \"test.parquet\"})",
              "# trl.DPOTrainer(model=..., train_dataset=pairs[\"train\"], ...)", "```", ""]
    return "\n".join(lines)
