"""The OpenAI wire format, both ways: our requests as JSON bodies, JSON answers as our rows.

Kept apart from the HTTP machinery in `openai_backend.py` so the mapping reads on its own.
Servers differ in small ways (vLLM, llama.cpp, Ollama, TGI, hosted APIs), so parsing is lenient
where they do: `usage` may be missing, `content` may be null, top log-probabilities may come in
any order (we sort them, most likely first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from alignlab.llm.http_transport import HttpAnswer
from alignlab.llm.types import Choice, GenerationParams, Message, Request, Score, TokenLogprob


def _sampling(model: str, params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "n": params.n, "temperature": params.temperature,
                            "top_p": params.top_p, "max_tokens": params.max_tokens, "seed": params.seed}
    if params.stop:
        body["stop"] = list(params.stop)
    return body


def chat_body(model: str, request: Request) -> dict[str, Any]:
    assert request.messages is not None
    body = _sampling(model, request.params) | {"messages": list(request.messages)}
    if request.params.logprobs:
        body |= {"logprobs": True, "top_logprobs": request.params.logprobs}
    if request.params.json_schema:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "reply", "schema": json.loads(request.params.json_schema)}}
    if request.messages[-1]["role"] == "assistant":
        # Continue the final assistant message instead of answering it (vLLM's extension; the
        # protocol's meaning of a trailing assistant message).
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    return body


def completion_body(model: str, request: Request) -> dict[str, Any]:
    body = _sampling(model, request.params) | {"prompt": request.prompt}
    if request.params.logprobs:
        body["logprobs"] = request.params.logprobs
    return body


def echo_body(model: str, text: str, max_tokens: int) -> dict[str, Any]:
    """Score `text` itself: the server echoes the prompt with each prompt token's log-prob."""
    return {"model": model, "prompt": text, "echo": True, "max_tokens": max_tokens,
            "logprobs": 1, "temperature": 0.0}


def _most_likely_first(pairs: Sequence[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    return sorted(pairs, key=lambda p: -p[1])[:k]


def _chat_logprobs(data: dict[str, Any] | None, k: int) -> list[TokenLogprob]:
    return [TokenLogprob(t["token"], float(t["logprob"]), _most_likely_first(
                [(x["token"], float(x["logprob"])) for x in t.get("top_logprobs") or []], k))
            for t in (data or {}).get("content") or []]


def _completion_logprobs(data: dict[str, Any] | None, k: int) -> list[TokenLogprob]:
    data = data or {}
    tokens, values = data.get("tokens") or [], data.get("token_logprobs") or []
    tops = data.get("top_logprobs") or [None] * len(tokens)
    return [TokenLogprob(token, float(value), _most_likely_first(
                [(t, float(v)) for t, v in (top or {}).items()], k))
            for token, value, top in zip(tokens, values, tops)]


def parse_answer(data: dict[str, Any], request: Request) -> tuple[Choice, int]:
    """The first choice of an answer to an `n=1` request, and the prompt's token count."""
    raw = data["choices"][0]
    usage = data.get("usage") or {}
    k = request.params.logprobs
    if request.is_chat:
        text = (raw.get("message") or {}).get("content") or ""
        logprobs = _chat_logprobs(raw.get("logprobs"), k) if k else None
    else:
        text = raw.get("text") or ""
        logprobs = _completion_logprobs(raw.get("logprobs"), k) if k else None
    completion_tokens = usage.get("completion_tokens") or (len(logprobs) if logprobs else 0)
    finish = "length" if raw.get("finish_reason") == "length" else "stop"
    return (Choice(text=text, finish_reason=finish, logprobs=logprobs,
                   completion_tokens=int(completion_tokens)),
            int(usage.get("prompt_tokens") or 0))


def render_transcript(messages: Sequence[Message], continuation: str) -> str:
    """A chat context as plain text, for scoring on a server whose chat template we do not
    have (the completions endpoint takes text only): "User: ...\\nAssistant:". The space after
    the last colon is left to the continuation when it brings its own."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    opener = "Assistant:" if continuation[:1].isspace() else "Assistant: "
    return "\n".join([*lines, opener])


def score_from_echo(data: dict[str, Any], context_chars: int, total_chars: int) -> Score:
    """Sum the log-probs of the tokens that carry the continuation, found by text offset.

    A token belongs to the continuation when it ends after the context does; so a token that
    starts with the context's trailing space (" Paris" after "is ") counts, as the local
    backend counts it. Tokens from `total_chars` on were generated, not echoed.
    """
    lp = data["choices"][0]["logprobs"]
    offsets, values = lp["text_offset"], lp["token_logprobs"]
    tops = lp.get("top_logprobs") or [None] * len(offsets)
    ends = [*offsets[1:], total_chars + 1]
    picked = [t for t in range(len(offsets)) if offsets[t] < total_chars and ends[t] > context_chars]
    if not picked:
        return Score(float("-inf"), 0, False, error="the server echoed no tokens for the continuation")
    if any(values[t] is None for t in picked):
        return Score(float("-inf"), len(picked), False,
                     error="the first token has no log-probability: give the continuation a context")
    greedy = all(tops[t] and values[t] >= max(tops[t].values()) - 1e-6 for t in picked)
    return Score(float(sum(values[t] for t in picked)), len(picked), bool(greedy))


def error_text(answer: HttpAnswer) -> str:
    """The server's own explanation: OpenAI's {"error": {"message"}}, vLLM's older {"message"},
    FastAPI's {"detail"}, or the start of the body."""
    try:
        data = answer.json()
    except ValueError:
        return answer.text[:300] or answer.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        for found in ((error or {}).get("message") if isinstance(error, dict) else error,
                      data.get("message"), data.get("detail")):
            if found:
                return str(found)[:500]
    return answer.text[:300]


def retry_after(answer: HttpAnswer) -> float | None:
    """Retry-After in seconds (HTTP dates are rare from model servers and are ignored)."""
    try:
        return min(max(float(answer.headers.get("retry-after", "")), 0.0), 300.0)
    except ValueError:
        return None
