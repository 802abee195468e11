"""`alignlab generate --dry-run`: its counts against a real run's on the scripted teacher, and
that it leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rich.console import Console
from typer.testing import CliRunner

from alignlab.cli import app
from alignlab.config import load_config
from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.config import BackendSettings
from alignlab.llm.openai_backend import OpenAIBackend
from alignlab.llm.scripted import ScriptedBackend
from alignlab.sdg.dry_run import KindTiming, Probe, dry_run, print_dry_run
from alignlab.sdg.generators import generator
from alignlab.sdg.stage import print_summary
from test_generate import JUDGES, ScriptedTeacher, run, workspace

# Every judge's lowest score passes, and only an identical question is too similar: every
# candidate survives every step, so the real run sends every request the plan counts.
EVERYTHING_PASSES = {"thresholds": dict.fromkeys(JUDGES, 1.0), "rouge_threshold": 1.0}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dry_run_counts_exactly_the_requests_a_run_sends_when_every_candidate_passes(tmp_path):
    config = workspace(tmp_path / "run", **EVERYTHING_PASSES)
    manifest, _ = run(config, ScriptedBackend())
    counts = manifest["counts"]
    assert counts["rejected"] == 0 and counts["sent"]["requests"] > 0

    planner = ScriptedBackend()
    planned = dry_run(load_config(workspace(tmp_path / "plan", **EVERYTHING_PASSES)), models=(planner, planner),
                      probe_per_kind=0)
    total = planned.total
    assert total.requests == counts["sent"]["requests"]
    # and as each generator declares: the requests of a candidate that survives every step
    declared = sum(generator(g).requests * n for g, n in _candidates_by_generator(tmp_path / "run").items())
    assert total.requests == declared
    # Tokens are bounds: replies at their max_tokens, later prompts quoting those replies.
    assert total.prompt_tokens >= counts["sent"]["prompt_tokens"]
    assert total.completion_tokens >= counts["sent"]["completion_tokens"]
    assert set(planned.by_leaf) == set(counts["by_leaf"]) and planner.seen == []


def _candidates_by_generator(workspace_dir: Path) -> dict[str, int]:
    out = workspace_dir / "runs" / "t" / "generate"
    by_generator: dict[str, int] = {}
    for line in (out / "samples.jsonl").read_text().splitlines():
        g = json.loads(line)["metadata"]["generator"]
        if g not in ("knowledge_chunk", "knowledge_seed"):
            by_generator[g] = by_generator.get(g, 0) + 1
    return by_generator


def test_dry_run_is_an_upper_bound_when_candidates_are_rejected(tmp_path):
    manifest, _ = run(workspace(tmp_path / "run"), ScriptedTeacher())
    assert manifest["counts"]["rejected"] > 0
    teacher = ScriptedTeacher()
    planned = dry_run(load_config(workspace(tmp_path / "plan")), models=(teacher, teacher), probe_per_kind=0)
    assert planned.total.requests > manifest["counts"]["sent"]["requests"]


def test_probe_bypasses_the_request_cache_and_nothing_is_written(tmp_path):
    config = workspace(tmp_path / "ws", sections={"backend": {"cache": str(tmp_path / "shared.sqlite")}})
    cfg = load_config(config)
    cache = RequestCache(cfg.cache_path)
    teacher = ScriptedBackend()
    cached = CachedBackend(teacher, cache)
    before = tree(tmp_path / "ws")
    planned = dry_run(cfg, models=(cached, cached), probe_per_kind=2)
    kinds = planned.probe.kinds
    # every planned request is of one kind, and each kind sent at most 2 of its own
    assert sum(k.planned for k in kinds) == planned.total.requests and len(kinds) > 1
    assert planned.probe.requests == sum(min(2, k.planned) for k in kinds)
    assert len(teacher.seen) == planned.probe.requests  # the probe reached the model...
    assert len(cache) == 0  # ...around the cache
    assert tree(tmp_path / "ws") == before and not cfg.run_dir.path.exists()
    assert planned.probe.estimate() is not None


def test_each_kind_runs_as_wide_as_its_backend_declares_through_the_cache(tmp_path):
    class EightAtOnce(ScriptedBackend):
        parallel_width = 8

    cfg = load_config(workspace(tmp_path))
    cached = CachedBackend(EightAtOnce(), RequestCache(tmp_path / "cache.sqlite"))
    kinds = dry_run(cfg, models=(cached, cached), probe_per_kind=1).probe.kinds
    assert kinds and {k.width for k in kinds} == {8}
    served = OpenAIBackend("openai:http://127.0.0.1:9/v1#m", BackendSettings(max_in_flight=5))
    assert served.parallel_width == 5 and ScriptedBackend().parallel_width == 1


def test_time_estimate_scales_each_kind_by_its_own_count_between_no_batching_and_free_batching():
    verdicts = KindTiming(planned=100, sent=4, seconds=0.4, width=16)  # 0.1 s a verdict, alone
    answers = KindTiming(planned=10, sent=4, seconds=8.0, width=16)  # 2 s an answer, alone
    low, high = Probe([verdicts, answers]).estimate()
    assert high == pytest.approx(100 * 0.1 + 10 * 2.0)  # nothing runs more at once than probed
    assert low == pytest.approx(0.4 * 7 + 8.0 * 1)  # ceil(100/16) = 7 batches; 10 answers fit one
    assert Probe([verdicts, KindTiming(planned=3, sent=3, failed=3, seconds=1.0)]).estimate() is None


def test_cost_is_shown_when_a_price_is_set(tmp_path):
    config = workspace(tmp_path, sections={"backend": {"price_per_million_tokens": 2.5}}, **EVERYTHING_PASSES)
    cfg = load_config(config)
    teacher = ScriptedBackend()
    planned = dry_run(cfg, models=(teacher, teacher), probe_per_kind=3)
    console = Console(record=True, width=240)
    print_dry_run(console, cfg, planned)
    text = console.export_text()
    cost = planned.total.tokens * 2.5 / 1e6
    assert f"{planned.total.requests:,} requests" in text and f"cost {cost:,.4f}" in text
    header = next(line for line in text.splitlines() if "prompt tokens" in line)
    assert "cost" in header and "sampled requests" in text  # per leaf too; and the time

    manifest, cfg = run(config, ScriptedBackend())  # the real run's summary, in the same terms
    console = Console(record=True, width=240)
    print_summary(console, cfg, manifest)
    measured, text = manifest["counts"]["sent"], console.export_text()
    assert f"sent to the teacher and judge: {measured['requests']:,} requests" in text and "per million" in text


def test_cli_dry_run_on_a_local_teacher_writes_nothing(tmp_path, tiny_model_dir):
    config = workspace(tmp_path / "ws", samples_per_seed=1, qa_per_chunk=1, max_new_tokens=12,
                       max_question_tokens=12)
    settings = json.loads(config.read_text())
    settings["models"] = {"teacher": str(tiny_model_dir)}
    config.write_text(json.dumps(settings))
    before = tree(tmp_path / "ws")
    result = CliRunner().invoke(app, ["generate", "-c", str(config), "--dry-run", "--probe", "2",
                                      "--leaf", "compositional_skills/*"])
    assert result.exit_code == 0, result.output
    assert "generate would send" in result.output and "cost" not in result.output  # no price set
    assert tree(tmp_path / "ws") == before and not (tmp_path / "ws" / "runs").exists()


def test_a_server_not_up_yet_is_planned_as_a_typical_one_and_said_so(tmp_path):
    """A fleet still starting: the plan is made without it (as for a vLLM-like server, tokens
    counted here) and says so, with no time estimate; its counts are those of the same plan
    made against such a server once it is up (one chunk per document, so that how tokens are
    counted cannot move chunk boundaries)."""
    import socket

    from fake_servers import fake_server

    from alignlab.llm.serve import running_server

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = load_config(workspace(tmp_path / "down", {"models": {"teacher": f"openai:http://127.0.0.1:{closed}/v1#smollm2"}},
                                 chunk_tokens=100_000))
    offline = dry_run(down)
    assert list(offline.unreachable) == [down.models.teacher]
    assert "cannot reach the model server" in offline.unreachable[down.models.teacher]
    assert offline.probe.requests == 0 and offline.probe.estimate() is None
    out = tmp_path / "plan.txt"
    with out.open("w") as f:
        print_dry_run(Console(file=f, width=1000), down, offline)
    text = out.read_text()
    assert "planned as a vLLM-like server" in text and "no time estimate until it answers" in text
    assert not down.run_dir.path.exists()  # nothing written, as ever

    with running_server(fake_server("vllm")) as url:
        up = load_config(workspace(tmp_path / "up", {"models": {"teacher": f"openai:{url}/v1#smollm2"}},
                                   chunk_tokens=100_000))
        online = dry_run(up, probe_per_kind=0)
    assert not online.unreachable
    assert {leaf: t.requests for leaf, t in offline.by_leaf.items()} == \
        {leaf: t.requests for leaf, t in online.by_leaf.items()}
    assert offline.total.requests > 0
