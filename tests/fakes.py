"""One fake model for the tests that are about control flow, not about a model.

`FakeBackend` implements the Backend protocol from plain functions: `reply(request)` answers a
generate request (a string, a ready `Choice`, or None for a failed request), `loglik(request)`
scores a continuation (a log-probability, or (log-probability, tokens)). Every batch it
receives is recorded, so a test can count calls.
`label_choice({label: p})` builds the reply a judge reads: the labels' log-probabilities as the
first generated token's top alternatives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from alignlab.llm.types import BackendStats, Choice, Request, Response, Score, ScoreRequest, TokenLogprob

Reply = Callable[[Request], "str | Choice | None"]


def label_choice(probs: dict[str, float]) -> Choice:
    top = sorted(((k, math.log(p)) for k, p in probs.items() if p > 0), key=lambda kv: -kv[1])
    return Choice(top[0][0], logprobs=[TokenLogprob(top[0][0], top[0][1], top)])


def user_text(request: Request) -> str:
    """The last user turn (a template may show a worked example first)."""
    return next(m["content"] for m in reversed(request.messages) if m["role"] == "user")


class FakeBackend:
    parallel_width = 1
    def __init__(self, reply: Reply | None = None,
                 loglik: Callable[[ScoreRequest], float | tuple[float, int]] | None = None,
                 model_id: str = "fake-model"):
        self.model_id = model_id
        self.stats = BackendStats()
        self.reply = reply or (lambda r: "an answer")
        self.loglik = loglik or (lambda r: -float(len(r.continuation.split())))
        self.generate_calls: list[list[Request]] = []
        self.score_calls: list[list[ScoreRequest]] = []

    @property
    def requests(self) -> list[Request]:
        """Every generate request received, in order."""
        return [r for call in self.generate_calls for r in call]

    def _response(self, request: Request) -> Response:
        choices = []
        for sample in request.samples():
            reply = self.reply(sample)
            if reply is None:
                return Response(error="scripted failure")
            choices.append(reply if isinstance(reply, Choice) else Choice(reply))
        return Response(choices=choices)

    def generate(self, requests: Sequence[Request], on_done=None) -> list[Response]:
        self.generate_calls.append(list(requests))
        out = []
        for i, request in enumerate(requests):
            out.append(self._response(request))
            if on_done:
                on_done(i, out[-1])
        return out

    def loglikelihood(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        self.score_calls.append(list(requests))
        scores = []
        for r in requests:
            value = self.loglik(r)
            logprob, n = value if isinstance(value, tuple) else (value, max(1, len(r.continuation.split())))
            scores.append(Score(logprob, n))
        return scores

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass
