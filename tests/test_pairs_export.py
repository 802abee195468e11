"""The pairs as a Hugging Face dataset, Parquet and a dataset card, loaded the way TRL's
DPOTrainer takes them."""

from __future__ import annotations

import json

import pytest

from alignlab.pairs.export import dataset_card, export_pairs, taxonomy_license
from alignlab.records import Pair

COUNTS = {"prompts": 3, "pairs": 3, "heldout_pairs": 1, "rejected": 2, "by_reason": {"identical_answers": 2},
          "by_difficulty": {"1.0": 3}, "ladder": ["big(context)", "small"]}
AGREEMENT = {"0>1": {"pairs": 4, "by_evidence": 2, "agree": 3, "disagree": 1, "dropped": 0, "agreement": 0.75}}
RUNGS = [{"rung": 0, "quality": 3.5, "quality_low": 3.0, "quality_high": 4.0},
         {"rung": 1, "quality": 2.25, "quality_low": None, "quality_high": None}]


def _pairs(n: int, start: int = 0) -> list[Pair]:
    return [Pair(f"p{k}", [{"role": "user", "content": f"What is {k} plus {k}?"}],
                 [{"role": "assistant", "content": f"{k} plus {k} is {2 * k}."}],
                 [{"role": "assistant", "content": f"It is {2 * k + 1}, I think."}],
                 {"difficulty": 1.0, "chosen_model": "big(context)", "rejected_model": "small", "gap": 1,
                  **({"support_chosen": 0.5} if k % 2 else {})})
            for k in range(start, start + n)]


def test_export_writes_dataset_parquet_and_card(tmp_path):
    from datasets import load_dataset, load_from_disk

    written = export_pairs(tmp_path, _pairs(3), _pairs(1, 3), counts=COUNTS, agreement=AGREEMENT, rungs=RUNGS,
                           license="apache-2.0", name="demo")
    on_disk = load_from_disk(written["dataset"])
    assert on_disk["train"].num_rows == 3 and on_disk["test"].num_rows == 1
    row = on_disk["train"][1]
    assert row["prompt"] == [{"role": "user", "content": "What is 1 plus 1?"}]
    assert row["chosen"][0]["role"] == "assistant" and json.loads(row["metadata"])["support_chosen"] == 0.5
    parquet = load_dataset("parquet", data_files={s: f"{written['parquet']}/{s}.parquet" for s in ("train", "test")})
    assert parquet["train"]["id"] == on_disk["train"]["id"]
    card = (tmp_path / "parquet" / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    for fact in ("3 train, 1 test", "identical_answers 2", "| 0 | `big(context)` | 3.50 | 3.00 to 4.00 |",
                 "| 1 | `small` | 2.25 | - |", "| 0>1 | 4 | 2 | 3 | 1 | 0 | 75% |"):
        assert fact in card, fact


def test_an_empty_test_split_still_exports(tmp_path):
    from datasets import load_from_disk

    export_pairs(tmp_path, _pairs(2), [], counts=COUNTS, agreement={}, rungs=[], license="other", name="x")
    assert load_from_disk(str(tmp_path / "dataset"))["test"].num_rows == 0


def test_licence_comes_from_the_taxonomy(tmp_path):
    assert taxonomy_license(tmp_path) == "other"
    (tmp_path / "LICENSE").write_text("Attribution-ShareAlike 4.0 International\n\nCreative Commons ...")
    assert taxonomy_license(tmp_path) == "cc-by-sa-4.0"
    (tmp_path / "LICENSE").write_text("                                 Apache License\n Version 2.0")
    assert taxonomy_license(tmp_path) == "apache-2.0"
    assert "license: mit" in dataset_card("x", COUNTS, {}, [], "mit")


def test_trl_dpo_trainer_takes_the_dataset_unchanged(tmp_path, tiny_model_dir):
    """TRL's DPOTrainer, built on the dataset as saved, tokenises it to the same answer tokens
    alignlab trains on, and takes one optimizer step."""
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from alignlab.train.preference import tokenize_pair

    export_pairs(tmp_path, _pairs(4), _pairs(2, 4), counts=COUNTS, agreement={}, rungs=[], license="other", name="x")
    data = load_from_disk(str(tmp_path / "dataset"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = DPOConfig(output_dir=str(tmp_path / "trl"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     save_strategy="no", logging_steps=1, use_cpu=True, dataset_num_proc=None)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
                         train_dataset=data["train"], processing_class=tokenizer)
    ours = {p.id: tokenize_pair(tokenizer, p) for p in _pairs(4)}
    for row in trainer.train_dataset:
        mine = ours[row["id"]]
        assert row["prompt_ids"] == mine.prompt_ids
        assert row["chosen_ids"] == mine.chosen_ids and row["rejected_ids"] == mine.rejected_ids
    result = trainer.train()
    assert result.global_step == 1
