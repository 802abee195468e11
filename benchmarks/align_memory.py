"""Peak memory and step time of a DPO step on the embedded model, with the reference
log-probabilities precomputed once versus a live reference model kept in memory.

    .venv/bin/python benchmarks/align_memory.py [--pairs 4] [--tokens 128] [--steps 3]

Each variant runs in a fresh subprocess so their peaks do not mix:
- `precomputed`: the policy computes the reference log-probs before its first step (at that
  point it *is* the reference), they are stored in the pairs, and training holds one model;
- `live`: a second copy of the model stays in memory as the reference and runs a forward pass
  over every batch, the way a trainer without precomputation works.
Both take full fine-tuning steps (AdamW over all weights) on the same pairs; the figures are
the peak resident set size of the process and the median wall and CPU time of the timed
steps (CPU time, summed over threads, is the steadier figure on a machine shared with others).
The weights are memory-mapped from the safetensors file, so a loaded model enters the RSS as
its pages are touched: "RSS loaded" is small, the peak is what counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

SPEC = "embedded:smollm2-135m"


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MB, from /proc."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _pairs(n: int):
    from alignlab.records import Pair

    filler = ("The committee reviewed the proposal in detail, weighed the costs against the expected "
              "benefits, and asked for a second opinion before making any decision. ")
    return [Pair(id=f"bench{k}", prompt=[{"role": "user", "content": f"Question {k}: " + filler * 2}],
                 chosen=[{"role": "assistant", "content": f"Answer {k}, careful: " + filler * 8}],
                 rejected=[{"role": "assistant", "content": f"Answer {k}, hasty: " + filler[::-1] * 8}],
                 metadata={"difficulty": 1.0}) for k in range(n)]


def run_variant(variant: str, n_pairs: int, tokens: int, steps: int) -> dict:
    import torch

    from alignlab.llm.hf import load_causal_lm, load_tokenizer
    from alignlab.train.losses import PreferenceLossConfig
    from alignlab.train.preference import (
        collate_pairs, make_loss_fn, precompute_reference_logps, sequence_logps, tokenize_pairs,
    )

    torch.manual_seed(0)
    tokenizer = load_tokenizer(SPEC)
    policy = load_causal_lm(SPEC)
    pairs = _pairs(n_pairs)
    reference = None
    precompute_seconds = 0.0
    if variant == "precomputed":
        t0 = time.perf_counter()
        precompute_reference_logps(policy, pairs, tokenizer, reference_id=SPEC, max_length=tokens,
                                   batch_size=n_pairs, progress=False)
        precompute_seconds = time.perf_counter() - t0
    else:
        reference = load_causal_lm(SPEC).requires_grad_(False)
    batch = collate_pairs(tokenize_pairs(tokenizer, pairs, max_length=tokens), tokenizer.pad_token_id)
    rss_loaded, _ = _rss_mb()

    loss_fn = make_loss_fn(PreferenceLossConfig(kind="dpo", beta=0.1))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    policy.train()
    times, cpu_times = [], []
    for step in range(steps + 1):  # step 0 warms up (allocator, optimizer state) and is not timed
        t0, c0 = time.perf_counter(), time.process_time()
        if reference is not None:
            with torch.no_grad():
                ref = sequence_logps(reference, batch)[0]
            batch["ref_chosen_logp"], batch["ref_rejected_logp"] = ref.chunk(2)
        loss, metrics = loss_fn(policy, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    _, peak = _rss_mb()
    return {"variant": variant, "peak_rss_mb": round(peak, 1), "rss_after_load_mb": round(rss_loaded, 1),
            "step_seconds": round(statistics.median(times), 3),
            "step_cpu_seconds": round(statistics.median(cpu_times), 3),
            "precompute_seconds": round(precompute_seconds, 3),
            "sequence_tokens": int(batch["attention_mask"].sum(-1).max()), "rows": int(batch["input_ids"].shape[0]),
            "loss": round(metrics["loss"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128, help="max tokens per sequence (prompt + answer)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--variant", choices=["precomputed", "live"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # the child process: one variant, one JSON line
        print(json.dumps(run_variant(args.variant, args.pairs, args.tokens, args.steps)))
        return

    results = {}
    for variant in ("precomputed", "live"):
        print(f"running {variant} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--pairs", str(args.pairs),
                              "--tokens", str(args.tokens), "--steps", str(args.steps)],
                             check=True, capture_output=True, text=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    pre, live = results["precomputed"], results["live"]
    print(f"\nDPO step on {SPEC}: {args.pairs} pairs = {pre['rows']} rows of <= {pre['sequence_tokens']} tokens, "
          f"full fine-tune (AdamW), median of {args.steps} steps\n")
    print(f"{'variant':<13}{'peak RSS MB':>13}{'RSS loaded MB':>15}{'step s':>9}{'step CPU s':>12}"
          f"{'precompute s':>14}")
    for r in (pre, live):
        print(f"{r['variant']:<13}{r['peak_rss_mb']:>13.0f}{r['rss_after_load_mb']:>15.0f}"
              f"{r['step_seconds']:>9.2f}{r['step_cpu_seconds']:>12.2f}{r['precompute_seconds']:>14.2f}")
    print(f"\nlive / precomputed: peak RSS x{live['peak_rss_mb'] / pre['peak_rss_mb']:.2f} "
          f"(+{live['peak_rss_mb'] - pre['peak_rss_mb']:.0f} MB), "
          f"step time x{live['step_seconds'] / pre['step_seconds']:.2f} wall, "
          f"x{live['step_cpu_seconds'] / pre['step_cpu_seconds']:.2f} CPU")


if __name__ == "__main__":
    main()
