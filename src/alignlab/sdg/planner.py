"""A stand-in teacher and judge for `generate --dry-run`: it answers every request without a
model, with a reply that passes every step, and says what the request would cost.

The dry run is the real generators (`sdg.generators.run_generators`) over the real plan
(`sdg.stage.plan`) with this backend in place of the models, so the requests it counts are the
ones the real run's steps build: the count cannot drift from the generators. Every reply
passes (a question of words never seen before, the judge's top score), so every candidate
makes every request its generator can make: the count is exact when every candidate passes in
the real run, and an upper bound otherwise (each step asks only about candidates still alive).
Replies are as long as their request's `max_tokens` allows, so the prompts of later steps,
which quote earlier replies, are counted at their longest. The requests are also counted by
kind, with a few of each kept for the dry run's probe to time against the real models.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alignlab.chat_format import render_chat
from alignlab.llm.types import BackendStats, Choice, OnDone, Request, Response, TokenLogprob
from alignlab.sdg.candidates import MAX_QUESTION_CHARS
from alignlab.sdg.config import GenerateConfig
from alignlab.sdg.judges import REPAIR, JudgeSpec, backend_judge_method
from alignlab.sdg.traffic import Traffic

# parse_context's minimum: a filler at least this long passes every parser, whatever max_tokens.
FILLER_MIN_WORDS = 12
FILLER_WORD_CHARS = 6  # hex digits: words no seed and no other reply shares, so novelty admits them
# Every generate judge grades on JudgeSpec's default scale; its top score passes any threshold.
TOP_SCORE = JudgeSpec("", "").scale[1]
# Role markers a server adds per chat message, where no chat template is at hand to count them.
CHAT_FRAMING_TOKENS = 4


class ProbeSample:
    """The planned requests grouped by kind (model, and every parameter but the seed: a 2-token
    verdict and a 256-token answer cost very different times), each kind's count, and a uniform
    sample of each (reservoir sampling, fixed seed) for the probe to time."""

    def __init__(self, per_kind: int):
        self.per_kind = per_kind
        self.kinds: dict[tuple, RequestKind] = {}
        self._rng = random.Random(0)

    def offer(self, backend: Any, request: Request) -> None:
        model = getattr(backend, "backend", backend)  # the model behind a request-cache wrapper
        key = (id(model), replace(request.params, seed=0))
        kind = self.kinds.setdefault(key, RequestKind(model))
        kind.count += 1
        if len(kind.sample) < self.per_kind:
            kind.sample.append(request)
        elif (j := self._rng.randrange(kind.count)) < self.per_kind:
            kind.sample[j] = request


@dataclass
class RequestKind:
    model: Any
    count: int = 0
    sample: list[Request] = field(default_factory=list)


class PlanningBackend:
    """The Backend protocol for the dry run, in front of the real model (`real`), which is asked
    only to count tokens (and for its tokenizer: MAGPIE renders the user-turn prefix from it)."""

    def __init__(self, real: Any, settings: GenerateConfig, sample: ProbeSample):
        self.real = real
        self.model_id = real.model_id
        self.stats = BackendStats()
        self.judge_method = backend_judge_method(real)  # decides the judges' requests, as in the run
        self.settings = settings
        self.sample = sample
        # A JSON verdict that does not parse costs one repair request more (`judges._json_verdicts`);
        # the planned replies always parse, so these are counted apart, as the most they can add.
        self.repairs = Traffic()
        self._words_for: dict[int, int] = {}  # max_tokens -> filler words that fit

    @property
    def tokenizer(self) -> Any:
        return self.real.tokenizer

    @property
    def parallel_width(self) -> int:
        return self.real.parallel_width

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def generate(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Response]:
        out = []
        for i, request in enumerate(requests):
            self.sample.offer(self.real, request)
            prompt = self.prompt_tokens(request)
            most = request.params.max_tokens * request.params.n
            response = Response(choices=[self._reply(s) for s in request.samples()], prompt_tokens=prompt)
            for choice in response.choices:
                choice.completion_tokens = request.params.max_tokens  # the most it can cost
            if request.params.json_schema:  # the repair quotes the reply and adds two messages
                self.repairs.add(1, prompt + request.params.max_tokens + self.count_tokens(REPAIR)
                                 + 2 * CHAT_FRAMING_TOKENS, most)
            self.stats.requests += 1
            self.stats.prompt_tokens += prompt
            self.stats.completion_tokens += most
            out.append(response)
            if on_done:
                on_done(i, response)
        return out

    def prompt_tokens(self, request: Request) -> int:
        """As the model would count them: the chat template rendered when one is at hand."""
        if request.prompt is not None:
            return self.count_tokens(request.prompt)
        messages = list(request.messages or ())
        render = getattr(self.real, "render_chat", None)
        tokenizer = None if render else getattr(self.real, "tokenizer", None)
        if render or getattr(tokenizer, "chat_template", None):
            return self.count_tokens(render(messages) if render else render_chat(tokenizer, messages))
        return sum(self.count_tokens(m["content"]) + CHAT_FRAMING_TOKENS for m in messages)

    def _reply(self, request: Request) -> Choice:
        p = request.params
        if p.json_schema:
            top = json.loads(p.json_schema)["properties"]["score"]["maximum"]
            return Choice(json.dumps({"score": top}))
        if p.logprobs:
            label = f" {TOP_SCORE}"
            return Choice(label, logprobs=[TokenLogprob(label, 0.0, [(label, 0.0)])])
        return Choice(self.filler(request, p.max_tokens))

    def filler(self, request: Request, max_tokens: int) -> str:
        """Distinct words (from a hash of the request, which carries the candidate's seed),
        as many as `max_tokens` holds; a question's no longer than a question may be."""
        n = self._words_for.get(max_tokens)
        if n is None:
            sample = " ".join(_words("calibration", 100))
            per_word = self.count_tokens(sample) / 100
            n = max(FILLER_MIN_WORDS, int(max_tokens / max(per_word, 1e-9)))
            if max_tokens <= self.settings.max_question_tokens:  # only questions ask this little
                n = min(n, MAX_QUESTION_CHARS // (FILLER_WORD_CHARS + 1))
            self._words_for[max_tokens] = n
        return " ".join(_words(json.dumps(request.payload(), sort_keys=True), n))

    def loglikelihood(self, requests: Sequence[Any]) -> list[Any]:
        raise NotImplementedError("generate's steps do not score continuations")

    def close(self) -> None:
        pass


def _words(key: str, n: int) -> list[str]:
    words: list[str] = []
    digest = key.encode()
    while len(words) < n:
        digest = hashlib.sha256(digest).digest()
        text = digest.hex()
        words += [text[k:k + FILLER_WORD_CHARS] for k in range(0, len(text) - FILLER_WORD_CHARS + 1,
                                                                FILLER_WORD_CHARS)]
    return words[:n]
