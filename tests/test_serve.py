"""`alignlab serve`: the official openai client gets the local backend's own answers; bad
requests are 400s with JSON errors; the API key is enforced; concurrent requests are batched."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from alignlab.llm.chat import chat_loop
from alignlab.llm.serve import create_app, running_server
from alignlab.llm.types import Choice, GenerationParams, Request, Response, ScoreRequest

HI = [{"role": "user", "content": "Say something about rain."}]


@pytest.fixture(scope="module")
def server(tiny_backend):
    with running_server(create_app(tiny_backend, "tiny", None)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def local(backend, messages=None, prompt=None, **params) -> Response:
    messages = tuple(messages) if messages is not None else None
    return backend.generate([Request(messages=messages, prompt=prompt, params=GenerationParams(**params))])[0]


def test_chat_answers_are_the_local_backends(client, tiny_backend):
    got = client.chat.completions.create(model="tiny", messages=HI, n=2, max_tokens=10, temperature=0,
                                         logprobs=True, top_logprobs=3)
    want = local(tiny_backend, HI, max_tokens=10, n=2, logprobs=3)
    assert got.object == "chat.completion" and got.model == "tiny" and got.id.startswith("chatcmpl-")
    assert [c.index for c in got.choices] == [0, 1]
    assert [c.message.content for c in got.choices] == [c.text for c in want.choices]
    assert [c.finish_reason for c in got.choices] == [c.finish_reason for c in want.choices]
    assert got.usage.prompt_tokens == want.prompt_tokens
    assert got.usage.completion_tokens == sum(c.completion_tokens for c in want.choices)
    served, direct = got.choices[0].logprobs.content, want.choices[0].logprobs
    assert [t.token for t in served] == [t.token for t in direct]
    for s, d in zip(served, direct):
        assert s.logprob == pytest.approx(d.logprob, abs=1e-4)
        assert [x.token for x in s.top_logprobs] == [tok for tok, _ in d.top]


def test_chat_stop_seed_and_continue_final_message(client, tiny_backend):
    free = local(tiny_backend, HI, max_tokens=12).text
    stop = free[3:6]
    cut = client.chat.completions.create(model="tiny", messages=HI, max_tokens=12, temperature=0, stop=stop)
    assert cut.choices[0].message.content == local(tiny_backend, HI, max_tokens=12, stop=[stop]).text
    assert stop not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"

    sampled = client.chat.completions.create(model="tiny", messages=HI, n=2, max_tokens=8,
                                             temperature=1.0, seed=7)
    want = local(tiny_backend, HI, n=2, max_tokens=8, temperature=1.0, seed=7)
    assert [c.message.content for c in sampled.choices] == [c.text for c in want.choices]

    begun = [*HI, {"role": "assistant", "content": "Rain is"}]
    cont = client.chat.completions.create(model="tiny", messages=begun, max_tokens=6, temperature=0,
                                          extra_body={"continue_final_message": True,
                                                      "add_generation_prompt": False})
    assert cont.choices[0].message.content == local(tiny_backend, begun, max_tokens=6).text


def test_completions_and_echo_scoring(client, tiny_backend):
    prompts = ["Once upon a time", "The capital of France is"]
    got = client.completions.create(model="tiny", prompt=prompts, max_tokens=8, temperature=0)
    assert got.object == "text_completion"
    assert [c.text for c in got.choices] == [local(tiny_backend, prompt=p, max_tokens=8).text for p in prompts]

    context, continuation = "The capital of France is", " Paris, a city."
    echoed = client.completions.create(model="tiny", prompt=context + continuation, max_tokens=0,
                                       echo=True, logprobs=1, temperature=0)
    lp = echoed.choices[0].logprobs
    assert echoed.choices[0].text == context + continuation
    assert lp.token_logprobs[0] is None and "".join(lp.tokens) == context + continuation
    tail = [v for v, at in zip(lp.token_logprobs, lp.text_offset) if at >= len(context)]
    [want] = tiny_backend.loglikelihood([ScoreRequest(context, continuation)])
    assert len(tail) == want.n_tokens
    assert sum(tail) == pytest.approx(want.logprob, abs=1e-3)


def post(url: str, body, **kw) -> httpx.Response:
    if isinstance(body, str):
        return httpx.post(url, content=body, headers={"content-type": "application/json"}, **kw)
    return httpx.post(url, json=body, **kw)


@pytest.mark.parametrize("body, field", [
    ("{not json", "not valid JSON"),
    ("", "messages"),
    ({"messages": HI, "n": "two"}, "n"),
    ({"model": "tiny"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": HI, "n": 0}, "n"),
    ({"messages": HI, "n": 1000}, "n"),
    ({"messages": HI, "top_p": 0}, "top_p"),
    ({"messages": HI, "max_tokens": -1}, "max_tokens"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": HI, "stream": True}, "stream"),
    ([1, 2, 3], "body"),
])
def test_malformed_chat_requests_are_400_with_a_json_error(server, body, field):
    answer = post(f"{server}/v1/chat/completions", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]


@pytest.mark.parametrize("body, field", [
    ({"prompt": 3}, "prompt"), ({"prompt": "x", "logprobs": 99}, "logprobs"), ({"prompt": []}, "prompt"),
    ({"prompt": "x", "echo": "loud"}, "echo"),
])
def test_malformed_completion_requests_are_400(server, body, field):
    answer = post(f"{server}/v1/completions", body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]["message"]


def test_unknown_routes_are_json_errors_and_models_are_listed(server):
    missing = httpx.get(f"{server}/v1/nothing-here")
    assert missing.status_code == 404 and "message" in missing.json()["error"]
    assert httpx.get(f"{server}/v1/models").json()["data"][0]["id"] == "tiny"


def test_api_key_is_required_when_set(tiny_backend):
    with running_server(create_app(tiny_backend, "tiny", "s3cret-key")) as url:
        body = {"messages": HI, "max_tokens": 2}
        none = post(f"{url}/v1/chat/completions", body)
        wrong = post(f"{url}/v1/chat/completions", body, headers={"Authorization": "Bearer nope"})
        right = post(f"{url}/v1/chat/completions", body, headers={"Authorization": "Bearer s3cret-key"})
        assert none.status_code == 401 and wrong.status_code == 401 and right.status_code == 200
        assert none.json()["error"]["type"] == "authentication_error"
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret-key", max_retries=0)
        assert good.models.list().data[0].id == "tiny"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="bad", max_retries=0).models.list()


def test_concurrent_requests_share_one_model_call(tiny_backend):
    app = create_app(tiny_backend, "tiny", None)
    worker = app.state.worker
    prompts = [f"Tell me about number {i}." for i in range(4)]
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answer = post(f"{url}/v1/chat/completions", {
            "messages": [{"role": "user", "content": prompts[i]}], "max_tokens": 6, "temperature": 0})
        answers[i] = answer.json()["choices"][0]["message"]["content"]

    with running_server(app) as url:
        # Hold the model so all four requests are waiting when it frees up: the first batch
        # may hold some of them, the rest must then go in one call, not one call each.
        with worker.lock:
            threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            while worker.waiting < 4:
                time.sleep(0.01)
        for t in threads:
            t.join(timeout=60)
    assert worker.batches <= 2 and worker.largest_batch >= 2
    for i, prompt in enumerate(prompts):
        assert answers[i] == local(tiny_backend, [{"role": "user", "content": prompt}], max_tokens=6).text


class EchoBackend:
    """Says back what it was told; fails when told to."""

    model_id = "echo"

    def __init__(self):
        self.seen = []

    def generate(self, requests, on_done=None):
        self.seen.append(requests[0].messages)
        last = requests[0].messages[-1]["content"]
        if last == "fail":
            return [Response(error="backend down")]
        return [Response(choices=[Choice(f"echo: {last}")])]


def test_chat_loop_keeps_history_and_resets():
    backend = EchoBackend()
    lines = iter(["hello", "fail", "again", "/reset", "fresh", "/exit", "never read"])
    from rich.console import Console

    history = chat_loop(backend, name="echo", system="be brief", console=Console(quiet=True),
                        ask=lambda: next(lines))
    assert history == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "fresh"},
                       {"role": "assistant", "content": "echo: fresh"}]
    # "again" was asked with the successful first turn before it, not the failed one.
    assert [m["content"] for m in backend.seen[2]] == ["be brief", "hello", "echo: hello", "again"]
    assert next(lines) == "never read"


def test_chat_loop_sees_the_whole_conversation_and_leaves_on_eof():
    backend = EchoBackend()
    lines = iter(["one", "two"])

    def ask() -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    from rich.console import Console

    history = chat_loop(backend, name="echo", console=Console(quiet=True), ask=ask)
    assert [m["content"] for m in backend.seen[-1]] == ["one", "echo: one", "two"]
    assert len(history) == 4


def test_nulls_mean_defaults_and_text_parts_are_joined(server, tiny_backend):
    answer = post(f"{server}/v1/chat/completions", {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say something "},
                                                  {"type": "text", "text": "about rain."}]}],
        "temperature": 0, "n": None, "top_p": None, "max_tokens": 5, "user": "ignored"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == local(tiny_backend, HI, max_tokens=5).text


class BrokenBackend(EchoBackend):
    def generate(self, requests, on_done=None):
        raise RuntimeError("the model fell over")


def test_a_failing_model_is_a_json_500_without_a_traceback():
    with running_server(create_app(BrokenBackend(), "broken", None)) as url:
        answer = post(f"{url}/v1/chat/completions", {"messages": HI})
        again = post(f"{url}/v1/chat/completions", {"messages": HI})  # the worker survived
    assert answer.status_code == 500 and again.status_code == 500
    error = answer.json()["error"]
    assert error["type"] == "server_error" and "RuntimeError" in error["message"]
    assert "Traceback" not in answer.text
