"""What `alignlab serve` accepts and answers: OpenAI request bodies in, OpenAI response bodies out.

Request bodies are pydantic models, so a wrong type or an out-of-range value is a 400 naming the
field. Fields we have no use for (user, presence_penalty, ...) are ignored, as OpenAI-compatible
servers do, and an explicit `null` means "the default". Responses follow the OpenAI schema
closely enough for the official client to parse them.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alignlab.llm.types import GenerationParams, Response, TokenLogprob

MAX_N = 64
MAX_TOP_LOGPROBS = 20
DEFAULT_CHAT_MAX_TOKENS = 512
DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /completions


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None  # any name is accepted: the server has one model
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False  # refused by the routes with a clear message: not supported

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    def params(self, max_tokens: int, logprobs: int) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        # Without a seed, sampled answers should differ from call to call, as elsewhere.
        seed = self.seed if self.seed is not None else secrets.randbelow(2**31)
        return GenerationParams(n=self.n, temperature=self.temperature, top_p=self.top_p,
                                max_tokens=max_tokens, stop=tuple(s for s in stop if s),
                                seed=seed, logprobs=logprobs)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_message(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatBody(_Body):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=MAX_TOP_LOGPROBS)
    # A final assistant message is always continued (the backend protocol's meaning of it);
    # these vLLM fields are accepted for compatibility.
    continue_final_message: bool = False
    add_generation_prompt: bool = True

    def generation_params(self) -> GenerationParams:
        max_tokens = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        # logprobs=True with no top_logprobs still needs each token's own log-prob.
        k = max(self.top_logprobs, 1) if self.logprobs else 0
        return self.params(DEFAULT_CHAT_MAX_TOKENS if max_tokens is None else max_tokens, k)


class CompletionBody(_Body):
    prompt: str | list[str] = Field(description="one prompt or a list of prompts")
    max_tokens: int = Field(DEFAULT_COMPLETION_MAX_TOKENS, ge=0)
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    def generation_params(self) -> GenerationParams:
        return self.params(self.max_tokens, 0 if self.logprobs is None else max(self.logprobs, 1))


class TokenizeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str


# ------------------------------------------------------------------ responses


def _envelope(kind: str, prefix: str, model: str, choices: list[dict[str, Any]],
              prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
            "model": model, "choices": choices, "system_fingerprint": None,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def chat_response(model: str, response: Response, top_logprobs: int | None) -> dict[str, Any]:
    """`top_logprobs` None: no log-probs were asked for."""
    choices = [{
        "index": j, "message": {"role": "assistant", "content": c.text},
        "finish_reason": c.finish_reason,
        "logprobs": None if top_logprobs is None else {"content": [
            _token_entry(t.token, t.logprob) | {"top_logprobs": [
                _token_entry(tok, lp) for tok, lp in t.top[:top_logprobs]]}
            for t in c.logprobs or []]},
    } for j, c in enumerate(response.choices)]
    return _envelope("chat.completion", "chatcmpl", model, choices, response.prompt_tokens,
                     sum(c.completion_tokens for c in response.choices))


@dataclass
class PromptToken:
    """One echoed prompt token: where it starts in the prompt text and its log-prob given the
    tokens before it (None for the first, which has no context)."""

    token: str
    offset: int
    logprob: float | None
    top: list[tuple[str, float]] = field(default_factory=list)


def _completion_logprobs(prompt: str, echoed: Sequence[PromptToken], generated: Sequence[TokenLogprob],
                         k: int) -> dict[str, Any]:
    tokens, values, tops, offsets = [], [], [], []
    for p in echoed:
        tokens.append(p.token)
        values.append(p.logprob)
        tops.append(None if p.logprob is None else dict(p.top[:k]))
        offsets.append(p.offset)
    at = len(prompt) if echoed else 0
    for t in generated:
        tokens.append(t.token)
        values.append(t.logprob)
        tops.append(dict(t.top[:k]))
        offsets.append(at)
        at += len(t.token)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def completion_response(model: str, prompts: Sequence[str], responses: Sequence[Response],
                        echoed: Sequence[Sequence[PromptToken]] | None,
                        logprobs: int | None) -> dict[str, Any]:
    """Choice `i * n + j` is sample j of prompt i, as OpenAI numbers them."""
    choices = []
    for i, (prompt, response) in enumerate(zip(prompts, responses)):
        echo = echoed[i] if echoed is not None else []
        for choice in response.choices:
            choices.append({
                "index": len(choices), "text": (prompt if echoed is not None else "") + choice.text,
                "finish_reason": choice.finish_reason,
                "logprobs": None if logprobs is None else _completion_logprobs(
                    prompt, echo, choice.logprobs or [], logprobs)})
    return _envelope("text_completion", "cmpl", model, choices,
                     sum(r.prompt_tokens for r in responses),
                     sum(c.completion_tokens for r in responses for c in r.choices))


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
