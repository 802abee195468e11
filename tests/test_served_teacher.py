"""A served teacher keeps what the same model keeps in-process, on every family of server.

The scripted model answers in-process and behind fake servers that imitate vLLM, llama.cpp /
Ollama and hosted chat APIs (tests/fake_servers.py). The probe must find each one out, prompts
must reach it in a form it can take, and `generate` on the examples must accept the same
samples with the same judge scores; judges must say how they read their scores. A server hit
by 20 % faults must lose nothing that a plain second run does not recover.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from alignlab.config import load_config
from alignlab.llm import open_backend
from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.config import BackendSettings
from alignlab.llm.scripted import ScriptedBackend
from alignlab.llm.serve import running_server
from alignlab.llm.probe import continues
from alignlab.sdg.stage import generate, print_summary
from alignlab.stage import upstream
from alignlab.store import read_jsonl

from fake_servers import Faults, fake_server
from test_generate import workspace

FAST = {"timeout": 0.5, "backoff": 0.01, "max_retries": 1}


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def accepted(cfg) -> list[tuple]:
    """What a sample is, apart from who wrote it and how it was judged: id, text, scores."""
    return [(s["id"], json.dumps(s["messages"]),
             {k: j["score"] for k, j in s["metadata"].get("judges", {}).items()})
            for s in read_jsonl(cfg.run_dir.path / "generate" / "samples.jsonl")]


def methods(cfg) -> set[str]:
    out = cfg.run_dir.path / "generate"
    metas = [s["metadata"] for s in read_jsonl(out / "samples.jsonl")]
    metas += [r["record"]["metadata"] for r in read_jsonl(out / "rejects.jsonl")]
    return {j["method"] for m in metas for j in m.get("judges", {}).values()}


def served(tmp_path: Path, url: str, **backend) -> tuple:
    """`generate` on the examples with the teacher behind `url`; again in the same workspace
    when it exists (a plain re-run)."""
    config = tmp_path / "alignlab.yaml"
    if not config.exists():
        workspace(tmp_path, {"models": {"teacher": f"openai:{url}/v1#smollm2"}, "backend": FAST | backend})
    cfg = load_config(config)
    return generate(cfg, console=quiet()), cfg


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> list[tuple]:
    cfg = load_config(workspace(tmp_path_factory.mktemp("in-process")))
    model = CachedBackend(ScriptedBackend("scripted", unparseable_every=9), RequestCache(cfg.cache_path))
    generate(cfg, models=(model, model), console=quiet())
    assert methods(cfg) == {"prefix-logprobs"}
    return accepted(cfg)


@pytest.mark.parametrize("family, mode, method", [
    ("vllm", "continue", "prefix-logprobs"),
    ("llamacpp", "completion", "completion-logprobs"),
    ("hosted", "no-prefix", "first-token-logprobs"),
])
def test_every_server_family_keeps_what_the_model_keeps_in_process(tmp_path, in_process, family, mode, method):
    with running_server(fake_server(family)) as url:
        manifest, cfg = served(tmp_path, url)
    server = manifest["counts"]["teacher_server"]
    assert server["mode"] == mode and server["judge_method"] == method
    assert server["capabilities"]["continues_final_message"] == (family == "vllm")
    assert server["capabilities"]["completions"] == (family != "hosted")
    assert methods(cfg) == {method}
    got = accepted(cfg)
    assert len(got) > 22 and got == in_process  # more than the 7 chunks and 15 seed Q&A


def test_a_chat_server_without_logprobs_judges_by_json_with_one_repair(tmp_path):
    app = fake_server("hosted", logprobs=False)
    with running_server(app) as url:
        manifest, cfg = served(tmp_path, url)
    counts = manifest["counts"]
    assert counts["teacher_server"]["judge_method"] == "json" and methods(cfg) == {"json"}
    assert app.state.requests["repair"] > 0  # prose replies were asked again, once
    assert counts["samples"] - counts["chunk_samples"] - counts["seed_samples"] > 0
    judged = [j["score"] for s in read_jsonl(cfg.run_dir.path / "generate" / "samples.jsonl")
              for j in s["metadata"].get("judges", {}).values()]
    assert judged and all(float(x).is_integer() for x in judged)  # whole numbers: no distribution


def test_the_probe_is_cached_per_server_and_model_and_settings_override_it(tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    app = fake_server("llamacpp")
    with running_server(app) as url:
        first = open_backend(f"openai:{url}/v1#smollm2", BackendSettings(**FAST), cache)
        assert first.capabilities.completions and not first.capabilities.continues_final_message
        asked = sum(app.state.requests.values())
        again = open_backend(f"openai:{url}/v1#smollm2", BackendSettings(**FAST), cache)
        assert again.capabilities == first.capabilities and sum(app.state.requests.values()) == asked
        assert again.mode == "completion"
        forced = open_backend(f"openai:{url}/v1#smollm2", BackendSettings(
            **FAST, server={"continues_final_message": True}), cache)
        assert forced.mode == "continue" and forced.judge_method == "prefix-logprobs"
        # answers cached under one rendering are not reused under another
        assert forced.cache_identity != again.cache_identity


def test_a_server_used_the_wrong_way_is_named_in_the_summary(tmp_path):
    """llama.cpp told to continue messages (what every run did before the probe): judges read
    chatter, leaves keep nothing, and the summary names the cause and the setting."""
    with running_server(fake_server("llamacpp")) as url:
        manifest, cfg = served(tmp_path, url, server={"continues_final_message": True})
    counts = manifest["counts"]
    assert counts["samples"] - counts["chunk_samples"] - counts["seed_samples"] == 0
    console = Console(record=True, width=400)
    print_summary(console, cfg, manifest)
    text = console.export_text()
    assert "likely cause: backend.server.continues_final_message is set" in text
    assert "continues a final assistant message: yes" in text  # the findings as used
    assert "judges fell back to reading the score from the text" in text


def test_faults_lose_nothing_a_plain_second_run_does_not_recover(tmp_path):
    faults = Faults(rate=0.0)
    app = fake_server("vllm", faults=faults)
    with running_server(app) as url:
        _, clean_cfg = served(tmp_path / "clean", url)
        reference = (clean_cfg.run_dir.path / "generate" / "samples.jsonl").read_bytes()
        faults.rate, faults.arrivals = 0.2, type(faults.arrivals)()
        first, cfg = served(tmp_path / "faulty", url)
        before = upstream(cfg, "generate")
        failed = sum(first["counts"]["by_reason"].get(r, 0) for r in ("teacher_error", "judge_error"))
        assert set(faults.injected) == {"500", "503", "429", "timeout", "reset", "nonjson"}
        assert failed > 0  # one retry is not enough for every fault: some requests failed
        second, _ = served(tmp_path / "faulty", url)  # plain: no --force
        third, _ = served(tmp_path / "faulty", url)  # nothing left to recover: skipped
    assert second["counts"]["retried"] == failed and second["counts"]["recovered"] == failed
    assert not any(r in second["counts"]["by_reason"] for r in ("teacher_error", "judge_error"))
    assert (cfg.run_dir.path / "generate" / "samples.jsonl").read_bytes() == reference
    assert third == second
    assert upstream(cfg, "generate") != before  # curate and later stages see the recovered samples


def test_the_probe_tells_continuation_from_prompt_token_counts():
    # (with continue_final_message, without it, the user turn alone)
    assert continues(12, 17, 10)  # vLLM: the flag saves the end of turn and a new generation prompt
    assert continues(11, 11, 10)  # alignlab serve: always continues, the prefix adds a token
    assert not continues(15, 15, 10)  # llama.cpp, Ollama: a closed turn and a new one either way
    assert not continues(None, 15, 10)  # no usage reported: do not guess
