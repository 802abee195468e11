"""The demo's outcomes over several seeds: what LAB and alignment achieve here, as measurements
with their noise, not as single figures.

    .venv/bin/python benchmarks/outcomes.py -c examples/alignlab.yaml --seeds 0 1 2

For each seed, the whole pipeline (seed of generation, mixing, training and alignment all set
to it) as run `<name>-seed<K>`, plus a twin whose skills phase replays nothing (it reuses the
seed's generate, curate and knowledge phase by hard links, so only mix, the skills phase and
eval run again). Prints per seed, with 95 % intervals and paired tests on the same questions:
held-out knowledge MCQ for base → knowledge → skills → aligned, phase 2's retention of phase 1's
gain with and without replay, and general-MCQ forgetting; then mean and spread over seeds.
A run already finished is reused (its stages are skipped by their fingerprints).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console

from alignlab.config import load_config
from alignlab.evaluate.forgetting import forgetting_rows
from alignlab.mix.recipe import load_recipe
from alignlab.pipeline import run_pipeline
from alignlab.stats import format_delta, format_interval
from twin import link_copy  # benchmarks/twin.py, beside this script

quiet = Console(file=open("/dev/null", "w"))


def overall(result: dict[str, Any], section: str) -> dict[str, Any]:
    summary = result.get(section) or {}
    stats = summary.get("overall") or {}
    return {"value": stats.get(summary.get("headline", "acc")), "ci": stats.get(f"{summary.get('headline', 'acc')}_ci")}


def change(before: dict[str, Any], after: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The paired change of one overall metric (e.g. `mcq_acc`)."""
    rows = [r for r in forgetting_rows(before, after) if r["metric"] == metric]
    overall_rows = [r for r in rows if r["leaf"] == "(all)"] or rows
    return overall_rows[0]["paired"] if overall_rows else None


def no_replay_twin(cfg, config_path: Path, overrides: dict[str, Any]):
    recipe = load_recipe(cfg).recipe.model_dump(mode="json")
    for phase in recipe["phases"]:
        phase["sources"] = [s for s in phase["sources"] if s.get("phase") is None]
    twin = load_config(config_path, overrides={**overrides, "name": f"{cfg.name}-noreplay", "mix": recipe})
    twin.run_dir.path.mkdir(parents=True, exist_ok=True)
    for part in ("generate", "curate", f"train/{cfg.train.phases[0].name}", "requests.sqlite"):
        source, target = cfg.run_dir.path / part, twin.run_dir.path / part
        if source.exists() and not target.exists():
            link_copy(source, target)
    return twin


def one_seed(config_path: Path, seed: int) -> dict[str, Any]:
    base_cfg = load_config(config_path)
    overrides = {"name": f"{base_cfg.name}-seed{seed}", "seed": seed,
                 "train": {"seed": seed}, "align": {"seed": seed}}
    cfg = load_config(config_path, overrides=overrides)
    run_pipeline(cfg, until="eval-aligned", console=quiet)
    from alignlab.store import read_json

    aligned = read_json(cfg.run_dir.stage("eval").file("aligned.json"))
    sft = read_json(cfg.run_dir.stage("eval").file("sft.json"))
    first, last = cfg.train.phases[0].name, cfg.train.phases[-1].name
    results = {**sft["results"], "aligned": aligned["results"]["aligned"]}
    twin = no_replay_twin(cfg, config_path, overrides)
    run_pipeline(twin, until="eval", console=quiet)
    twin_sft = read_json(twin.run_dir.stage("eval").file("sft.json"))
    results["no replay"] = twin_sft["results"][last]
    base = results["base"]
    return {"seed": seed, "labels": ["base", first, last, "aligned", "no replay"],
            "knowledge": {label: overall(r, "mcq") for label, r in results.items()},
            "general": {label: overall(r, "general") for label, r in results.items()},
            "gain": change(base, results[first], "mcq_acc"),
            "kept_replay": change(base, results[last], "mcq_acc"),
            "kept_no_replay": change(base, results["no replay"], "mcq_acc"),
            "aligned_vs_sft": change(results[last], results["aligned"], "mcq_acc"),
            "general_forgetting": change(base, results[last], "general_acc")}


def retention(kept: dict[str, Any] | None, gain: dict[str, Any] | None) -> float | None:
    if not kept or not gain or gain["delta"] <= 0:
        return None
    return kept["delta"] / gain["delta"]


def spread(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f} (one seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("examples/alignlab.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    runs = [one_seed(args.config, seed) for seed in args.seeds]
    for run in runs:
        print(f"\nseed {run['seed']}: held-out knowledge MCQ (accuracy [95 % CI])")
        for label in run["labels"]:
            print(f"  {label:<12} knowledge {format_interval(run['knowledge'][label]['value'], run['knowledge'][label]['ci'])}"
                  f"   general {format_interval(run['general'][label]['value'], run['general'][label]['ci'])}")
        print(f"  phase-1 gain               {format_delta(run['gain'], points=True)}")
        for key, name in (("kept_replay", "kept after phase 2 (replay)"), ("kept_no_replay", "kept after phase 2 (no replay)")):
            share = retention(run[key], run["gain"])
            print(f"  {name:<27}{format_delta(run[key], points=True)}"
                  + (f"  = {share:.0%} of the gain" if share is not None else ""))
        print(f"  aligned vs SFT             {format_delta(run['aligned_vs_sft'], points=True)}")
        print(f"  general MCQ, SFT vs base   {format_delta(run['general_forgetting'], points=True)}")

    print(f"\nover {len(runs)} seed(s): mean ± standard deviation")
    for label in runs[0]["labels"]:
        print(f"  knowledge MCQ, {label:<12}{spread([r['knowledge'][label]['value'] for r in runs])}")
    for key, name in (("gain", "phase-1 gain"), ("kept_replay", "kept, replay"), ("kept_no_replay", "kept, no replay"),
                      ("aligned_vs_sft", "aligned - SFT"), ("general_forgetting", "general, SFT - base")):
        print(f"  {name:<27}{spread([(r[key] or {}).get('delta') for r in runs])}")
    print(f"  retention with replay      {spread([retention(r['kept_replay'], r['gain']) for r in runs])}")
    print(f"  retention without replay   {spread([retention(r['kept_no_replay'], r['gain']) for r in runs])}")


if __name__ == "__main__":
    main()
