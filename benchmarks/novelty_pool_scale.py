"""The ROUGE-L novelty pool at 10 k questions per leaf: the indexed pool vs comparing every text.

    PYTHONPATH=src .venv/bin/python benchmarks/novelty_pool_scale.py [--questions 10000] [--exhaustive 1000]

Questions are drawn like a teacher's (an opener, function words and Zipf-distributed topic
words, with near repeats). The indexed pool (`NoveltyPool.admit`) filters all of them; the exhaustive comparison
(`NoveltyPool.closest` against everything admitted so far, the previous implementation) runs
on the first `--exhaustive` only, where its decisions are checked to be identical, and its time
at the full count is extrapolated quadratically (its cost per question grows with the pool).
"""

from __future__ import annotations

import argparse
import random
import time

from alignlab.llm.scripted import WORDS
from alignlab.sdg.similarity import NoveltyPool

OPENERS = ["What", "How", "Which", "Why", "Describe", "Explain", "List", "Compare"]
FUNCTION_WORDS = "the of a is in to and for on with by that from as at".split()


def questions(n: int, seed: int = 0) -> list[str]:
    """Teacher-like questions: an opener, then 7-14 words, about 40 % function words and the
    rest topic words drawn Zipf-like from a few thousand; one in ten edits an earlier question."""
    rng = random.Random(seed)
    topics = [f"{w}{k}" for w in WORDS for k in range(200)]
    weights = [1 / (rank + 1) for rank in range(len(topics))]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.1:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(topics)
            out.append(" ".join(words))
            continue
        length = rng.randint(7, 14)
        words = [rng.choice(OPENERS)] + [rng.choice(FUNCTION_WORDS) if rng.random() < 0.4
                                         else rng.choices(topics, weights)[0] for _ in range(length)]
        out.append(" ".join(words) + "?")
    return out


def indexed(texts: list[str], threshold: float) -> tuple[list[tuple], float]:
    pool, decisions = NoveltyPool(threshold), []
    started = time.perf_counter()
    for text in texts:
        ok, score, match = pool.admit(text)
        decisions.append((ok,) if ok else (ok, score, match))
    return decisions, time.perf_counter() - started


def exhaustive(texts: list[str], threshold: float) -> tuple[list[tuple], float]:
    pool, decisions = NoveltyPool(threshold), []
    started = time.perf_counter()
    for text in texts:
        score, match = pool.closest(text)
        if score >= threshold:
            decisions.append((False, score, match))
        else:
            pool.add(text)
            decisions.append((True,))
    return decisions, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--exhaustive", type=int, default=1_000)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    texts = questions(args.questions)
    sample = texts[:args.exhaustive]
    fast_sample, t_fast_sample = indexed(sample, args.threshold)
    slow_sample, t_slow_sample = exhaustive(sample, args.threshold)
    assert fast_sample == slow_sample, "the indexed pool decided differently"
    rejected = sum(not d[0] for d in fast_sample)
    print(f"first {len(sample)} questions: identical decisions ({rejected} rejected as too similar)")
    print(f"  exhaustive {t_slow_sample:6.2f} s   indexed {t_fast_sample:6.2f} s   "
          f"x{t_slow_sample / t_fast_sample:.0f}")
    _, t_fast = indexed(texts, args.threshold)
    projected = t_slow_sample * (len(texts) / len(sample)) ** 2
    print(f"all {len(texts)} questions of one leaf: indexed {t_fast:.2f} s "
          f"({t_fast / len(texts) * 1e6:.0f} us per question); exhaustive projected {projected:.0f} s "
          f"(quadratic from {len(sample)})")
    print(f"  growth of the indexed pool's time from {len(sample)} to {len(texts)} questions: "
          f"x{t_fast / t_fast_sample:.1f} for x{len(texts) / len(sample):.0f} the questions")


if __name__ == "__main__":
    main()
