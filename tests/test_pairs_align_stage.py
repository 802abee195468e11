"""`alignlab pairs` then `alignlab align` on tiny models: the stages end to end."""

from __future__ import annotations

import json

from rich.console import Console

from alignlab.config import load_config
from alignlab.records import Reject
from alignlab.store import read_json, read_jsonl, read_pairs, read_samples, write_jsonl
from alignlab.train.align import align_stage
from alignlab.train.loop import train_loop
from alignlab.errors import AlignlabError
from alignlab.pairs.stage import choose_prompts, pairs_stage, resolve_ladder
from test_curate_fixtures import sample, write_stage_output

QUIET = Console(file=open("/dev/null", "w"))


def workspace(tmp_path, model_dir, **align):
    (tmp_path / "taxonomy").mkdir()
    config = {"name": "t", "models": {"teacher": str(model_dir), "student": str(model_dir)},
              "pairs": {"ladder": [str(model_dir), f"{model_dir}?layers=1"], "max_prompts": 10,
                        "max_tokens": 12, "heldout_fraction": 0.3},
              "align": {"start": str(model_dir), "epochs": 1, "batch_pairs": 2, "lr": 1e-3, "max_length": 128,
                        **align}}
    (tmp_path / "alignlab.yaml").write_text(json.dumps(config))
    cfg = load_config(tmp_path / "alignlab.yaml")
    rows = [sample(f"s{i}", f"Question number {i} about topic {i % 3}?", f"Answer {i}.",
                   leaf=f"compositional_skills/leaf{i % 3}") for i in range(12)]
    rows.append(sample("chunk", "Share what you know.", "A chunk of a document.", unmask=True,
                       kind="knowledge", generator="knowledge_chunk"))
    write_stage_output(cfg, "curate", rows)
    return cfg


def test_prompts_are_spread_over_leaves_and_skip_document_chunks():
    rows = [sample(f"a{i}", f"qa {i}", "x", leaf="A") for i in range(5)]
    rows += [sample("b0", "qb", "x", leaf="B"), sample("c", "chunk", "x", unmask=True)]
    chosen = choose_prompts(rows, 3, seed=0)
    assert {s.metadata["leaf"] for s in chosen[:2]} == {"A", "B"}
    assert all(not s.unmask for s in chosen) and len(chosen) == 3


def test_pairs_then_align_end_to_end(tmp_path, tiny_model_dir, monkeypatch):
    cfg = workspace(tmp_path, tiny_model_dir)
    manifest = pairs_stage(cfg, console=QUIET)
    out = cfg.run_dir.path / "pairs"
    train, held = read_pairs(out / "pairs.jsonl"), read_pairs(out / "heldout_pairs.jsonl")
    counts = manifest["counts"]
    assert counts["prompts"] == 10 and counts["pairs"] == len(train) and counts["heldout_pairs"] == len(held)
    # one rung pair per prompt; every prompt either gave a pair or a reject with its reason
    assert len(train) + len(held) + counts["rejected"] == 10
    assert {p.metadata["prompt_index"] for p in held}.isdisjoint({p.metadata["prompt_index"] for p in train})
    assert all(p.metadata["gap"] == 1 and p.metadata["chosen_rung"] == 0 for p in train)
    assert "0>1" in manifest["agreement"]
    # every rung graded on the held-out prompts, in ladder order
    rungs = read_json(out / "rungs.json")
    assert [r["rung"] for r in rungs] == [0, 1] and rungs == manifest["rungs"]
    assert all(r["prompts"] == 3 for r in rungs)  # 30 % of 10 prompts held out, each answered
    assert all(r["scored"] <= r["prompts"] and "quality" in r for r in rungs)
    assert pairs_stage(cfg, console=QUIET)["timings"] == manifest["timings"]  # unchanged: skipped
    from datasets import load_from_disk

    exported = load_from_disk(str(out / "dataset"))
    assert exported["train"]["id"] == [p.id for p in train] and exported["test"].num_rows == len(held)
    assert "license: other" in (out / "parquet" / "README.md").read_text()  # the taxonomy has no LICENSE

    result = align_stage(cfg, console=QUIET)
    align_dir = cfg.run_dir.path / "align"
    stored = read_pairs(align_dir / "pairs_with_reference.jsonl")
    assert all("ref_chosen_logp" in p.metadata for p in stored)
    metrics = list(read_jsonl(align_dir / "metrics.jsonl"))
    assert metrics and {"rewards/margin", "rewards/accuracy", "rewards/chosen", "difficulty"} <= set(metrics[0])
    assert (align_dir / "selected" / "config.json").is_file()
    card = (align_dir / "selected" / "README.md").read_text()
    assert f"started from: `{result['inputs']['start']}`" in card and manifest["fingerprint"] in card
    assert f"0. `{manifest['counts']['ladder'][0]}`" in card and "loss: `{'kind': 'dpo'" in card
    c = result["counts"]
    assert c["selected"] in read_json(align_dir / "scores.json")
    assert c["heldout_reward_accuracy_before"] == 0.5  # the DPO policy starts as its own reference: all ties
    assert 0.0 <= c["heldout_reward_accuracy"] <= 1.0
    again = align_stage(cfg, console=QUIET)
    assert again["timings"] == result["timings"]

    # --force trains again from the start model, not from the finished run's last checkpoint
    import alignlab.train.align as align

    ran = []
    monkeypatch.setattr(align, "train_loop", lambda *a, **k: ran.append(train_loop(*a, **k)) or ran[-1])
    forced = align_stage(cfg, force=True, console=QUIET)
    assert ran and ran[0].resumed_from is None and ran[0].step == c["steps"]
    assert forced["timings"] != result["timings"] and forced["counts"]["steps"] == c["steps"]


def test_slic_needs_no_reference(tmp_path, tiny_model_dir):
    cfg = workspace(tmp_path, tiny_model_dir, loss={"kind": "slic"})
    pairs_stage(cfg, console=QUIET)
    align_stage(cfg, console=QUIET)
    assert not (cfg.run_dir.path / "align" / "pairs_with_reference.jsonl").exists()


def test_kto_trains_on_the_judged_samples(tmp_path, tiny_model_dir):
    cfg = workspace(tmp_path, tiny_model_dir, loss={"kind": "kto"})
    rejected = [sample(f"bad{i}", f"Question number {i}?", f"No idea {i}", leaf="compositional_skills/leaf0")
                for i in range(4)]
    write_jsonl(cfg.run_dir.path / "curate" / "rejects.jsonl",
                [Reject(s.id, "low_quality", "curate", s.to_dict()) for s in rejected])
    pairs_stage(cfg, console=QUIET)
    c = align_stage(cfg, console=QUIET)["counts"]
    assert (c["desirable"], c["undesirable"], c["unpaired_from"]) == (12, 4, "judged")
    stored = read_samples(cfg.run_dir.path / "align" / "unpaired_with_reference.jsonl")
    assert len(stored) == 16 and all("ref_kl_logp" in s.metadata for s in stored)
    assert not (cfg.run_dir.path / "align" / "pairs_with_reference.jsonl").exists()  # not trained on
    assert (cfg.run_dir.path / "align" / "heldout_with_reference.jsonl").exists()  # the checkpoint metric
    metrics = list(read_jsonl(cfg.run_dir.path / "align" / "metrics.jsonl"))
    assert metrics and {"rewards/chosen", "rewards/rejected", "rewards/margin", "kl"} <= set(metrics[0])
    assert c["heldout_reward_accuracy_before"] == 0.5  # KTO's reward is DPO's: all ties at the start


def test_a_rung_naming_the_same_model_the_same_way_is_one_rung(tmp_path, tiny_model_dir):
    import pytest

    cfg = workspace(tmp_path, tiny_model_dir)
    cfg.pairs.ladder = ["teacher", "student", "student(temperature=1.0)"]  # teacher and student: one model
    rungs, specs, labels = resolve_ladder(cfg)
    assert [r.temperature for r in rungs] == [0.0, 1.0] and labels[1] == labels[0] + "(temperature=1)"
    cfg.pairs.ladder = ["teacher", "student"]
    with pytest.raises(AlignlabError, match="single model"):
        resolve_ladder(cfg)


def test_knowledge_pairs_are_verified_by_their_chunk(tmp_path, tiny_model_dir):
    cfg = workspace(tmp_path, tiny_model_dir)
    chunk = "The lighthouse of Kelmarra was built in 1852 of grey basalt."
    rows = [sample(f"k{i}", f"Question {i} about the lighthouse?", f"Answer {i}.", kind="knowledge",
                   leaf="knowledge/kelmarra", generator="knowledge_qa") for i in range(4)]
    for row in rows:
        row.metadata["chunk_id"] = "c0"
    document = sample("doc", "Share what you know.", chunk, unmask=True, kind="knowledge", generator="knowledge_chunk")
    document.metadata["chunk_id"] = "c0"
    write_stage_output(cfg, "curate", rows + [document])
    cfg.pairs.ladder = [f"{tiny_model_dir}(context)", f"{tiny_model_dir}?layers=1"]
    manifest = pairs_stage(cfg, console=QUIET)
    out = cfg.run_dir.path / "pairs"
    verified = [p.metadata.get("verified_by") for p in read_pairs(out / "pairs.jsonl") + read_pairs(out / "heldout_pairs.jsonl")]
    dropped = [r for r in read_jsonl(out / "rejects.jsonl") if r["reason"] == "evidence_contradicts"]
    assert len(verified) + len(dropped) == manifest["agreement"]["0>1"]["by_evidence"] == 4  # every pair
    assert all(v.startswith("evidence:") for v in verified)
    assert manifest["counts"]["ladder"][0].endswith("(context)")
