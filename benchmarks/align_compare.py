"""The contrastive-post-training comparison: from the same SFT model, on the same pairs and the
same compute, does DPO (easy -> hard) do better than simply training on the chosen answers?

    .venv/bin/python benchmarks/align_compare.py -c examples/alignlab.yaml
    .venv/bin/python benchmarks/align_compare.py --variants sft-chosen dpo-easy_to_hard

Runs (or reuses) the configured pipeline up to `pairs`, then `align` once per variant, each in a
twin run that shares the original's stages up to pairs (hard-linked, so their fingerprints match
and they are reused), with the same epochs, batch and learning rate:
  (a) sft-chosen         continued SFT on the chosen answers (`align.loss.kind: sft`)
  (b) dpo-easy_to_hard   DPO, pairs played from easy to hard
  (c) dpo-mixed          DPO, pairs in a shuffled order
  (d) slic-easy_to_hard  SLiC-HF, easy to hard
Every aligned model and the SFT model are evaluated as the eval stage does (held-out knowledge
MCQ, general MCQ, judged skill score). Printed per variant: the paired change against the SFT
model on the same items (95 % interval, McNemar or paired bootstrap), the judged win rate
against the SFT model (both orders, so position bias cancels), then DPO easy -> hard against
continued SFT directly: the paper's claim is the first line of that table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from alignlab.config import load_config
from alignlab.evaluate.forgetting import forgetting_rows
from alignlab.evaluate.stage import compare_models, evaluate_model
from alignlab.pipeline import run_pipeline
from alignlab.stats import format_delta, format_interval
from alignlab.store import read_json
from alignlab.train.align import align_stage
from alignlab.train.phases import trained_model
from twin import link_copy  # benchmarks/twin.py, beside this script

quiet = Console(file=open("/dev/null", "w"))
VARIANTS = {"sft-chosen": ("sft", "easy_to_hard"), "dpo-easy_to_hard": ("dpo", "easy_to_hard"),
            "dpo-mixed": ("dpo", "mixed"), "slic-easy_to_hard": ("slic", "easy_to_hard")}
# (metric as forgetting_rows names it, shown as, in points)
MEASURES = [("mcq_acc", "knowledge MCQ accuracy", True), ("mcq_p_right", "knowledge MCQ p(right)", False),
            ("general_acc", "general MCQ accuracy", True), ("judge_score", "judged skill score", False)]


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


def overall_change(before: dict[str, Any], after: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The paired change of one metric over all leaves (the '(all)' row when there are several)."""
    rows = [r for r in forgetting_rows(before, after) if r["metric"] == metric]
    return next((r for r in rows if r["leaf"] == "(all)"), rows[0] if rows else None)


def print_changes(title: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    print(title)
    for metric, shown, points in MEASURES:
        row = overall_change(before, after, metric)
        if row is None:
            continue
        print(f"  {shown:<24} {row['before']:.3f} -> {row['after']:.3f}   "
              f"{format_delta(row['paired'], points=points)}")


def print_win_rate(cfg, a: str, b: str, label_a: str, label_b: str) -> None:
    win = compare_models(cfg, a, b, label_a, label_b)["overall"]
    print(f"  judged win rate vs {label_b:<6} {format_interval(win.get('win_rate'), win.get('win_rate_ci'))}"
          f"  ({win.get('wins', '-')} wins, {win.get('ties', '-')} ties, {win.get('losses', '-')} losses)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("examples/alignlab.yaml"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    base_cfg = load_config(args.config)
    run_pipeline(base_cfg, until="pairs", console=quiet)
    sft = str(trained_model(base_cfg))
    # Under the last phase's label, the eval stage's own result for this model is reused.
    sft_result = evaluate_model(base_cfg, sft, base_cfg.train.phases[-1].name)
    pairs = read_json(base_cfg.run_dir.path / "pairs" / "manifest.json")["counts"]
    a = base_cfg.align
    print(f"from the SFT model {sft}: {pairs.get('pairs', '?')} training pairs, "
          f"{pairs.get('heldout_pairs', '?')} held out; every variant {a.epochs} epoch(s), "
          f"{a.batch_pairs} pairs per batch, lr {a.lr}")
    aligned: dict[str, tuple[Any, str, dict[str, Any]]] = {}
    for name in args.variants:
        kind, order = VARIANTS[name]
        cfg = twin(args.config, name, kind, order, base_cfg.run_dir.path)
        counts = align_stage(cfg, console=quiet)["counts"]
        model = str(cfg.run_dir.path / "align" / "selected")
        result = evaluate_model(cfg, model, name)
        aligned[name] = (cfg, model, result)
        print_changes(f"\n{name}: {counts['steps']} steps, selected {counts['selected']} "
                      f"(held-out reward accuracy {counts['heldout_reward_accuracy']:.2f} as {kind} defines it)",
                      sft_result, result)
        print_win_rate(cfg, model, sft, name, "sft")
    if "dpo-easy_to_hard" in aligned and "sft-chosen" in aligned:
        cfg, dpo, dpo_result = aligned["dpo-easy_to_hard"]
        _, sft_chosen, sft_chosen_result = aligned["sft-chosen"]
        print_changes("\ndpo-easy_to_hard against sft-chosen (same pairs, same compute)",
                      sft_chosen_result, dpo_result)
        print_win_rate(cfg, dpo, sft_chosen, "dpo-easy_to_hard", "sft-chosen")


if __name__ == "__main__":
    main()
