"""The openai backend: real HTTP round trips against `alignlab serve`, and against a scripted
server that fails on purpose (500s, 429 with Retry-After, timeouts, context length, slow replies)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter, defaultdict

import pytest
from fastapi import FastAPI, Request as HTTPRequest
from fastapi.responses import HTMLResponse, JSONResponse

from alignlab.errors import BackendError
from alignlab.llm import open_backend
from alignlab.llm.config import BackendSettings
from alignlab.llm.openai_backend import OpenAIBackend
from alignlab.llm.openai_wire import chat_body, parse_answer, score_from_echo
from alignlab.llm.serve import create_app, running_server
from alignlab.llm.types import GenerationParams, Request, ScoreRequest

FAST = dict(backoff=0.01, timeout=0.3, max_retries=4)


def chat(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=GenerationParams(**params))


# ------------------------------------------------------------------ against alignlab serve


@pytest.fixture(scope="module")
def served(tiny_backend):
    with running_server(create_app(tiny_backend, "tiny", None)) as url:
        yield url


def test_same_answers_as_the_local_backend(served, tiny_backend):
    remote = open_backend(f"openai:{served}/v1#tiny")
    assert isinstance(remote, OpenAIBackend) and remote.model_id == f"openai:{served}/v1#tiny"
    requests = [chat("Write one line about rain.", max_tokens=10),
                chat("hi", max_tokens=8, n=2, temperature=1.0, seed=3),
                Request(prompt="Once upon a time", params=GenerationParams(max_tokens=8, logprobs=2)),
                Request(messages=({"role": "user", "content": "Name a colour."},
                                  {"role": "assistant", "content": "The colour"}),
                        params=GenerationParams(max_tokens=6))]
    done = []
    got = remote.generate(requests, on_done=lambda i, r: done.append(i))
    want = tiny_backend.generate(requests)
    assert sorted(done) == [0, 1, 2, 3]
    for g, w in zip(got, want):
        assert g.ok and [c.text for c in g.choices] == [c.text for c in w.choices]
        assert [c.completion_tokens for c in g.choices] == [c.completion_tokens for c in w.choices]
    lp_got, lp_want = got[2].choices[0].logprobs, want[2].choices[0].logprobs
    assert [t.token for t in lp_got] == [t.token for t in lp_want]
    assert [tok for tok, _ in lp_got[0].top] == [tok for tok, _ in lp_want[0].top]
    assert remote.stats.calls == 5 and remote.stats.failures == 0  # n=2 went as two requests
    assert remote.stats.completion_tokens > 0 and remote.stats.seconds > 0


def test_loglikelihood_through_echo_equals_the_local_one(served, tiny_backend):
    remote = OpenAIBackend(f"openai:{served}/v1#tiny")
    requests = [ScoreRequest("The capital of France is", " Paris, a city."),
                ScoreRequest("The capital of France is ", "Paris"),  # the space moves to the answer
                ScoreRequest("2 + 2 =", " 4")]
    got, want = remote.loglikelihood(requests), tiny_backend.loglikelihood(requests)
    for g, w in zip(got, want):
        assert g.error is None and g.n_tokens == w.n_tokens
        assert g.logprob == pytest.approx(w.logprob, abs=1e-3)
        assert g.is_greedy == w.is_greedy
    assert remote.count_tokens("hello there, world") == tiny_backend.count_tokens("hello there, world")


def test_sync_generate_works_inside_a_running_event_loop(served):
    remote = OpenAIBackend(f"openai:{served}/v1#tiny")

    async def caller():
        return remote.generate([chat("hi", max_tokens=3)])

    [response] = asyncio.run(caller())
    assert response.ok and response.choices[0].completion_tokens == 3


# ------------------------------------------------------------------ a server that misbehaves


class Script:
    """What the fake server does on each attempt at a prompt; counts what it saw."""

    def __init__(self, plan: dict[str, list[str]] | None = None, delay: float = 0.0):
        self.plan = {k: list(v) for k, v in (plan or {}).items()}
        self.delay = delay
        self.seen: Counter[str] = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.auth: list[str] = []
        self.active = self.peak = 0
        self.ports: set[int] = set()


def fault_app(script: Script, key: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models(request: HTTPRequest):
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        return {"object": "list", "data": []}

    @app.post("/v1/completions")
    async def complete(request: HTTPRequest):
        body = await request.json()
        prompt = body["prompt"]
        script.seen[prompt] += 1
        script.times[prompt].append(time.monotonic())
        script.auth.append(request.headers.get("authorization", ""))
        script.ports.add(request.client.port)
        script.active += 1
        script.peak = max(script.peak, script.active)
        try:
            step = script.plan[prompt].pop(0) if script.plan.get(prompt) else "ok"
            if step == "500":
                return JSONResponse({"error": {"message": "boom"}}, status_code=500)
            if step == "501":  # what a plain file server answers a POST
                return JSONResponse({"error": {"message": "Unsupported method ('POST')"}}, status_code=501)
            if step == "429":
                return JSONResponse({"error": {"message": "slow down"}}, status_code=429,
                                    headers={"Retry-After": "0.3"})
            if step == "html":  # a proxy's error page, sent as 200
                return HTMLResponse("<html>502 Bad Gateway</html>", status_code=200)
            if step == "hang":
                await asyncio.sleep(0.6)  # beyond the client's timeout
            if step == "context":
                return JSONResponse({"error": {"message": "This model's maximum context length is 2048 "
                                               "tokens. However, you requested 5000 tokens."}}, status_code=400)
            if step == "leak":
                said = request.headers.get("authorization")
                return JSONResponse({"error": {"message": f"bad request from {said}"}}, status_code=400)
            if body.get("echo"):
                if body["max_tokens"] == 0:
                    return JSONResponse({"error": {"message": "max_tokens must be at least 1"}}, status_code=400)
                # "ab" echoed plus one generated token "c"
                return {"choices": [{"index": 0, "text": "abc", "finish_reason": "length", "logprobs": {
                    "tokens": ["a", "b", "c"], "token_logprobs": [None, -1.0, -2.0],
                    "top_logprobs": [None, {"b": -1.0}, {"c": -2.0}], "text_offset": [0, 1, 2]}}]}
            await asyncio.sleep(script.delay)
            return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "text": f"re: {prompt}", "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        finally:
            script.active -= 1

    return app


def ask(*prompts: str) -> list[Request]:
    return [Request(prompt=p, params=GenerationParams(max_tokens=4)) for p in prompts]


def test_retries_500_429_and_timeouts_then_succeeds():
    script = Script({"flaky": ["500", "429", "hang", "ok"]})
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST))
        flaky, fine = backend.generate(ask("flaky", "fine"))
    assert flaky.ok and flaky.text == "re: flaky" and fine.text == "re: fine"
    assert script.seen == {"flaky": 4, "fine": 1}
    assert backend.stats.calls == 5 and backend.stats.failures == 0
    assert backend.stats.prompt_tokens == 6 and backend.stats.completion_tokens == 4
    # The retry after the 429 waited for Retry-After (0.3 s), not the 0.01 s backoff.
    first, second, third = script.times["flaky"][:3]
    assert third - second >= 0.3


def test_a_200_that_is_not_json_is_retried_like_a_5xx():
    script = Script({"proxied": ["html", "html", "ok"], "lost": ["html"] * 10})
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST | {"max_retries": 2}))
        proxied, lost = backend.generate(ask("proxied", "lost"))
    assert proxied.ok and proxied.text == "re: proxied" and script.seen["proxied"] == 3
    assert not lost.ok and "gave up after 3 attempts" in lost.error and "not JSON" in lost.error
    assert "502 Bad Gateway" in lost.error


def test_the_connection_pool_is_shared_not_one_connection_per_request():
    """Many more requests than max_in_flight go over at most max_in_flight connections."""
    script = Script(delay=0.01)
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST | {"max_in_flight": 8}))
        responses = backend.generate(ask(*(f"p{i}" for i in range(200))))
    assert all(r.ok for r in responses) and script.peak <= 8
    assert len(script.ports) <= 8  # connections are kept alive and reused


def test_gives_up_on_one_request_and_the_batch_goes_on():
    script = Script({"doomed": ["500"] * 10})
    done = []
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST | {"max_retries": 2}))
        a, doomed, b = backend.generate(ask("a", "doomed", "b"), on_done=lambda i, r: done.append(i))
    assert a.ok and b.ok and not doomed.ok
    assert "gave up after 3 attempts" in doomed.error and "HTTP 500: boom" in doomed.error
    assert url in doomed.error
    assert script.seen["doomed"] == 3 and sorted(done) == [0, 1, 2]
    assert backend.stats.failures == 1


def test_context_length_and_other_4xx_are_not_retried():
    script = Script({"long": ["context"], "odd": ["leak"]})
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST))
        long, odd, fine = backend.generate(ask("long", "odd", "fine"))
    assert long.error.startswith("context length exceeded") and "maximum context length" in long.error
    assert odd.error and "HTTP 400" in odd.error and fine.ok
    assert script.seen == {"long": 1, "odd": 1, "fine": 1}


def test_501_not_implemented_is_not_retried_and_says_what_to_check():
    script = Script({"post": ["501"] * 10})
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST | {"max_retries": 5}))
        [post] = backend.generate(ask("post"))
    assert not post.ok and "HTTP 501" in post.error and "OpenAI-compatible" in post.error
    assert script.seen["post"] == 1


def test_echo_falls_back_to_one_token_when_zero_is_refused():
    script = Script()
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(**FAST))
        [score] = backend.loglikelihood([ScoreRequest("a", "b")])
    assert score.error is None and score.logprob == -1.0 and score.n_tokens == 1 and score.is_greedy
    assert script.seen["ab"] == 2  # max_tokens=0 refused, then 1; the generated "c" is not counted


def test_the_api_key_is_sent_but_never_shown(monkeypatch):
    secret = "sk-test-do-not-show-4242"
    monkeypatch.setenv("ALIGNLAB_TEST_KEY", secret)
    settings = BackendSettings(**FAST, api_key_env="ALIGNLAB_TEST_KEY")
    script = Script({"odd": ["leak"]})
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", settings)
        [odd] = backend.generate(ask("odd"))
    assert script.auth == [f"Bearer {secret}"]
    assert "bad request from" in odd.error and secret not in odd.error
    assert secret not in repr(backend) and secret not in str(backend.settings.model_dump())

    with running_server(fault_app(Script(), key="another-key")) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", settings)
        with pytest.raises(BackendError) as refused:
            backend.generate(ask("x"))
    assert "ALIGNLAB_TEST_KEY" in str(refused.value) and secret not in str(refused.value)


def test_an_unreachable_server_fails_fast_and_says_what_to_check():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(f"openai:http://127.0.0.1:{port}/v1#m")  # default retries and backoff
    with pytest.raises(BackendError) as failed:
        backend.generate(ask(*[f"q{i}" for i in range(50)]))
    message = str(failed.value)
    assert f"http://127.0.0.1:{port}/v1" in message and "is the server running" in message
    assert backend.stats.calls == 0  # no request was sent to retry


def test_keeps_many_requests_in_flight():
    script = Script(delay=0.2)
    with running_server(fault_app(script)) as url:
        backend = OpenAIBackend(f"openai:{url}/v1#m", BackendSettings(max_in_flight=10))
        responses = backend.generate(ask(*[f"q{i}" for i in range(20)]))
    assert all(r.ok for r in responses) and sum(script.seen.values()) == 20
    assert 5 <= script.peak <= 10


# ------------------------------------------------------------------ the wire format


def test_chat_body_continues_a_final_assistant_message_and_asks_for_logprobs():
    begun = Request(messages=({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}),
                    params=GenerationParams(logprobs=3, stop=("\n",), seed=9))
    body = chat_body("m", begun)
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    assert body["stop"] == ["\n"] and body["seed"] == 9 and body["n"] == 1
    assert "continue_final_message" not in chat_body("m", chat("hi"))


def test_top_logprobs_are_sorted_most_likely_first():
    answer = {"choices": [{"message": {"content": None}, "finish_reason": "length", "logprobs": {"content": [
        {"token": "a", "logprob": -0.5, "top_logprobs": [{"token": "b", "logprob": -2.0},
                                                          {"token": "a", "logprob": -0.5}]}]}}]}
    choice, prompt_tokens = parse_answer(answer, chat("x", logprobs=2))
    assert choice.text == "" and choice.finish_reason == "length" and prompt_tokens == 0
    assert choice.logprobs[0].top == [("a", -0.5), ("b", -2.0)] and choice.completion_tokens == 1


def test_echo_scoring_picks_the_continuation_tokens_by_offset():
    # "is" | " Paris" | "!" where the context "The capital is " ends with the space of " Paris"
    logprobs = {"tokens": ["The capital", " is", " Paris", "!"], "token_logprobs": [None, -1.0, -2.0, -4.0],
                "top_logprobs": [None, {" is": -1.0}, {" Rome": -1.5}, {"!": -4.0}],
                "text_offset": [0, 11, 14, 20]}
    data = {"choices": [{"logprobs": logprobs}]}
    score = score_from_echo(data, len("The capital is "), len("The capital is Paris"))
    assert score.logprob == -2.0 and score.n_tokens == 1 and not score.is_greedy
    whole = score_from_echo(data, len("The capital"), len("The capital is Paris!"))
    assert whole.logprob == -7.0 and whole.n_tokens == 3
