"""The `openai` backend: any OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI, hosted APIs).

Spec `openai:<base_url>#<model>`. A batch becomes many HTTP requests kept in flight at once
(`max_in_flight`), one per sample: a request with `n=4` is sent as four `n=1` requests with
seeds s..s+3, so every sample is individually cacheable, as with the local backend.

- On first contact the server's capabilities are probed (`probe.py`, cached in the request
  cache's database) and each chat request is rendered the way the server can take it
  (`render.py`): continued by the server, templated here and sent to /completions, or asked
  without an assistant prefix. The wire format is in `openai_wire.py`.
- Connection errors, timeouts, 429 and 5xx are retried with exponential backoff (honouring
  Retry-After); a request that still fails gets `Response.error` and the batch goes on; the
  in-flight limit shrinks on 429, 5xx and timeouts and grows back (`concurrency.py`). A 200
  whose body is not JSON (a proxy's error page, a cut-off answer) is retried like a 5xx. Other
  4xx (a prompt beyond the context length, a bad parameter) fail that request at once.
- Before a batch the server is probed (GET /models, 5 s): a dead URL fails in seconds with a
  BackendError saying what to check, instead of every request retrying for minutes.
- `loglikelihood` scores `context + continuation` through /completions with `echo` (vLLM and
  `alignlab serve` support it). A chat-message context is rendered with the teacher's chat
  template when its tokenizer is known (as the local backend does), else as a plain "User:
  ...\\n Assistant:" transcript, whose scores differ from the local backend's.
- `count_tokens` asks the server's /tokenize (vLLM, `alignlab serve`) and falls back to
  ceil(chars / 4) when there is none.
- HTTP goes through `http_transport.py` (aiohttp): its pool costs the same per request at any
  `max_in_flight`, and each body is serialised to bytes once, however many times it is retried.
- The API key comes from the environment variable `settings.api_key_env`; it is only ever put
  in the Authorization header, and scrubbed from any error text a server echoes back.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import httpx

from alignlab.chat_format import render_chat
from alignlab.errors import BackendError, ConfigError, ServerUnreachable
from alignlab.llm.config import BackendSettings
from alignlab.llm.cache import RequestCache, cache_key
from alignlab.llm.concurrency import AdaptiveLimit
from alignlab.llm.http_transport import (
    ConnectFailed, HttpTransport, LoopThread, TransportError, TransportTimeout,
)
from alignlab.llm.openai_wire import (
    chat_body, completion_body, echo_body, error_text, parse_answer, render_transcript, retry_after,
    score_from_echo,
)
from alignlab.llm.probe import Capabilities, apply_overrides, probe, store_key
from alignlab.llm.render import CONTINUE, choose_mode, detect_tokenizer, judge_method, rendered
from alignlab.llm.specs import ModelSpec, parse_spec
from alignlab.llm.types import (
    BackendStats, Choice, OnDone, Request, Response, Score, ScoreRequest,
)

T = TypeVar("T")
PROBE_TIMEOUT = 5.0
PROBE_EVERY = 30.0  # seconds; a server that answered recently is not probed again


# 501 Not Implemented, 505 HTTP Version Not Supported: a 5xx that no retry turns into an answer.
NOT_SERVED = frozenset({501, 505})


@dataclass
class _Session:
    http: HttpTransport
    slots: AdaptiveLimit  # at most max_in_flight requests on the wire (fewer when overloaded); backoff waits outside


class OpenAIBackend:
    def __init__(self, spec: ModelSpec | str, settings: BackendSettings | None = None, *,
                 cache: RequestCache | None = None, tokenizer: str | None = None):
        spec = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
        if spec.kind != "openai" or spec.base_url is None:
            raise ConfigError(f"model spec {spec.raw!r} is not 'openai:<base_url>#<model>'")
        self.settings = settings or BackendSettings()
        self.model_id = spec.raw
        self.base_url = spec.base_url
        self.model = spec.name
        self.stats = BackendStats()
        self._key = os.environ.get(self.settings.api_key_env) or None
        self._echo_max_tokens = 0  # becomes 1 for servers that refuse max_tokens=0
        self._has_tokenize = True
        self.offline = False  # `assume`: planned without the server, tokens counted here
        self._sync_client: httpx.Client | None = None
        self._last_contact = -math.inf
        self._in_flight = 0
        self._busy_since = 0.0
        # ---- knowing the server (probe.py, render.py)
        self._store = cache
        self.tokenizer_spec = tokenizer or detect_tokenizer(self.model)
        self._tokenizer: Any = None
        self._caps: Capabilities | None = None
        self._models_answer: dict[str, Any] | None = None
        self.limit: AdaptiveLimit | None = None  # the last batch's in-flight limit, for progress displays
        self._loop: LoopThread | None = None
        self._http: HttpTransport | None = None  # opened on `_loop`, kept until close()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.model_id!r})"

    @property
    def parallel_width(self) -> int:
        return self.settings.max_in_flight  # the ceiling: an overloaded server gets fewer

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # ------------------------------------------------------------ running the event loop

    def _run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine to completion from sync code (also inside a running loop: a notebook,
        an async caller), on the backend's own loop thread, where its connections stay open."""
        if self._loop is None:
            self._loop = LoopThread()
            # Closes the pool when the backend is dropped without close(), or at exit.
            self._loop_finalizer = weakref.finalize(self, self._loop.stop)
        return self._loop.run(make())

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[_Session]:
        """The backend's connection pool and an in-flight limit for one batch."""
        n = self.settings.max_in_flight
        if self._http is None:
            assert self._loop is not None
            self._http = await self._loop.open(HttpTransport(
                self._headers(), n, self.settings.timeout, connect_timeout=min(self.settings.timeout, 10.0)))
        await self._probe(self._http)
        self.limit = AdaptiveLimit(n, self.settings.requests_per_minute, self.settings.tokens_per_minute)
        yield _Session(self._http, self.limit)

    async def _probe(self, http: HttpTransport) -> None:
        if time.monotonic() - self._last_contact < PROBE_EVERY:
            return
        url = f"{self.base_url}/models"
        try:
            answer = await http.get(url, timeout=PROBE_TIMEOUT)
        except ConnectFailed as e:
            raise ServerUnreachable(
                f"cannot reach the model server at {self.base_url} ({e}): is the server "
                f"running? is the URL right, including /v1?") from e
        except TransportError:
            return  # it accepted the connection but is slow or odd: each request's own limits apply
        if answer.status in (401, 403):
            state = "is set" if self._key else "is not set"
            raise BackendError(
                f"the model server at {self.base_url} refused the API key (HTTP {answer.status}): "
                f"check the environment variable {self.settings.api_key_env} ({state})")
        self._last_contact = time.monotonic()
        try:
            self._models_answer = answer.json() if answer.status == 200 else None
        except ValueError:
            self._models_answer = None

    # ------------------------------------------------------------ one HTTP request, with retries

    def _busy(self, delta: int) -> None:
        """Track seconds with at least one request in flight (not the sum over requests)."""
        if delta > 0 and self._in_flight == 0:
            self._busy_since = time.perf_counter()
        self._in_flight += delta
        if delta < 0 and self._in_flight == 0:
            self.stats.seconds += time.perf_counter() - self._busy_since

    async def _post(self, session: _Session, path: str,
                    body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, int]:
        """(answer, error, last HTTP status or 0): retries what a retry can fix, gives up cleanly."""
        url, s = f"{self.base_url}{path}", self.settings
        payload = json.dumps(body, ensure_ascii=False).encode()  # once, whatever the retries
        last, status = "", 0
        for attempt in range(s.max_retries + 1):
            wait = None
            async with session.slots:
                self.stats.calls += 1
                self._busy(+1)
                try:
                    answer = await session.http.post(url, payload)
                except TransportTimeout:
                    answer, last = None, f"no answer within {s.timeout:g} s"
                    session.slots.overloaded()
                except TransportError as e:
                    answer, last = None, f"connection error ({e})"
                finally:
                    self._busy(-1)
            if answer is not None:
                status = answer.status
                if status == 200:
                    try:
                        data = answer.json()
                    except ValueError:
                        # A proxy's error page or a cut-off body: retried like a 5xx, since the
                        # next attempt may well get a whole answer.
                        last = f"HTTP 200 but the answer is not JSON: {self._redact(answer.text[:200])!r}"
                    else:
                        self._last_contact = time.monotonic()
                        session.slots.success()
                        session.slots.spent(int(((data or {}).get("usage") or {}).get("total_tokens") or 0))
                        return data, None, status
                else:
                    reason = self._redact(error_text(answer))
                    if status in NOT_SERVED:  # permanent: asking again cannot help
                        return None, (f"{url}: HTTP {status}: {reason} (the server does not serve this "
                                      f"endpoint: is it an OpenAI-compatible API?)"), status
                    if status != 429 and status < 500:
                        if "context length" in reason.lower() or "context_length" in reason.lower():
                            return None, f"context length exceeded ({url}: HTTP {status}: {reason})", status
                        return None, f"{url}: HTTP {status}: {reason}", status
                    last, wait = f"HTTP {status}: {reason}", retry_after(answer)
                    session.slots.overloaded()
            if attempt < s.max_retries:
                await asyncio.sleep(wait if wait is not None
                                    else s.backoff * 2 ** attempt * random.uniform(1.0, 1.1))
        return None, f"{url}: gave up after {s.max_retries + 1} attempts; last: {last}", status

    # ------------------------------------------------------------ generation

    def generate(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Response]:
        """Answer every request; `on_done` fires on the thread running the event loop."""
        requests = list(requests)
        return self._run(lambda: self._generate(requests, on_done))

    async def _generate(self, requests: list[Request], on_done: OnDone | None) -> list[Response]:
        responses = [Response(choices=[Choice("", "length") for _ in range(r.params.n)]) for r in requests]
        pending = [r.params.n for r in requests]
        self.stats.requests += len(requests)

        async def one(session: _Session | None, i: int, j: int, sample: Request) -> None:
            choice, prompt_tokens, error = await self._sample(session, sample)
            if error is None:
                responses[i].choices[j] = choice
                responses[i].prompt_tokens = prompt_tokens
            else:
                responses[i].error = error
                self.stats.failures += 1
            pending[i] -= 1
            if pending[i] == 0 and on_done:
                on_done(i, responses[i])

        samples = [(i, j, s) for i, r in enumerate(requests) for j, s in enumerate(r.samples())]
        if not any(s.params.max_tokens for _, _, s in samples):  # nothing to ask the server
            await asyncio.gather(*(one(None, *x) for x in samples))
            return responses
        async with self._session() as session:
            if any(r.is_chat for r in requests):  # only chat requests are rendered per server
                await self._know_server(session)
            await asyncio.gather(*(one(session, *x) for x in samples))
        return responses

    async def _sample(self, session: _Session | None,
                      request: Request) -> tuple[Choice, int, str | None]:
        if request.params.max_tokens == 0 or session is None:
            return Choice("", "length"), 0, None  # as the local backend: nothing to generate
        if request.is_chat:  # as the server can take it: maybe a prompt for /completions now
            request = rendered(request, self.mode, self.capabilities, self.tokenizer)
        if request.is_chat:
            path, body = "/chat/completions", chat_body(self.model, request)
        else:
            path, body = "/completions", completion_body(self.model, request)
        data, error, _ = await self._post(session, path, body)
        if data is None:
            return Choice(""), 0, error
        try:
            choice, prompt_tokens = parse_answer(data, request)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            return Choice(""), 0, f"{self.base_url}{path}: unexpected answer ({type(e).__name__}: {e})"
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += choice.completion_tokens
        return choice, prompt_tokens, None

    # ------------------------------------------------------------ knowing the server

    async def _know_server(self, session: _Session) -> None:
        """Probe once per base URL and model (the findings are cached beside the answers);
        `backend.server:` findings win and are not asked."""
        if self._caps is not None:
            return
        known = self._told()
        key = cache_key(*store_key(self.base_url, self.model))
        found = self._store.get_many([key]).get(key) if self._store is not None and not known else None
        if found is not None:
            caps = Capabilities.from_dict(found)
        else:
            calls = self.stats.calls  # the probe's requests are not the run's work
            caps = await probe(lambda path, body: self._post(session, path, body), self.model, known,
                               self._models_answer)
            self.stats.calls = calls
            if self._store is not None and not known:
                self._store.put_many([(key, asdict(caps))])
        self._caps = apply_overrides(caps, known)

    def assume(self, found: Capabilities) -> None:
        """Plan without the server (generate's dry run before it is up): take `found` for what
        it can do, under the user's `backend.server:` findings, and count tokens here."""
        self._caps = apply_overrides(found, self._told())
        self._has_tokenize = False
        self.offline = True

    def _told(self) -> dict[str, Any]:
        """The findings the user set under `backend.server:`, believed without asking."""
        return {k: v for k, v in self.settings.server.model_dump().items() if v is not None}

    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            async def contact() -> None:
                async with self._session() as session:
                    await self._know_server(session)
            self._run(contact)
        assert self._caps is not None
        return self._caps

    @property
    def tokenizer(self) -> Any:
        """The teacher's tokenizer, loaded when prompts are rendered here (`completion` mode)."""
        if self._tokenizer is None and self.tokenizer_spec is not None:
            from alignlab.llm.hf import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_spec)
        return self._tokenizer

    @property
    def mode(self) -> str:
        """How chat requests are rendered for this server (render.py)."""
        return choose_mode(self.capabilities, self.tokenizer_spec is not None)

    @property
    def judge_method(self) -> str:
        return judge_method(self.mode, self.capabilities)

    @property
    def cache_identity(self) -> str:
        """The cache key's model: a reply depends on how its prompt was rendered, so answers
        cached under one rendering are never reused under another."""
        return self.model_id if self.mode == CONTINUE else f"{self.model_id}|{self.mode}"

    # ------------------------------------------------------------ scoring

    def loglikelihood(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        requests = list(requests)
        return self._run(lambda: self._loglikelihood(requests))

    async def _loglikelihood(self, requests: list[ScoreRequest]) -> list[Score]:
        self.stats.requests += len(requests)
        if not any(r.continuation for r in requests):
            return [Score(0.0, 0, True) for _ in requests]
        async with self._session() as session:
            return list(await asyncio.gather(*(self._score(session, r) for r in requests)))

    async def _score(self, session: _Session, request: ScoreRequest) -> Score:
        if not request.continuation:
            return Score(0.0, 0, True)
        if isinstance(request.context, str):
            context = request.context
        elif self.tokenizer is not None:
            context = render_chat(self.tokenizer, request.context)
        else:
            context = render_transcript(request.context, request.continuation)
        text = context + request.continuation
        while True:
            tried = self._echo_max_tokens
            data, error, status = await self._post(session, "/completions",
                                                   echo_body(self.model, text, tried))
            # Some servers refuse max_tokens=0; one generated token is then ignored by offset.
            if data is None and status == 400 and tried == 0 and not error.startswith("context length"):
                self._echo_max_tokens = 1
                continue
            break
        if data is None:
            self.stats.failures += 1
            return Score(float("-inf"), 0, False, error=error)
        try:
            score = score_from_echo(data, len(context), len(text))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            score = Score(float("-inf"), 0, False, error=(
                f"{self.base_url}/completions: no echoed log-probs to score with "
                f"({type(e).__name__}: {e}); the server must support echo with logprobs"))
        if score.error:
            self.stats.failures += 1
        self.stats.scored_tokens += score.n_tokens
        return score

    # ------------------------------------------------------------ tokens

    def count_tokens(self, text: str) -> int:
        if self._has_tokenize:
            # vLLM serves /tokenize beside /v1, not under it.
            root = self.base_url.removesuffix("/v1")
            self._sync_client = self._sync_client or httpx.Client(headers=self._headers(), timeout=PROBE_TIMEOUT)
            try:
                answer = self._sync_client.post(f"{root}/tokenize", json={
                    "model": self.model, "prompt": text, "add_special_tokens": False})
                if answer.status_code == 200:
                    return int(answer.json()["count"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            self._has_tokenize = False
        if self.offline and self.tokenizer is not None:  # the teacher's own tokenizer, named in the config
            return len(self.tokenizer.encode(text, add_special_tokens=False))
        return math.ceil(len(text) / 4)

    def close(self) -> None:
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None
        if self._loop is not None:
            self._loop_finalizer()  # stops the loop, closing the pool
            self._loop, self._http = None, None
