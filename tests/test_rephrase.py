"""Knowledge rephrasing (`generate.rephrase_per_chunk`): each chunk rewritten by the teacher,
judged faithful to it, and kept as a knowledge sample trained on whole, like the chunk."""

from __future__ import annotations

import json

from test_generate import ScriptedTeacher, run, workspace

from alignlab.sdg.rephrase import GENERATOR, MIN_WORDS, TASK, parse_rewrite
from alignlab.store import read_jsonl

LONG = " ".join(f"word{i}" for i in range(MIN_WORDS))


def test_a_rewrite_loses_its_preamble_and_a_short_one_is_refused():
    assert parse_rewrite(f"Here is the rewritten text:\n{LONG}") == LONG
    assert parse_rewrite(f'"{LONG}"') == LONG
    assert parse_rewrite("Too short to hold the chunk's facts.") is None


def test_every_chunk_is_rewritten_judged_and_kept_like_a_chunk(tmp_path):
    teacher = ScriptedTeacher()
    manifest, cfg = run(workspace(tmp_path, rephrase_per_chunk=2), teacher)
    out = cfg.run_dir.path / "generate"
    chunks = list(read_jsonl(out / "chunks.jsonl"))
    samples = [s for s in read_jsonl(out / "samples.jsonl") if s["metadata"]["generator"] == GENERATOR]
    rejects = [r for r in read_jsonl(out / "rejects.jsonl") if r["record"]["metadata"]["generator"] == GENERATOR]
    assert chunks and len(samples) + len(rejects) == 2 * len(chunks)  # accepted + rejected = candidates
    assert samples and rejects and {r["reason"] for r in rejects} <= {"low_faithfulness", "unparseable"}
    for s in samples:
        assert s["unmask"] and s["metadata"]["leaf_kind"] == "knowledge" and s["metadata"]["chunk_id"]
        assert len(s["messages"][-1]["content"].split()) >= MIN_WORDS
        assert "faithfulness" in s["metadata"]["judges"] and "knowledge_rephrase" in s["metadata"]["templates"]
    # a chunk's first rewrite is greedy, the others sampled: not one text twice
    rewrites = [json.loads(p) for p in teacher.seen if "You rewrite texts" in p]
    assert sorted(r["params"]["temperature"] > 0 for r in rewrites) == [False] * len(chunks) + [True] * len(chunks)
    # the faithfulness judge read each kept rewrite beside the chunk it came from
    judged = [p for p in teacher.seen if TASK in p]  # each request as its JSON payload

    def quoted(text: str) -> str:
        return json.dumps(text)[1:-1]

    by_id = {c["id"]: c["text"] for c in chunks}
    for s in samples:
        rewrite, chunk = s["messages"][-1]["content"], by_id[s["metadata"]["chunk_id"]]
        assert any(quoted(rewrite) in p and quoted(chunk) in p for p in judged)


def test_off_by_default(tmp_path):
    _, cfg = run(workspace(tmp_path), ScriptedTeacher())
    samples = read_jsonl(cfg.run_dir.path / "generate" / "samples.jsonl")
    assert GENERATOR not in {s["metadata"]["generator"] for s in samples}
