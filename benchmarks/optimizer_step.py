"""One AdamW step over the embedded student's weights: tensor by tensor, foreach, and fused.

    .venv/bin/python benchmarks/optimizer_step.py [--steps 5] [--rounds 2]

The training loop uses the fused kernel (one pass over all parameters) on CPU and CUDA. Each
arm updates the same 135M fp32 parameters with the same random gradients; the first step of
each arm allocates the optimizer state and is not counted. The arms alternate for `--rounds`
rounds, so a machine that is busy for part of the run slows every arm alike. Printed: seconds
per step of each arm, each arm against the fused one, and the largest difference in weights
after the same steps (the arms compute the same update, up to rounding).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alignlab.llm.hf import as_spec, load_causal_lm

MODEL = "embedded:smollm2-135m"
ARMS = {"tensor by tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def time_arm(model: torch.nn.Module, grads: list[torch.Tensor], options: dict, steps: int) -> tuple[float, list]:
    start = [p.detach().clone() for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **options)
    optimizer.step()  # allocates the state
    began = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    seconds = (time.perf_counter() - began) / steps
    after = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p, s in zip(model.parameters(), start):
            p.copy_(s)
    return seconds, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = load_causal_lm(as_spec(MODEL))
    torch.manual_seed(0)
    grads = [torch.randn_like(p) * 1e-3 for p in model.parameters()]
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    weights: dict[str, list] = {}
    for _ in range(args.rounds):
        for arm, options in ARMS.items():
            seconds, weights[arm] = time_arm(model, grads, options, args.steps)
            times[arm].append(seconds)
    fused = statistics.median(times["fused"])
    print(f"AdamW step over {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M fp32 parameters, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds of {args.steps} steps")
    for arm in ARMS:
        seconds = statistics.median(times[arm])
        drift = max(float((a - b).abs().max()) for a, b in zip(weights[arm], weights["fused"]))
        print(f"  {arm:18s} {seconds:7.3f} s/step  {seconds / fused:5.1f}x fused  "
              f"max |w - w_fused| {drift:.1e}")


if __name__ == "__main__":
    main()
