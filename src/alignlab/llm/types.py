"""The one protocol every model sits behind, and the request/response rows it speaks.

A backend answers a *batch* of requests: chat (`messages`) or plain completion (`prompt`),
each with `n` samples and optional top-k log-probabilities per generated token; and scores
the log-likelihood of given continuations (judging by score-token probabilities and
multiple-choice evaluation need it). Callers always hand over the whole batch so the backend
can batch (local) or keep many requests in flight (HTTP).

Sample `i` of a request with seed `s` is drawn with seed `s + i`: a request with `n=4` is the
same as four requests with `n=1` and seeds `s..s+3`. That makes every sample individually
cacheable and reproducible whatever the batch it was computed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationParams:
    n: int = 1
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0
    logprobs: int = 0  # how many top alternatives to return per generated token; 0 = none
    json_schema: str | None = None  # servers that support it constrain the reply to this JSON schema

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {self.max_tokens}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Request:
    """Chat when `messages` is set (a final assistant message is continued, not answered),
    plain completion when `prompt` is set."""

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request needs exactly one of `messages` or `prompt`")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def payload(self) -> dict[str, Any]:
        """Canonical form used for cache keys and logs."""
        params = asdict(self.params)
        if params["json_schema"] is None:  # absent, so keys from before the field are unchanged
            del params["json_schema"]
        return {"messages": list(self.messages) if self.messages is not None else None,
                "prompt": self.prompt, "params": params}

    def samples(self) -> list[Request]:
        """One `n=1` request per sample, sample i seeded with seed + i (see module docstring)."""
        p = self.params
        return [replace(self, params=replace(p, n=1, seed=p.seed + i)) for i in range(p.n)]


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)  # most likely first


@dataclass
class Choice:
    text: str
    finish_reason: str = "stop"  # "stop" (EOS or a stop string) or "length"
    logprobs: list[TokenLogprob] | None = None
    completion_tokens: int = 0


@dataclass
class Response:
    choices: list[Choice] = field(default_factory=list)
    prompt_tokens: int = 0
    error: str | None = None  # set when this request failed; the batch and the run go on
    cached: bool = False

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ScoreRequest:
    """log P(continuation | context). A chat context is rendered with the model's chat template
    and its generation prompt, so the continuation is scored as the assistant's reply."""

    context: str | tuple[Message, ...]
    continuation: str

    def __post_init__(self) -> None:
        if not isinstance(self.context, str):
            object.__setattr__(self, "context", tuple(dict(m) for m in self.context))

    def payload(self) -> dict[str, Any]:
        ctx = self.context if isinstance(self.context, str) else list(self.context)
        return {"context": ctx, "continuation": self.continuation}


@dataclass
class Score:
    logprob: float  # sum over the continuation's tokens
    n_tokens: int
    is_greedy: bool = False  # every continuation token was the argmax
    error: str | None = None
    cached: bool = False


@dataclass
class BackendStats:
    """What a backend did: model calls, tokens, and seconds spent inside the model."""

    calls: int = 0  # batches (local) or HTTP requests (remote) actually sent to the model
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    scored_tokens: int = 0
    seconds: float = 0.0
    failures: int = 0

    def timer(self) -> _Timer:
        return _Timer(self)


class _Timer:
    def __init__(self, stats: BackendStats):
        self.stats = stats

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stats.seconds += time.perf_counter() - self.t0


OnDone = Callable[[int, Response], None]


@runtime_checkable
class Backend(Protocol):
    model_id: str  # identity for caching: the spec plus a fingerprint of the weights
    stats: BackendStats
    # How many requests it works on at once: a local model's batch, a server's requests in
    # flight. Callers that time or pace a run scale by it (the dry run's estimate).
    parallel_width: int

    def generate(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Response]:
        """Answer every request; `on_done(index, response)` fires as each one completes."""
        ...

    def loglikelihood(self, requests: Sequence[ScoreRequest]) -> list[Score]: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...
