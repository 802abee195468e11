"""Local backend throughput on the embedded model: batched vs one request at a time, and the
request cache's cost per hit. Also the one-off figures: GGUF conversion, load time, peak memory.

    .venv/bin/python benchmarks/backend_throughput.py [--prompts 16] [--tokens 64] [--conversion]

Both modes answer the same prompts greedily; rows may stop early at EOS, so the new tokens are
counted, not assumed. Measured side by side in one run, since machines here are shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.config import BackendSettings
from alignlab.llm.local import LocalBackend
from alignlab.llm.types import GenerationParams, Request

TOPICS = ["the water cycle", "how a bicycle works", "why the sky is blue", "photosynthesis", "volcanoes",
          "the history of paper", "how bees communicate", "tides", "the printing press", "lightning",
          "how vaccines work", "glaciers", "the compass", "coral reefs", "the steam engine", "rainbows"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def requests(n: int, tokens: int) -> list[Request]:
    params = GenerationParams(max_tokens=tokens)
    return [Request(messages=({"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]} in detail."},),
                    params=params) for i in range(n)]


def new_tokens(responses) -> int:
    return sum(c.completion_tokens for r in responses for c in r.choices)


def conversion_seconds() -> float:
    """Convert the GGUF into a fresh, empty ALIGNLAB_HOME (what the first use on a machine costs)."""
    from alignlab.llm import embedded

    with tempfile.TemporaryDirectory() as home:
        os.environ["ALIGNLAB_HOME"] = home
        started = time.perf_counter()
        embedded.ensure_converted()
        seconds = time.perf_counter() - started
        del os.environ["ALIGNLAB_HOME"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--conversion", action="store_true", help="also time a fresh GGUF conversion")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()

    if args.conversion:
        print(f"GGUF -> safetensors conversion: {conversion_seconds():.1f} s (once per machine)")
    started = time.perf_counter()
    backend = LocalBackend.from_spec("embedded:smollm2-135m",
                                     BackendSettings(max_batch_size=args.prompts, precision=args.precision))
    print(f"load from the safetensors copy: {time.perf_counter() - started:.2f} s")

    batch = requests(args.prompts, args.tokens)
    backend.generate(requests(2, 4))  # warm-up: first-call allocations are not throughput

    started = time.perf_counter()
    batched = backend.generate(batch)
    t_batched = time.perf_counter() - started
    started = time.perf_counter()
    single = [backend.generate([r])[0] for r in batch]
    t_single = time.perf_counter() - started
    rate_batched, rate_single = new_tokens(batched) / t_batched, new_tokens(single) / t_single
    same = sum(a.text == b.text for a, b in zip(batched, single))
    print(f"{args.prompts} prompts x up to {args.tokens} new tokens (greedy):")
    print(f"  batched        {new_tokens(batched):5d} tokens in {t_batched:6.1f} s = {rate_batched:6.1f} tokens/s")
    print(f"  one at a time  {new_tokens(single):5d} tokens in {t_single:6.1f} s = {rate_single:6.1f} tokens/s")
    print(f"  batched / one at a time: x{rate_batched / rate_single:.2f}  (identical texts: {same}/{len(batch)})")

    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedBackend(backend, RequestCache(Path(tmp) / "cache.sqlite"))
        many = [Request(messages=({"role": "user", "content": f"question {i}"},),
                        params=GenerationParams(max_tokens=1)) for i in range(1000)]
        cached.generate(many)
        calls = backend.stats.calls
        started = time.perf_counter()
        again = cached.generate(many)
        per_hit = (time.perf_counter() - started) / len(many)
        assert backend.stats.calls == calls and all(r.cached for r in again)
        print(f"request cache: {per_hit * 1e6:.0f} us per hit (1000 hits, no model call)")
    print(f"peak memory (RSS): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
