"""A stage that uses a local model directory re-runs when the model is retrained in place (same
path, new weights) and is skipped while the model is unchanged: the teacher and judge of
generate, the judge of eval and of pairs are named by their identity, not their spec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console
from test_curate_fixtures import sample, write_stage_output
from test_generate import ScriptedTeacher, run, workspace

from alignlab.config import load_config
from alignlab.evaluate.stage import evaluate_model
from alignlab.pairs.stage import pairs_stage

QUIET = Console(file=open("/dev/null", "w"))


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def retrain_in_place(model_dir: Path) -> None:
    """New weights under the same file name, as a training run writing into its output does."""
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    weights = load_file(path)
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.01
    save_file(weights, path, metadata={"format": "pt"})


def with_models(config: Path, **models: str) -> Path:
    text = json.loads(config.read_text())
    text["models"] = {**text.get("models", {}), **models}
    config.write_text(json.dumps(text))
    return config


def test_generate_reruns_when_its_local_teacher_is_retrained_in_place(tmp_path, tiny_model_dir):
    teacher_dir = copy_model(tiny_model_dir, tmp_path / "teacher")
    config = with_models(workspace(tmp_path), teacher=str(teacher_dir))
    first, _ = run(config, ScriptedTeacher())
    assert run(config, ScriptedTeacher())[0]["timings"] == first["timings"]  # unchanged: skipped
    retrain_in_place(teacher_dir)
    again, _ = run(config, ScriptedTeacher())
    assert again["fingerprint"] != first["fingerprint"] and again["timings"] != first["timings"]
    assert again["inputs"]["teacher"].startswith(f"{teacher_dir}@")


def eval_workspace(tmp_path: Path, model_dir: Path, judge_dir: Path):
    skill = tmp_path / "taxonomy" / "compositional_skills" / "writing" / "haiku"
    skill.mkdir(parents=True)
    (skill / "qna.yaml").write_text(
        "version: 2\ntask_description: haiku\ncreated_by: me\nseed_examples:\n"
        + "".join(f"  - question: Write a haiku about {t}.\n    answer: A haiku.\n"
                  for t in ("rain", "snow", "tea", "ink", "moss")))
    (tmp_path / "alignlab.yaml").write_text(json.dumps({
        "name": "t", "models": {"teacher": str(model_dir), "judge": str(judge_dir)},
        "eval": {"general_mcq": None, "selection_share": 0,
                 "judged": {"max_tokens": 4, "max_prompts_per_leaf": 2}}}))
    return load_config(tmp_path / "alignlab.yaml")


def test_eval_reruns_when_its_local_judge_is_retrained_in_place(tmp_path, tiny_model_dir):
    judge_dir = copy_model(tiny_model_dir, tmp_path / "judge")
    cfg = eval_workspace(tmp_path, tiny_model_dir, judge_dir)
    manifest = tmp_path / "runs" / "t" / "eval" / "m" / "manifest.json"
    evaluate_model(cfg, str(tiny_model_dir), label="m")
    first = json.loads(manifest.read_text())
    evaluate_model(cfg, str(tiny_model_dir), label="m")
    assert json.loads(manifest.read_text())["timings"] == first["timings"]  # unchanged: read back
    retrain_in_place(judge_dir)
    evaluate_model(cfg, str(tiny_model_dir), label="m")
    again = json.loads(manifest.read_text())
    assert again["fingerprint"] != first["fingerprint"] and again["timings"] != first["timings"]


def test_pairs_reruns_when_its_local_judge_is_retrained_in_place(tmp_path, tiny_model_dir):
    judge_dir = copy_model(tiny_model_dir, tmp_path / "judge")
    (tmp_path / "taxonomy").mkdir()
    (tmp_path / "alignlab.yaml").write_text(json.dumps({
        "name": "t", "models": {"teacher": str(tiny_model_dir), "judge": str(judge_dir)},
        "pairs": {"ladder": ["teacher", f"{tiny_model_dir}?layers=1"], "max_prompts": 4,
                  "max_tokens": 4, "heldout_fraction": 0.5}}))
    cfg = load_config(tmp_path / "alignlab.yaml")
    write_stage_output(cfg, "curate", [sample(f"s{i}", f"Question {i}?", f"Answer {i}.",
                                              leaf=f"compositional_skills/leaf{i % 2}") for i in range(4)])
    first = pairs_stage(cfg, console=QUIET)
    assert pairs_stage(cfg, console=QUIET)["timings"] == first["timings"]
    retrain_in_place(judge_dir)
    again = pairs_stage(cfg, console=QUIET)
    assert again["fingerprint"] != first["fingerprint"] and again["timings"] != first["timings"]
