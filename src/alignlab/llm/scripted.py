"""A scripted stand-in for a teacher and judge: well-formed replies without any model.

It answers every kind of prompt the generators and judges send in the shape they expect — a
question, a context, an answer, a score whose probabilities are spread over the score tokens —
with words picked by a hash of the request, so replies are deterministic and varied. It runs
the whole pipeline in seconds (tests, benchmarks, a dry run of a config):

- `ScriptedBackend` implements the Backend protocol in-process;
- `scripted_app(delay)` serves the same replies over the OpenAI-compatible API, optionally
  after a fixed delay per request (a remote model's latency), for the `openai` backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from alignlab.llm.types import BackendStats, Choice, OnDone, Request, Response, Score, TokenLogprob

WORDS = ["harbour", "lantern", "copper", "meadow", "falcon", "quartz", "ember", "willow", "basalt",
         "orchid", "tundra", "cobalt", "saffron", "glacier", "juniper", "marble"]


def _digest(payload: Any) -> int:
    return int(hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8], 16)


def scripted_reply(messages: Sequence[dict[str, str]] | None, prompt: str | None, seed: int,
                   wants_logprobs: bool, unparseable_every: int = 0, *,
                   continues: bool = True) -> tuple[str, list[tuple[str, float]] | None]:
    """(text, top log-probabilities of the first token or None) for one request.

    Like a well-behaved model, it means the same whether its reply was begun for it (a final
    assistant message such as "Score:", continued) or it was asked to write only that (no
    prefix): the content is drawn from the conversation before any prefix. Shown its own
    prefix as a closed turn and asked for a new one (`continues=False`: a server that ignores
    `continue_final_message`), it chatters, as small models do there.
    """
    prefixed = bool(messages) and len(messages) > 1 and messages[-1]["role"] == "assistant"
    asked = list(messages[:-1]) if prefixed else messages
    h = _digest([asked, prompt, seed])
    judging = wants_logprobs or "Reply with the number only" in json.dumps(asked)
    if prefixed and not continues:
        if judging:  # "A great ... 1.": no score token where the score should be
            return "A great question! I would say 1.", [("A", math.log(0.9)), ("The", math.log(0.05))]
        return "Sure! Here is one:\n\n" + scripted_reply(asked, prompt, seed, False, unparseable_every)[0].strip(), None
    if judging and "Response A" in json.dumps(asked):  # a pairwise judge: P(A) by the hash
        p = 0.2 + 0.6 * ((h >> 3) % 100) / 100
        return (" A" if p >= 0.5 else " B"), [(" A", math.log(p)), (" B", math.log(1 - p))]
    if judging:  # a grading judge: a score distribution centred on 1..5 by the hash
        score = 1 + h % 5
        probs = {score: 0.7, max(1, score - 1): 0.2, min(5, score + 1): 0.1}
        top = sorted(((f" {s}", math.log(p)) for s, p in probs.items()), key=lambda t: -t[1])
        return f" {score}", top if wants_logprobs else None
    if unparseable_every and h % unparseable_every == 0:
        return "?", None
    system = asked[0]["content"] if asked else ""
    words = " ".join(WORDS[(h >> k) % len(WORDS)] for k in range(0, 20, 4))
    if "You rewrite texts" in system:  # a chunk told again: as long as a short paragraph
        return (f"In other words, the text is about the {words}. It names each of them in turn and "
                f"says where they are found, what they are made of and why they matter."), None
    if "short example texts" in system:
        return (f"A notice about the {words} says the opening is on Monday at nine and tickets cost "
                f"four coins each at the door."), None
    if prompt is not None or any(k in system for k in ("exam questions", "new tasks", "on a given text")):
        # A continued "Question:" goes on after a space; a fresh reply starts with the words.
        return f"{' ' if prefixed or prompt is not None else ''}Which {words} is described?", None
    return f"It is the {words}, as the text states.", None


class ScriptedBackend:
    """The Backend protocol over `scripted_reply`; every sample request is recorded in `seen`."""

    parallel_width = 1  # answers one request after another

    def __init__(self, model_id: str = "scripted", unparseable_every: int = 0):
        self.model_id = model_id
        self.stats = BackendStats()
        self.seen: list[str] = []
        self.unparseable_every = unparseable_every

    def _choice(self, r: Request) -> Choice:
        text, top = scripted_reply(r.messages, r.prompt, r.params.seed, r.params.logprobs > 0,
                                   self.unparseable_every)
        logprobs = [TokenLogprob(text, top[0][1], top)] if top else None
        return Choice(text, logprobs=logprobs, completion_tokens=len(text.split()))

    def generate(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Response]:
        out = []
        for i, request in enumerate(requests):
            self.seen.append(json.dumps(request.payload(), sort_keys=True))
            self.stats.requests += 1
            response = Response(choices=[self._choice(s) for s in request.samples()])
            # Tokens counted as `count_tokens` does (words), so a summary has figures to show.
            response.prompt_tokens = self.count_tokens(
                request.prompt or " ".join(m["content"] for m in request.messages or ()))
            self.stats.prompt_tokens += response.prompt_tokens
            self.stats.completion_tokens += sum(c.completion_tokens for c in response.choices)
            out.append(response)
            if on_done:
                on_done(i, response)
        return out

    def loglikelihood(self, requests: Sequence[Any]) -> list[Score]:
        return [Score(-float(len(r.continuation.split())), len(r.continuation.split())) for r in requests]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


def scripted_app(delay: float = 0.0) -> Any:
    """An OpenAI-compatible FastAPI app answering with `scripted_reply` after `delay` seconds."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "scripted", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict) -> dict:
        if delay:
            await asyncio.sleep(delay)
        text, top = scripted_reply(body["messages"], None, body.get("seed") or 0, bool(body.get("logprobs")))
        logprobs = None
        if top:
            logprobs = {"content": [{"token": text, "logprob": top[0][1],
                                     "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
        return {"id": "scripted", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()),
                          "total_tokens": 10 + len(text.split())}}

    return app
