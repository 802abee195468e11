"""The request cache: a repeated request never reaches the model."""

from __future__ import annotations

import pytest

from alignlab.errors import BackendError
from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.types import GenerationParams, Request, ScoreRequest


def req(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},),
                   params=GenerationParams(max_tokens=6, **params))


def test_cache_hit_makes_no_model_call(tiny_backend, tmp_path):
    cached = CachedBackend(tiny_backend, RequestCache(tmp_path / "c.sqlite"))
    requests = [req("one"), req("two", n=2, temperature=1.0, seed=3)]
    first = cached.generate(requests)
    calls, requests_seen = tiny_backend.stats.calls, tiny_backend.stats.requests
    done = []
    again = cached.generate(requests, on_done=lambda i, r: done.append(i))
    assert tiny_backend.stats.calls == calls and tiny_backend.stats.requests == requests_seen
    assert sorted(done) == [0, 1] and all(r.cached for r in again)
    assert [[c.text for c in r.choices] for r in first] == [[c.text for c in r.choices] for r in again]
    # a new sample index of the same request is the only thing computed
    more = cached.generate([req("two", n=3, temperature=1.0, seed=3)])[0]
    assert tiny_backend.stats.requests == requests_seen + 1
    assert [c.text for c in more.choices[:2]] == [c.text for c in first[1].choices]


def test_cache_survives_reopening_and_scores_are_cached(tiny_backend, tmp_path):
    path = tmp_path / "c.sqlite"
    scores = CachedBackend(tiny_backend, RequestCache(path)).loglikelihood([ScoreRequest("a", " b")])
    before = tiny_backend.stats.calls
    reopened = CachedBackend(tiny_backend, RequestCache(path))
    [again] = reopened.loglikelihood([ScoreRequest("a", " b")])
    assert tiny_backend.stats.calls == before and again.cached
    assert again.logprob == pytest.approx(scores[0].logprob)


def test_failed_requests_are_not_cached(tiny_backend, tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    out = CachedBackend(tiny_backend, cache).generate([req("word " * 3000)])
    assert out[0].error and len(cache) == 0


def test_corrupt_cache_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BackendError, match="corrupt.*move it aside"):
        RequestCache(bad)
