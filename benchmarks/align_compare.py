"""DPO vs SLiC vs SFT only, and easy-to-hard vs mixed order, on the same pairs of a finished run.

    .venv/bin/python benchmarks/align_compare.py -c examples/alignlab.yaml

Runs (or reuses) the configured pipeline up to `pairs`, then `align` once per variant — each in
a twin run sharing the original's stages up to pairs (copied, so their fingerprints match and
they are reused) — and measures for every variant and for the SFT model itself:
- reward accuracy on the held-out pairs (DPO's implicit reward for DPO; the policy's own
  log-probability margin for SLiC and for the SFT model), and
- the judged pairwise win rate against the SFT model on the held-out skill prompts (both
  orders, so position bias cancels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from alignlab.config import load_config
from alignlab.evaluate.stage import compare_models
from alignlab.llm.hf import load_causal_lm, load_tokenizer
from alignlab.pipeline import run_pipeline
from alignlab.store import read_json, read_pairs
from alignlab.train.align import align_stage
from alignlab.train.config import PreferenceLossConfig
from alignlab.train.phases import trained_model
from alignlab.train.preference import reward_accuracy
from twin import link_copy  # benchmarks/twin.py, beside this script

quiet = Console(file=open("/dev/null", "w"))
VARIANTS = {"dpo-easy_to_hard": ("dpo", "easy_to_hard"), "dpo-mixed": ("dpo", "mixed"),
            "slic-easy_to_hard": ("slic", "easy_to_hard")}


def twin(config: Path, name: str, kind: str, order: str, source_run: Path):
    cfg = load_config(config)
    cfg = load_config(config, overrides={"name": f"{cfg.name}-{name}",
                                         "align": {"loss": {"kind": kind}, "order": order}})
    target = cfg.run_dir.path
    target.mkdir(parents=True, exist_ok=True)
    for part in ("generate", "curate", "mix", "train", "pairs", "requests.sqlite"):
        if not (target / part).exists():
            link_copy(source_run / part, target / part)
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("examples/alignlab.yaml"))
    args = parser.parse_args()
    base_cfg = load_config(args.config)
    run_pipeline(base_cfg, until="pairs", console=quiet)
    sft = str(trained_model(base_cfg))
    heldout = read_pairs(base_cfg.run_dir.path / "pairs" / "heldout_pairs.jsonl")
    tokenizer = load_tokenizer(sft)
    margin_only = PreferenceLossConfig(kind="slic")
    sft_accuracy = reward_accuracy(load_causal_lm(sft), heldout, tokenizer, margin_only,
                                   max_length=base_cfg.align.max_length)
    print(f"{len(heldout)} held-out pairs; SFT model's own log-prob margin puts chosen first on "
          f"{sft_accuracy:.2f} of them")
    print(f"{'variant':<20} {'reward acc (implicit)':>22} {'margin acc':>11} {'win rate vs SFT':>16}")
    print(f"{'SFT only':<20} {'-':>22} {sft_accuracy:>11.2f} {0.5:>16.2f}")
    for name, (kind, order) in VARIANTS.items():
        cfg = twin(args.config, name, kind, order, base_cfg.run_dir.path)
        align_stage(cfg, console=quiet)
        aligned = cfg.run_dir.path / "align" / "selected"
        counts = read_json(cfg.run_dir.path / "align" / "manifest.json")["counts"]
        margin = reward_accuracy(load_causal_lm(str(aligned)), heldout, tokenizer, margin_only,
                                 max_length=cfg.align.max_length)
        win = compare_models(cfg, str(aligned), sft, name, "sft")["overall"]["win_rate"]
        print(f"{name:<20} {counts['heldout_reward_accuracy']:>22.2f} {margin:>11.2f} {win:>16.2f}")


if __name__ == "__main__":
    main()
