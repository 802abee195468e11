"""Know the server: a short probe of what an OpenAI-compatible server can do, once per base URL
and model, cached in the request cache's database.

Servers that all speak "the OpenAI API" differ exactly where our prompts need them: only vLLM
continues a trailing assistant message (`continue_final_message`); llama.cpp's server and
Ollama start a new turn instead; hosted chat APIs have no /completions for chat models, no
`echo`, and at most 20 top log-probabilities. Each finding decides how prompts are rendered
(`render.py`) and how judges read scores.

The continuation test needs no model ability, only the prompt token counts servers report:
a user turn followed by a one-word assistant turn ("The") is sent once with
`continue_final_message` and once without. A server that honours the flag renders fewer prompt
tokens for the first (no end-of-turn, no new generation prompt). When both counts are equal
the server either always continues (`alignlab serve`) or never does (llama.cpp, Ollama); the
user turn alone then tells them apart: continued, the prefix adds one or two tokens to it; a
new turn adds the end of turn and a generation prompt as well (5 tokens in ChatML).

Every finding can be set in `backend.server:` (None = probe); a set finding is never probed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

PROBE_VERSION = 1
ASK_TOP = 20  # top log-probs asked for: the most hosted APIs allow

Post = Callable[[str, dict[str, Any]], Awaitable[tuple[dict[str, Any] | None, str | None, int]]]


@dataclass
class Capabilities:
    continues_final_message: bool = False
    chat_logprobs: bool = False
    top_logprobs: int = 0  # most top alternatives per token on chat; 0 = none
    completions: bool = False
    echo: bool = False
    completion_top_logprobs: int = 0
    json_schema: bool = False
    context_length: int | None = None

    def describe(self) -> str:
        def yes(flag: bool) -> str:
            return "yes" if flag else "no"
        return (f"continues a final assistant message: {yes(self.continues_final_message)}; chat "
                f"log-probs: {f'top {self.top_logprobs}' if self.chat_logprobs else 'no'}; /completions: "
                f"{yes(self.completions)}{' (echo)' if self.echo else ''}; json_schema: {yes(self.json_schema)}"
                + (f"; context {self.context_length}" if self.context_length else ""))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# What vLLM serves, the usual server behind a teacher fleet: what a plan assumes of a server
# it cannot reach.
TYPICAL_SERVER = Capabilities(continues_final_message=True, chat_logprobs=True, top_logprobs=20,
                              completions=True, echo=True, completion_top_logprobs=20, json_schema=True)


def store_key(base_url: str, model: str) -> tuple[str, str, dict[str, Any]]:
    """(model id, kind, payload) of the findings' row in the request cache."""
    return f"{base_url}#{model}", "capabilities", {"version": PROBE_VERSION}


def apply_overrides(caps: Capabilities, overrides: dict[str, Any]) -> Capabilities:
    """The user's `backend.server:` findings win over the probe's."""
    return Capabilities(**(asdict(caps) | {k: v for k, v in overrides.items() if v is not None}))


def context_length(models: dict[str, Any] | None, model: str) -> int | None:
    """What /models says of the context length: vLLM `max_model_len`, others' own names."""
    for entry in (models or {}).get("data") or []:
        if entry.get("id") not in (model, None) and len(models["data"]) > 1:
            continue
        for key in ("max_model_len", "context_length", "context_window", "n_ctx"):
            value = entry.get(key) or (entry.get("meta") or {}).get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


async def _ask(post: Post, path: str, body: dict[str, Any], tries: int = 3) -> tuple[dict[str, Any] | None, int]:
    """A probe request, asked again when it fails for a reason a retry can fix: one flaky
    answer must not decide how a whole run is rendered."""
    status = 0
    for _ in range(tries):
        data, _error, status = await post(path, body)
        if data is not None or (400 <= status < 500 and status != 429):
            return data, status
    return None, status


def _prompt_tokens(data: dict[str, Any] | None) -> int | None:
    value = ((data or {}).get("usage") or {}).get("prompt_tokens")
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def continues(kept: int | None, fresh: int | None, alone: int | None) -> bool:
    """From prompt token counts (see the module docstring); unknown counts mean no."""
    if kept is None or fresh is None:
        return False
    if kept < fresh:
        return True
    return kept == fresh and alone is not None and 0 <= kept - alone <= 2


async def probe(post: Post, model: str, known: dict[str, Any], models: dict[str, Any] | None = None
                ) -> Capabilities:
    """Ask the server what it can do; findings already in `known` are not asked."""
    caps: dict[str, Any] = {}
    base = {"model": model, "temperature": 0.0, "max_tokens": 1, "seed": 0}
    turns = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "The"}]
    if known.get("continues_final_message") is None:
        kept, _ = await _ask(post, "/chat/completions", base | {"messages": turns, "continue_final_message": True,
                                                                "add_generation_prompt": False})
        fresh, _ = await _ask(post, "/chat/completions", base | {"messages": turns})
        alone, _ = await _ask(post, "/chat/completions", base | {"messages": turns[:1]})
        caps["continues_final_message"] = continues(
            _prompt_tokens(kept), _prompt_tokens(fresh), _prompt_tokens(alone))
    if known.get("chat_logprobs") is None or known.get("top_logprobs") is None:
        data, _ = await _ask(post, "/chat/completions", base | {
            "messages": turns[:1], "logprobs": True, "top_logprobs": ASK_TOP})
        content = (((data or {}).get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
        top = len(content[0].get("top_logprobs") or []) if content else 0
        caps["chat_logprobs"], caps["top_logprobs"] = bool(content), top
    if known.get("completions") is None or known.get("echo") is None:
        prompt = "The colour"
        data, _ = await _ask(post, "/completions", base | {"prompt": prompt, "echo": True, "logprobs": ASK_TOP})
        choice = ((data or {}).get("choices") or [{}])[0]
        echo = data is not None and str(choice.get("text", "")).startswith(prompt)
        if data is None:
            data, _ = await _ask(post, "/completions", base | {"prompt": prompt, "logprobs": ASK_TOP})
            choice = ((data or {}).get("choices") or [{}])[0]
        caps["completions"], caps["echo"] = data is not None and "text" in choice, echo
        tops = (choice.get("logprobs") or {}).get("top_logprobs") or []
        caps["completion_top_logprobs"] = max((len(t or {}) for t in tops), default=0)
    if known.get("json_schema") is None:
        schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
        data, _ = await _ask(post, "/chat/completions", base | {
            "messages": turns[:1], "max_tokens": 8,
            "response_format": {"type": "json_schema", "json_schema": {"name": "colour", "schema": schema}}})
        caps["json_schema"] = data is not None
    caps["context_length"] = context_length(models, model)
    return apply_overrides(Capabilities.from_dict(caps), known)
