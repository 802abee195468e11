"""Fake OpenAI-compatible servers, one per family of real ones, each backed by the scripted model.

What differs is what each family documents about a chat request ending in an assistant message:

- `vllm`: honours `continue_final_message` (the message is continued); /completions with echo;
- `llamacpp` (llama.cpp's server, Ollama): ignores the flag and starts a new assistant turn;
  /completions with echo takes a client-rendered chat template;
- `hosted`: chat only (no /completions, so no echo), `top_logprobs` at most 20, a new turn.

Prompts are rendered in ChatML as the SmolLM2 template does, and prompt tokens are counted on
that text, so the capability probe sees what it would see on the real servers. A completion
prompt in ChatML is read back into messages, so the scripted model answers it as it answers
the same conversation in-process.

`Faults` injects failures: on a request body's first `attempts` arrivals, `rate` of them fail
with a 500, 503, 429 with Retry-After, a timeout, a reset connection or a 200 that is not JSON,
picked by a hash (reproducible). Later arrivals of the same body always succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field

from fastapi import FastAPI, Request as HTTPRequest
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from alignlab.llm.scripted import scripted_reply

FAMILIES = ("vllm", "llamacpp", "hosted")
KINDS = ("500", "503", "429", "timeout", "reset", "nonjson")
START, END = "<|im_start|>", "<|im_end|>\n"


def chatml(messages: list[dict[str, str]], continue_final: bool) -> str:
    text = "".join(f"{START}{m['role']}\n{m['content']}{END}" for m in messages)
    return text[: -len(END)] if continue_final else text + f"{START}assistant\n"


def read_chatml(text: str) -> tuple[list[dict[str, str]], bool] | None:
    """(messages, whether the last one is continued) of a ChatML prompt; None if not ChatML."""
    if not text.startswith(START):
        return None
    messages, continued = [], False
    for segment in text.split(START)[1:]:
        role, _, rest = segment.partition("\n")
        if rest.endswith(END):
            messages.append({"role": role, "content": rest[: -len(END)]})
        elif rest:  # an open assistant message: to be continued
            messages.append({"role": role, "content": rest})
            continued = True
    return messages, continued


def count_tokens(text: str) -> int:
    return len(re.findall(r"<\|[^|]+\|>|\w+|[^\w\s]", text))


@dataclass
class Faults:
    rate: float = 0.2
    attempts: int = 2  # arrivals of one body that may fail; later ones always succeed
    hang: float = 1.0  # seconds a "timeout" waits (beyond the client's timeout)
    arrivals: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)

    def pick(self, body: dict) -> str | None:
        key = json.dumps(body, sort_keys=True)
        k = self.arrivals[key]
        self.arrivals[key] += 1
        h = int(hashlib.sha256(f"{key}|{k}".encode()).hexdigest()[:8], 16)
        if k >= self.attempts or (h % 1000) >= self.rate * 1000:
            return None
        kind = KINDS[(h >> 12) % len(KINDS)]
        self.injected[kind] += 1
        return kind


class _Reset(Response):
    """Headers promising a body, half of it, then the connection drops."""

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"choi', "more_body": True})
        raise ConnectionResetError("injected reset")


async def _fault(kind: str | None, faults: Faults) -> Response | None:
    if kind == "500":
        return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
    if kind == "503":
        return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
    if kind == "429":
        return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"Retry-After": "0.05"})
    if kind == "timeout":
        await asyncio.sleep(faults.hang)
    if kind == "reset":
        return _Reset()
    if kind == "nonjson":
        return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=200)
    return None


def _usage(prompt: str, text: str) -> dict[str, int]:
    p, c = count_tokens(prompt), max(1, len(text.split()))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _structured(text: str, body: dict) -> str:
    """A judge's digit as the JSON the schema asks for; one reply in four comes back as prose
    first (real models do), and as JSON once asked to repair it."""
    digit = text.strip()
    if not digit.isdigit():
        return text
    asked_again = body["messages"][-1]["content"].startswith("Reply with the JSON object only")
    if not asked_again and int(hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest(), 16) % 4 == 0:
        return f"Score: {digit}"
    return json.dumps({"score": int(digit)})


def fake_server(family: str, *, unparseable_every: int = 9, faults: Faults | None = None,
                logprobs: bool = True) -> FastAPI:
    """`logprobs=False`: the server never returns log-probabilities (some hosted APIs)."""
    assert family in FAMILIES
    with_logprobs = logprobs
    app = FastAPI()
    app.state.requests = Counter()  # path -> requests answered

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": "smollm2", "object": "model"}
        entry |= {"vllm": {"max_model_len": 2048}, "hosted": {"context_window": 8192}}.get(family, {})
        return {"object": "list", "data": [entry]}

    @app.post("/tokenize")
    async def tokenize(body: dict) -> dict:
        # Counted as the in-process scripted model counts (words), so documents are chunked
        # alike on every family; tokenization is not what these fakes are about.
        return {"count": len(body["prompt"].split())}

    @app.post("/v1/chat/completions")
    async def chat(request: HTTPRequest):
        body = await request.json()
        if faults and (answer := await _fault(faults.pick(body), faults)) is not None:
            return answer
        top_k = int(body.get("top_logprobs") or 0)
        if family == "hosted" and top_k > 20:
            return JSONResponse({"error": {"message": "top_logprobs must be at most 20"}}, status_code=400)
        messages = body["messages"]
        continued = (family == "vllm" and bool(body.get("continue_final_message"))
                     and messages[-1]["role"] == "assistant")
        text, top = scripted_reply(messages, None, body.get("seed") or 0, bool(body.get("logprobs")),
                                   unparseable_every, continues=continued)
        if body.get("response_format"):
            text = _structured(text, body)
            app.state.requests["repair"] += messages[-1]["content"].startswith("Reply with the JSON object only")
        logprobs = None
        if top and body.get("logprobs") and with_logprobs:
            logprobs = {"content": [{"token": text, "logprob": top[0][1], "top_logprobs": [
                {"token": t, "logprob": lp} for t, lp in top[:top_k]]}]}
        app.state.requests["chat"] += 1
        return {"id": "chat-1", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                             "message": {"role": "assistant", "content": text}}],
                "usage": _usage(chatml(messages, continued), text)}

    @app.post("/v1/completions")
    async def complete(request: HTTPRequest):
        body = await request.json()
        if family == "hosted":
            return JSONResponse({"error": {"message": "This is a chat model: use /v1/chat/completions"}},
                                status_code=404)
        if faults and (answer := await _fault(faults.pick(body), faults)) is not None:
            return answer
        prompt = body["prompt"]
        chat_view = read_chatml(prompt)
        wants = int(body.get("logprobs") or 0)
        if chat_view is None:
            text, top = scripted_reply(None, prompt, body.get("seed") or 0, bool(wants), unparseable_every)
        else:
            messages, continued = chat_view
            text, top = scripted_reply(messages, None, body.get("seed") or 0, bool(wants), unparseable_every,
                                       continues=continued)
        logprobs = None
        if wants and top:
            logprobs = {"tokens": [text], "token_logprobs": [top[0][1]], "text_offset": [0],
                        "top_logprobs": [dict(top[:wants])]}
        app.state.requests["completions"] += 1
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "text": (prompt + text) if body.get("echo") else text,
                             "finish_reason": "stop", "logprobs": logprobs}],
                "usage": _usage(prompt, text)}

    return app
