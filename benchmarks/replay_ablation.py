"""LAB's replay buffer, measured: phase 2 (skills) with and without replaying phase-1 data, from
the same phase-1 checkpoint, and how much of phase 1's knowledge gain each keeps.

    .venv/bin/python benchmarks/replay_ablation.py -c examples/alignlab.yaml

Runs (or reuses) the configured pipeline up to `eval`, then a twin run named `<name>-noreplay`
whose skills phase draws no rows from earlier phases. The twin starts from copies of the first
run's generate and curate outputs and its knowledge phase (their fingerprints match, so they are
reused, not recomputed) and the request cache; only mix, the skills phase and eval run again.
Prints held-out MCQ accuracy on every knowledge leaf: base, after phase 1, after phase 2 with
and without replay.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from alignlab.config import load_config
from alignlab.mix.recipe import load_recipe
from alignlab.pipeline import run_pipeline
from twin import link_copy  # benchmarks/twin.py, beside this script

quiet = Console(file=open("/dev/null", "w"))


def knowledge_accuracy(eval_summary: dict, label: str) -> dict[str, float]:
    mcq = eval_summary["results"][label].get("mcq") or {}
    return {leaf: stats["acc"] for leaf, stats in mcq.get("by_leaf", {}).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("examples/alignlab.yaml"))
    args = parser.parse_args()

    cfg = load_config(args.config)
    with_replay = run_pipeline(cfg, until="eval", console=quiet)["eval"]
    phases = cfg.train.phases
    first, second = phases[0].name, phases[-1].name

    recipe = load_recipe(cfg).recipe.model_dump(mode="json")
    for phase in recipe["phases"]:
        phase["sources"] = [s for s in phase["sources"] if s.get("phase") is None]
    twin = load_config(args.config, overrides={"name": f"{cfg.name}-noreplay", "mix": recipe})
    twin_dir = twin.run_dir.path
    twin_dir.mkdir(parents=True, exist_ok=True)
    for part in ("generate", "curate", f"train/{first}", "requests.sqlite"):
        source, target = cfg.run_dir.path / part, twin_dir / part
        if source.exists() and not target.exists():
            link_copy(source, target)
    without_replay = run_pipeline(twin, until="eval", console=quiet)["eval"]

    rows = {"base": knowledge_accuracy(with_replay, "base"),
            f"after {first}": knowledge_accuracy(with_replay, first),
            f"after {second}, with replay": knowledge_accuracy(with_replay, second),
            f"after {second}, no replay": knowledge_accuracy(without_replay, second)}
    leaves = sorted(rows["base"])
    print(f"held-out knowledge MCQ accuracy ({cfg.run_dir.path} and {twin_dir})")
    for name, acc in rows.items():
        print(f"  {name:<32}" + "  ".join(f"{acc.get(leaf, float('nan')):.3f}" for leaf in leaves))
    for leaf in leaves:
        gain = rows[f"after {first}"][leaf] - rows["base"][leaf]
        for variant in ("with replay", "no replay"):
            kept = rows[f"after {second}, {variant}"][leaf] - rows["base"][leaf]
            share = f"{kept / gain:.0%} of it" if gain > 0 else "n/a"
            print(f"  {leaf}: phase-1 gain {gain:+.3f}; {variant}: {kept:+.3f} kept ({share})")


if __name__ == "__main__":
    main()
