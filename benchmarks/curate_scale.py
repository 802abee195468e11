"""How near-dedup and diversity selection scale: time and peak memory at 10k, 50k and 100k
synthetic samples, and time per sample relative to the smallest size.

    .venv/bin/python benchmarks/curate_scale.py                    # 10k, 50k, 100k
    .venv/bin/python benchmarks/curate_scale.py --sizes 2000 10000 # quicker

The corpus: instructions of 8-20 and responses of 40-120 random words from a 20k-word
vocabulary; 10% of the samples are copies of earlier ones with 1-3 word edits, so dedup has
something to find. Each (case, size) runs in a fresh process so one case's memory does not
hide another's. Memory is the growth of the process's peak resident set (`ru_maxrss` from
`resource.getrusage`) during the step: peak after the step minus peak after building the
corpus — a lower bound of what the step itself needed, measured without tracemalloc's
slow-down. The machine may be shared: run both sizes in one go and read the ratios.

Cases:
    dedup               the dedup step's work: exact + MinHash LSH near-duplicates, on the
                        instruction and on the whole conversation (jaccard 0.8, 128 perms, 5-grams)
    diversity           Deita selection with the hashed embedder (dim 512, θ 0.9), no budget: the
                        worst case, every distinct sample is accepted and compared against, so
                        the cost grows with candidates × accepted (quadratic)
    diversity_budget    the same with a budget of 5,000: selection stops once 5,000 are accepted
                        (about 5,600 candidates into this corpus), so its time does not grow with
                        the corpus at all; the cost is about budget² / acceptance rate
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

BUDGET = 5000


def corpus(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    rows: list[tuple[str, str]] = []
    for _ in range(n):
        if rows and rng.random() < 0.1:
            instruction, response = rows[rng.randrange(len(rows))]
            toks = response.split()
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(toks))
                toks[i] = rng.choice(vocab)
            rows.append((instruction, " ".join(toks)))
        else:
            rows.append((" ".join(rng.choices(vocab, k=rng.randint(8, 20))),
                         " ".join(rng.choices(vocab, k=rng.randint(40, 120)))))
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_case(case: str, n: int) -> dict:
    from alignlab.curate.dedup import find_duplicates
    from alignlab.curate.diversity import select_diverse
    from alignlab.curate.embed import HashedEmbedder

    rows = corpus(n)
    instructions = [i for i, _ in rows]
    conversations = [f"{i}\n{r}" for i, r in rows]
    before = peak_rss_mb()
    started = time.perf_counter()
    if case == "dedup":
        found = find_duplicates(instructions, jaccard=0.8)
        live = [k for k, f in enumerate(found) if f is None]
        found2 = find_duplicates([conversations[k] for k in live], jaccard=0.8)
        removed = sum(f is not None for f in found) + sum(f is not None for f in found2)
        result = {"removed": removed}
    else:
        budget = BUDGET if case == "diversity_budget" else None
        choices = select_diverse(conversations, HashedEmbedder(512), threshold=0.9, budget=budget)
        result = {"accepted": sum(c.accepted for c in choices)}
    seconds = time.perf_counter() - started
    return {"case": case, "n": n, "seconds": seconds, "rss_growth_mb": peak_rss_mb() - before,
            "peak_rss_mb": peak_rss_mb(), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--cases", nargs="+", default=["dedup", "diversity_budget", "diversity"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child process: one measurement, printed as JSON
        print(json.dumps(run_case(args.case, args.n)))
        return

    from rich.console import Console
    from rich.table import Table

    results = []
    for case in args.cases:
        for n in args.sizes:
            out = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n)],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{case} {n}: {results[-1]['seconds']:.1f}s", file=sys.stderr)
    table = Table(title="curate at scale (wall time; RSS growth = peak RSS after the step - before)")
    for col in ("case", "samples", "seconds", "µs/sample", "per-sample ratio", "RSS growth MB",
                "peak RSS MB", "result"):
        table.add_column(col, justify="left" if col in ("case", "result") else "right")
    for case in args.cases:
        rows = [r for r in results if r["case"] == case]
        base = rows[0]["seconds"] / rows[0]["n"]
        for r in rows:
            per = r["seconds"] / r["n"]
            extra = {k: v for k, v in r.items() if k in ("removed", "accepted")}
            table.add_row(case, f"{r['n']:,}", f"{r['seconds']:.1f}", f"{per * 1e6:.0f}", f"{per / base:.2f}",
                          f"{r['rss_growth_mb']:.0f}", f"{r['peak_rss_mb']:.0f}",
                          ", ".join(f"{k} {v:,}" for k, v in extra.items()))
    Console(width=150).print(table)
    print("per-sample ratio: time per sample at this size / time per sample at the smallest size")


if __name__ == "__main__":
    main()
