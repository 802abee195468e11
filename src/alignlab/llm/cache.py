"""The request cache: every answered request, in SQLite, keyed by what was asked of which model.

The key is a hash of (model id, request, parameters) for one sample — `Request.samples()`
gives each sample its own seed, so the sample index is part of the key. A repeated request is
answered from the cache without calling the model; answers are stored as each request
completes (committed in small batches: one transaction per answer would cost more than the
answer at a fast server's rate), so a run killed half-way resumes without re-asking more than
the last batch. This is
what makes every stage resumable and reproducible. WAL mode lets several processes (Ray
workers, a second run) read and write at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alignlab.errors import BackendError
from alignlab.llm.types import (
    Backend, BackendStats, Choice, OnDone, Request, Response, Score, ScoreRequest, TokenLogprob,
)

# Answers are committed when this many are waiting or this many seconds have passed.
WRITE_BATCH_ROWS = 256
WRITE_BATCH_SECONDS = 1.0

SCHEMA = "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)"


def cache_key(model_id: str, kind: str, payload: dict[str, Any]) -> str:
    text = json.dumps([model_id, kind, payload], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
        except (sqlite3.DatabaseError, OSError) as e:
            raise self._explain(e) from e

    def _explain(self, e: Exception) -> BackendError:
        text = str(e)
        if "locked" in text or "busy" in text:
            return BackendError(f"request cache {self.path} is locked by another process and stayed "
                                f"locked for 60 s; wait for that run to finish or stop it")
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return BackendError(f"request cache {self.path} is corrupt ({text}); move it aside to "
                                f"start a fresh cache (only cached answers are lost, not outputs)")
        return BackendError(f"request cache {self.path}: {text}")

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        try:
            with self._lock:
                for start in range(0, len(keys), 500):
                    chunk = list(keys[start:start + 500])
                    marks = ",".join("?" * len(chunk))
                    for key, value in self._db.execute(
                            f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk):
                        found[key] = json.loads(value)
        except sqlite3.DatabaseError as e:
            raise self._explain(e) from e
        return found

    def put_many(self, items: Sequence[tuple[str, Any]]) -> None:
        if not items:
            return
        now = time.time()
        rows = [(k, json.dumps(v, ensure_ascii=False), now) for k, v in items]
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise self._explain(e) from e

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _choice_from(d: dict[str, Any]) -> Choice:
    lps = d.get("logprobs")
    return Choice(text=d["text"], finish_reason=d["finish_reason"],
                  completion_tokens=d.get("completion_tokens", 0),
                  logprobs=None if lps is None else [
                      TokenLogprob(t["token"], t["logprob"], [tuple(x) for x in t["top"]]) for t in lps])


class CachedBackend:
    """Any backend, answering from the cache first and storing each new answer as it arrives."""

    def __init__(self, backend: Backend, cache: RequestCache):
        self.backend = backend
        self.cache = cache
        self.model_id = backend.model_id
        self.hits = 0
        self.misses = 0

    @property
    def stats(self) -> BackendStats:
        return self.backend.stats

    @property
    def parallel_width(self) -> int:
        return self.backend.parallel_width

    def __getattr__(self, name: str) -> Any:  # tokenizer, render_chat, ... of the wrapped backend
        return getattr(self.backend, name)

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def _identity(self) -> str:
        """The model part of the keys: a served model's identity includes how prompts are
        rendered for its server, known once it has been probed."""
        return getattr(self.backend, "cache_identity", self.model_id)

    def generate(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Response]:
        samples = [(i, j, s) for i, r in enumerate(requests) for j, s in enumerate(r.samples())]
        identity = self._identity()
        keys = [cache_key(identity, "generate", s.payload()) for _, _, s in samples]
        found = self.cache.get_many(keys)
        responses = [Response(choices=[Choice("")] * r.params.n, cached=True) for r in requests]
        pending = [r.params.n for r in requests]
        misses: list[tuple[int, int, Request, str]] = []
        for (i, j, sample), key in zip(samples, keys):
            if key in found:
                responses[i].choices[j] = _choice_from(found[key]["choice"])
                responses[i].prompt_tokens = found[key].get("prompt_tokens", 0)
                pending[i] -= 1
            else:
                misses.append((i, j, sample, key))
                responses[i].cached = False
        self.hits += len(samples) - len(misses)
        self.misses += len(misses)
        for i, left in enumerate(pending):
            if left == 0 and on_done:
                on_done(i, responses[i])

        waiting: list[tuple[str, Any]] = []
        last_write = time.monotonic()

        def write_waiting() -> None:
            nonlocal last_write
            self.cache.put_many(waiting)
            waiting.clear()
            last_write = time.monotonic()

        def store(k: int, response: Response) -> None:
            i, j, _, key = misses[k]
            if response.ok:
                waiting.append((key, {"choice": asdict(response.choices[0]),
                                      "prompt_tokens": response.prompt_tokens}))
                if len(waiting) >= WRITE_BATCH_ROWS or time.monotonic() - last_write > WRITE_BATCH_SECONDS:
                    write_waiting()
                responses[i].choices[j] = response.choices[0]
                responses[i].prompt_tokens = response.prompt_tokens
            else:
                responses[i].error = response.error
            pending[i] -= 1
            if pending[i] == 0 and on_done:
                on_done(i, responses[i])

        if misses:
            try:
                self.backend.generate([s for _, _, s, _ in misses], on_done=store)
            finally:
                write_waiting()  # also when the batch was interrupted: keep what was answered
        return responses

    def loglikelihood(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        keys = [cache_key(self.model_id, "loglikelihood", r.payload()) for r in requests]
        found = self.cache.get_many(keys)
        scores: list[Score | None] = [None] * len(requests)
        missing = []
        for i, key in enumerate(keys):
            if key in found:
                scores[i] = Score(**found[key], cached=True)
            else:
                missing.append(i)
        self.hits += len(requests) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self.backend.loglikelihood([requests[i] for i in missing])
            self.cache.put_many([(keys[i], {"logprob": s.logprob, "n_tokens": s.n_tokens,
                                            "is_greedy": s.is_greedy})
                                 for i, s in zip(missing, fresh) if s.error is None])
            for i, s in zip(missing, fresh):
                scores[i] = s
        return scores  # type: ignore[return-value]

    def close(self) -> None:
        self.backend.close()
