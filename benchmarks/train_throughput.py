"""Trained tokens per second: token-budget batches against fixed-size padded batches.

    .venv/bin/python benchmarks/train_throughput.py [--steps 3] [--budget 1024] [--batch-size 4]

Data: the demo's mix (`runs/demo/mix/*.jsonl` or `examples/runs/demo/mix/*.jsonl`) when it
exists, else synthetic demo-like samples: 70% short Q&A of 40-150 tokens and 30% document
chunks of 250-400 tokens (trained on every token, as the mix marks them `unmask`).

Both arms run the embedded model, full fine-tuning in fp32, through the same `train_loop`,
one micro-batch per optimizer step; the first step of each arm is a warm-up and not counted.
Throughput is real tokens (padding excluded) per second of optimizer step, read from
metrics.jsonl. Also printed: the padding share of a whole epoch under each batching, and the
peak resident memory (RSS) of the process, which is the full fine-tune's.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
from pathlib import Path

from alignlab.llm.hf import load_tokenizer
from alignlab.records import Sample
from alignlab.store import read_samples
from alignlab.train.batching import LazyBatches, fixed_size_batches, padding_share, token_budget_batches
from alignlab.train.checkpoint import load_trainable_model
from alignlab.train.config import LoraSettings
from alignlab.train.data import collate, prepare_samples, sft_loss
from alignlab.train.loop import LoopSettings, train_loop

MODEL = "embedded:smollm2-135m"
WORDS = ("model data training answer question document chunk policy river mountain energy "
         "system value result method table figure level change process market history").split()


def demo_mix() -> list[Sample] | None:
    for folder in (Path("runs/demo/mix"), Path("examples/runs/demo/mix")):
        files = sorted(folder.glob("*.jsonl"))
        if files:
            return [s for f in files for s in read_samples(f)]
    return None


def synthetic(tokenizer, n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)

    def text(tokens: int) -> str:
        words = []
        while len(tokenizer(" ".join(words)).input_ids) < tokens:
            words.extend(rng.choice(WORDS) for _ in range(8))
        return " ".join(words)

    samples = []
    for i in range(n):
        if rng.random() < 0.7:  # a short question and answer, 40-150 tokens in all
            total = rng.randint(40, 150)
            q = max(8, total // 4)
            messages = [{"role": "user", "content": text(q) + "?"},
                        {"role": "assistant", "content": text(max(4, total - q - 30))}]
            samples.append(Sample(id=f"qa{i}", messages=messages))
        else:  # a document chunk, 250-400 tokens, trained on every token
            messages = [{"role": "user", "content": "Read this passage."},
                        {"role": "assistant", "content": text(rng.randint(230, 380))}]
            samples.append(Sample(id=f"doc{i}", messages=messages, unmask=True))
    return samples


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_arm(name: str, index_batches, train, tokenizer, steps: int, out: Path) -> dict:
    def batches(epoch: int) -> LazyBatches:
        return LazyBatches(index_batches(epoch),
                           lambda idx: collate([train[i] for i in idx], tokenizer.pad_token_id))

    settings = LoopSettings(epochs=1, micro_batches_per_step=1, lr=1e-5, save_every=10**9,
                            seed=0, fingerprint=name)
    train_loop(lambda resume: load_trainable_model(MODEL, "full", LoraSettings(), resume), tokenizer,
               batches, sft_loss, settings, out, stop_at_step=steps + 1, description=name)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]
    real = sum(r["real_tokens"] for r in records)
    seconds = sum(r["seconds"] for r in records)
    return {"tokens_per_s": real / seconds, "padding": sum(r["tokens"] - r["real_tokens"] for r in records)
            / sum(r["tokens"] for r in records), "steps": len(records),
            "median_step_s": statistics.median(r["seconds"] for r in records),
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps per arm")
    parser.add_argument("--budget", type=int, default=1024, help="token budget per micro-batch")
    parser.add_argument("--batch-size", type=int, default=4, help="rows per fixed-size batch")
    parser.add_argument("--samples", type=int, default=200, help="synthetic samples")
    parser.add_argument("--max-seq-len", type=int, default=512)
    args = parser.parse_args()

    tokenizer = load_tokenizer(MODEL)
    samples = demo_mix()
    source = "demo mix"
    if samples is None:
        samples, source = synthetic(tokenizer, args.samples), "synthetic"
    prepared = prepare_samples(tokenizer, samples, args.max_seq_len)
    train = prepared.samples
    lengths = [len(s.input_ids) for s in train]
    print(f"data: {source}, {len(train)} samples (skipped {sum(map(len, prepared.skipped.values()))}), "
          f"tokens min/median/max {min(lengths)}/{statistics.median(lengths):.0f}/{max(lengths)}")

    budget = lambda epoch: token_budget_batches(lengths, args.budget, seed=0, epoch=epoch)  # noqa: E731
    fixed = lambda epoch: fixed_size_batches(len(train), args.batch_size, seed=0, epoch=epoch)  # noqa: E731
    print(f"padding share over an epoch: token budget {args.budget}: {padding_share(budget(0), lengths):.1%}"
          f" in {len(budget(0))} batches; fixed size {args.batch_size}: "
          f"{padding_share(fixed(0), lengths):.1%} in {len(fixed(0))} batches")
    print(f"RSS before training: {peak_rss_mb():.0f} MB")

    with tempfile.TemporaryDirectory() as tmp:
        results = {"token_budget": run_arm("token_budget", budget, train, tokenizer, args.steps,
                                           Path(tmp) / "budget"),
                   "fixed_size": run_arm("fixed_size", fixed, train, tokenizer, args.steps,
                                         Path(tmp) / "fixed")}
    for name, r in results.items():
        print(f"{name:>12}: {r['tokens_per_s']:7.1f} real tokens/s over {r['steps']} steps "
              f"(median step {r['median_step_s']:.1f} s), padding {r['padding']:.1%}, "
              f"peak RSS so far {r['peak_rss_mb']:.0f} MB")
    ratio = results["token_budget"]["tokens_per_s"] / results["fixed_size"]["tokens_per_s"]
    print(f"token-budget / fixed-size throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
