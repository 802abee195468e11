"""Multiple-choice scoring on the embedded model: each item's context run once for all its
options (as `score_mcq` sends them) against one copy of the context per option.

    .venv/bin/python benchmarks/mcq_scoring.py [--precision bf16] [--rounds 2]

Items: the demo's held-out Kelmarra MCQ (examples/), scored as the eval stage scores them.
The per-option arm sends option k of every item in its own call, so no two requests of a call
share a context and each option's row carries its own copy of the question. The arms alternate
for `--rounds` rounds on one loaded model, so load on a shared machine falls on both. Printed:
seconds per pass, the ratio, and the largest difference of a log-likelihood between the arms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from alignlab.evaluate.mcq import load_mcq_file, score_requests
from alignlab.llm.config import BackendSettings
from alignlab.llm.local import LocalBackend

ITEMS = (Path(__file__).resolve().parents[1] / "examples" / "taxonomy" / "knowledge" / "geography"
         / "islands" / "kelmarra" / "heldout_mcq.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    items = load_mcq_file(ITEMS, leaf="kelmarra", source="heldout")
    backend = LocalBackend.from_spec("embedded:smollm2-135m", BackendSettings(precision=args.precision))
    grouped = [score_requests(item) for item in items]
    options = max(len(g) for g in grouped)
    backend.loglikelihood(grouped[0])  # warm-up

    def shared() -> list[float]:
        return [s.logprob for s in backend.loglikelihood([r for g in grouped for r in g])]

    def per_option() -> list[float]:
        by_option = {k: backend.loglikelihood([g[k] for g in grouped if k < len(g)]) for k in range(options)}
        return [by_option[k][n].logprob for n, g in enumerate(grouped) for k in range(len(g))]

    times: dict[str, list[float]] = {"shared context": [], "context per option": []}
    results = {}
    for _ in range(args.rounds):
        for name, arm in (("shared context", shared), ("context per option", per_option)):
            began = time.perf_counter()
            results[name] = arm()
            times[name].append(time.perf_counter() - began)
    fast = statistics.median(times["shared context"])
    print(f"{len(items)} items, {sum(map(len, grouped))} options, {args.precision}, "
          f"median of {args.rounds} rounds")
    for name, seconds in times.items():
        print(f"  {name:20s} {statistics.median(seconds):6.1f} s  {statistics.median(seconds) / fast:4.1f}x")
    drift = max(abs(a - b) for a, b in zip(results["shared context"], results["context per option"]))
    print(f"  largest log-likelihood difference between the arms: {drift:.2e} nats")


if __name__ == "__main__":
    main()
