"""How one prompt reaches a model: the chat template applied here, or a request body shaped
for what an OpenAI-compatible server can take.

Our prompts end with an assistant prefix to be continued ("Question:", "Score:"). Servers
differ in whether they can take one (see `probe.py`), so each chat request is rendered in one
of three modes:

- `continue`: the messages as they are, with vLLM's `continue_final_message` (as before);
- `completion`: the chat template rendered on our side with the teacher's tokenizer, prefix
  included, sent as text to /completions (llama.cpp, Ollama, TGI: they ignore the flag);
- `no-prefix`: the trailing assistant message dropped, so the reply is a fresh turn; the
  templates already say "Reply with the number only" / "Reply with the task only", so the
  model writes what the prefix would have led to (hosted chat-only APIs).

The local backend renders with the same `alignlab.chat_format.render_chat`, so a served prompt
in `completion` mode is the same text the model reads in-process.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from alignlab.chat_format import render_chat
from alignlab.llm.probe import Capabilities
from alignlab.llm.types import Request

CONTINUE, COMPLETION, NO_PREFIX = "continue", "completion", "no-prefix"

# Model ids that name a model whose chat template we have (the whole SmolLM2 family shares
# the embedded model's ChatML template), so `models.teacher_tokenizer` can be left out.
KNOWN_TOKENIZERS = {"smollm2": "embedded:smollm2-135m"}


def detect_tokenizer(model_name: str) -> str | None:
    """The tokenizer spec for a served model whose id names one we ship, else None."""
    name = model_name.lower()
    return next((spec for key, spec in KNOWN_TOKENIZERS.items() if key in name), None)


def choose_mode(caps: Capabilities, has_tokenizer: bool) -> str:
    if caps.continues_final_message:
        return CONTINUE
    if caps.completions and has_tokenizer:
        return COMPLETION
    return NO_PREFIX


def judge_method(mode: str, caps: Capabilities) -> str:
    """How a judge's score is read on a server rendered in `mode` (when its log-probs come)."""
    if mode == CONTINUE:
        return "prefix-logprobs" if caps.chat_logprobs else "text"
    if mode == COMPLETION:
        return "completion-logprobs"
    if caps.chat_logprobs:
        return "first-token-logprobs"
    return "json" if caps.json_schema else "text"


def _clamp_logprobs(request: Request, most: int) -> Request:
    """At most `most` top log-probs (0: the probe saw none, so ask as before)."""
    if most <= 0 or request.params.logprobs <= most:
        return request
    return replace(request, params=replace(request.params, logprobs=most))


def rendered(request: Request, mode: str, caps: Capabilities, tokenizer: Any = None) -> Request:
    """The request as it goes on the wire for a server rendered in `mode`: a chat request
    becomes plain text (`completion`) or loses its prefix (`no-prefix`); top log-probs are
    capped at what the server returns."""
    if not request.is_chat:
        return request
    if mode == CONTINUE:
        return _clamp_logprobs(request, caps.top_logprobs)
    assert request.messages is not None
    if mode == COMPLETION:
        text = render_chat(tokenizer, request.messages)
        return _clamp_logprobs(Request(prompt=text, params=request.params), caps.completion_top_logprobs)
    messages = request.messages
    if messages[-1]["role"] == "assistant" and len(messages) > 1:
        messages = messages[:-1]
    return _clamp_logprobs(Request(messages=messages, params=request.params), caps.top_logprobs)
