"""Generation throughput: our pipeline vs the same prompts sent one request at a time, and the
speed-up from requests in flight against a slow OpenAI-compatible server.

    .venv/bin/python benchmarks/generate_throughput.py [--samples-per-seed 1] [--delay 0.1]

Part 1 runs `alignlab generate` on examples/ with the embedded model as teacher and judge (a
fresh request cache), recording every request the pipeline sent. The same requests are then
sent again one at a time, no batching, no cache, to the same model — the pipeline's work done
the naive way. Both are timed in this one run; accepted samples per minute divide the
pipeline's accepted count by each wall time.

Part 2 points the pipeline at a local OpenAI-compatible server that answers every request after
a fixed delay (a remote model's latency) with scripted but well-formed replies, and compares
max_in_flight = 1 with 32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from alignlab.config import load_config
from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.local import LocalBackend
from alignlab.llm.scripted import scripted_app
from alignlab.llm.serve import running_server
from alignlab.sdg.stage import generate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "taxonomy"
quiet = Console(file=open("/dev/null", "w"))


class Recording:
    """Passes requests through to a backend and keeps them, in order."""

    def __init__(self, backend):
        self.backend, self.model_id, self.stats = backend, backend.model_id, backend.stats
        self.sent = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate(self, requests, on_done=None):
        self.sent += list(requests)
        return self.backend.generate(requests, on_done)


def workspace(root: Path, settings: dict, teacher: str) -> Path:
    shutil.copytree(EXAMPLES, root / "taxonomy")
    config = {"name": "bench", "taxonomy": "taxonomy", "models": {"teacher": teacher}, "generate": settings}
    (root / "alignlab.yaml").write_text(json.dumps(config))
    return root / "alignlab.yaml"


def part1(settings: dict) -> None:
    teacher = LocalBackend.from_spec("embedded:smollm2-135m")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(workspace(Path(tmp), settings, "embedded:smollm2-135m"))
        recording = Recording(teacher)
        cached = CachedBackend(recording, RequestCache(Path(tmp) / "cache.sqlite"))
        started = time.perf_counter()
        manifest = generate(cfg, models=(cached, cached), console=quiet)
        t_pipeline = time.perf_counter() - started
    counts = manifest["counts"]
    generated = counts["samples"] - counts["chunk_samples"]  # accepted, not counting the chunks
    busy_before, tokens_before = teacher.stats.seconds, teacher.stats.completion_tokens
    started = time.perf_counter()
    for request in recording.sent:
        teacher.generate([request])
    t_naive = time.perf_counter() - started
    naive_tokens = teacher.stats.completion_tokens - tokens_before
    print(f"Part 1 — embedded model, examples/ ({len(recording.sent)} teacher requests, "
          f"{counts['candidates']} candidates, {generated} accepted + {counts['chunk_samples']} chunks)")
    print(f"  pipeline (batched)   {t_pipeline:7.1f} s  {counts['teacher_tokens'] / t_pipeline:6.1f} teacher tokens/s  "
          f"{generated / t_pipeline * 60:6.1f} accepted/min  teacher busy {counts['teacher_utilisation']:.0%}")
    print(f"  one at a time        {t_naive:7.1f} s  {naive_tokens / t_naive:6.1f} teacher tokens/s  "
          f"{generated / t_naive * 60:6.1f} accepted/min  (model time {teacher.stats.seconds - busy_before:.1f} s)")
    print(f"  speed-up of the pipeline: x{t_naive / t_pipeline:.2f}")


def part2(settings: dict, delay: float) -> None:
    times = {}
    with running_server(scripted_app(delay)) as url:
        for in_flight in (1, 32):
            with tempfile.TemporaryDirectory() as tmp:
                cfg = load_config(workspace(Path(tmp), {**settings, "magpie": {"enabled": False}},
                                            f"openai:{url}/v1#scripted"))
                cfg.backend.max_in_flight = in_flight
                started = time.perf_counter()
                manifest = generate(cfg, console=quiet)
                times[in_flight] = time.perf_counter() - started
            print(f"  max_in_flight={in_flight:>2}: {times[in_flight]:6.1f} s for "
                  f"{manifest['counts']['candidates']} candidates")
    print(f"  speed-up from requests in flight: x{times[1] / times[32]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples-per-seed", type=int, default=1)
    parser.add_argument("--qa-per-chunk", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.1, help="part 2: server seconds per request")
    parser.add_argument("--skip-local", action="store_true", help="only part 2")
    args = parser.parse_args()
    settings = {"samples_per_seed": args.samples_per_seed, "qa_per_chunk": args.qa_per_chunk,
                "magpie": {"count": 4}}
    if not args.skip_local:
        part1(settings)
    print(f"Part 2 — OpenAI-compatible server answering after {args.delay:g} s per request")
    part2(settings, args.delay)


if __name__ == "__main__":
    sys.exit(main())
