"""`alignlab run`: fingerprints, config errors before any stage, one stage table behind `alignlab
run` and `alignlab <stage>`, and crash safety under SIGKILL.

The teacher and judge are the scripted stand-in served over HTTP (well-formed replies in
milliseconds); the student is a tiny random model. A workspace copies examples/taxonomy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from alignlab.artefacts import SAMPLES
from alignlab.cli import app
from alignlab.config import load_config
from alignlab.errors import AlignlabError, ConfigError
from alignlab.llm.scripted import scripted_app
from alignlab.llm.serve import running_server
from alignlab.pipeline import NAMES, STAGES, run_pipeline

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(file=open(os.devnull, "w"))


@pytest.fixture(scope="module")
def teacher_url():
    with running_server(scripted_app()) as url:
        yield f"openai:{url}/v1#scripted"


def tiny_config(teacher: str, student: Path) -> dict:
    return {
        "name": "t", "models": {"teacher": teacher, "student": str(student)},
        "generate": {"samples_per_seed": 1, "qa_per_chunk": 1, "magpie": {"enabled": False},
                     "thresholds": dict.fromkeys(("faithfulness", "relevance", "standalone", "question",
                                                  "quality"), 2.5)},
        "curate": {"steps": [{"dedup": {}}, {"decontaminate": {}}]},
        "train": {"batch_tokens": 1024, "save_every": 2,
                  "phases": [{"name": "knowledge", "epochs": 2, "select_by": "loss"},
                             {"name": "skills", "epochs": 1, "select_by": "loss"}]},
        "eval": {"teacher_mcq_per_leaf": 0, "judged": {"max_prompts_per_leaf": 2, "max_tokens": 8}},
        "pairs": {"ladder": ["sft", "student"], "max_prompts": 6, "max_tokens": 8},
        "align": {"epochs": 1, "max_length": 256, "batch_pairs": 2},
    }


def workspace(root: Path, teacher: str, student: Path, **changes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "taxonomy").exists():
        shutil.copytree(ROOT / "examples" / "taxonomy", root / "taxonomy")
    config = tiny_config(teacher, student)
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values}
    (root / "alignlab.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / "alignlab.yaml"


def ran(results: dict, started: float) -> set[str]:
    """The stages that did work (not skipped) in a pipeline run started at `started`."""
    return {name for name, m in results.items()
            if m.get("timings", {}).get("finished", started + 1) >= started}


def test_fingerprints_rerun_a_changed_stage_and_downstream_only(tmp_path, teacher_url, tiny_model_dir):
    config = workspace(tmp_path, teacher_url, tiny_model_dir)
    first = run_pipeline(load_config(config), until="mix", console=QUIET)
    assert set(first) == {"validate", "generate", "curate", "mix"}
    declared = [w for s in STAGES if s.name in first for w in s.writes if "<" not in w]
    assert declared and all((tmp_path / "runs" / "t" / w).exists() for w in declared)

    started = time.time()
    output = Console(record=True, width=120, file=open(os.devnull, "w"))
    again = run_pipeline(load_config(config), until="mix", console=output)
    assert ran(again, started) == {"validate"}  # validation is always re-checked; nothing else ran
    timings = output.export_text().split("wall time per stage")[1]
    for stage in ("validate", "generate", "curate", "mix"):
        line = next(row for row in timings.splitlines() if row.strip("│┃ ").startswith(stage))
        assert ("skipped: unchanged" in line) == (stage != "validate"), line

    workspace(tmp_path, teacher_url, tiny_model_dir, curate={"steps": [{"dedup": {"jaccard": 0.9}}]})
    started = time.time()
    assert ran(run_pipeline(load_config(config), until="mix", console=QUIET), started) == \
        {"validate", "curate", "mix"}

    workspace(tmp_path, teacher_url, tiny_model_dir, curate={"steps": [{"dedup": {"jaccard": 0.9}}]},
              mix={"seed": 7})
    started = time.time()
    assert ran(run_pipeline(load_config(config), until="mix", console=QUIET), started) == {"validate", "mix"}

    started = time.time()
    forced = run_pipeline(load_config(config), until="mix", force=("curate",), console=QUIET)
    assert ran(forced, started) == {"validate", "curate", "mix"}


def test_config_typo_fails_with_its_line_before_any_stage(tmp_path, teacher_url, tiny_model_dir):
    config = workspace(tmp_path, teacher_url, tiny_model_dir)
    lines = config.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("generate:"))
    lines[at + 1] = lines[at + 1].replace("samples_per_seed", "samples_per_sead")
    config.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"alignlab.yaml:{at + 2}:\d+: .*unknown key 'samples_per_sead'"):
        load_config(config)
    assert not (tmp_path / "runs").exists()


def test_missing_paths_are_reported_before_any_stage(tmp_path, teacher_url, tiny_model_dir):
    config = workspace(tmp_path, teacher_url, tiny_model_dir, eval={"mcq_files": ["nowhere.jsonl"]})
    shutil.rmtree(tmp_path / "taxonomy")
    with pytest.raises(ConfigError) as e:
        run_pipeline(load_config(config), console=QUIET)
    assert "taxonomy folder" in str(e.value) and "nowhere.jsonl does not exist" in str(e.value)
    assert "alignlab.yaml:" in str(e.value) and not (tmp_path / "runs").exists()



def test_each_stage_command_checks_what_its_stage_needs_and_no_more(tmp_path, teacher_url, tiny_model_dir):
    """`alignlab <stage>` runs the preflight `alignlab run` does, through `run_stage`: the checks
    of that stage, before it starts; another stage's problem does not stop it."""
    config = str(workspace(tmp_path, teacher_url, tiny_model_dir, eval={"mcq_files": ["nowhere.jsonl"]},
                           pairs={"ladder": ["sft", "student:nope"]}))
    missing_mcq, bad_rung = "nowhere.jsonl does not exist", "ladder rung 'student:nope' names no train phase"
    runner = CliRunner()
    for command, problem, other in (("eval", missing_mcq, bad_rung), ("eval-aligned", missing_mcq, bad_rung),
                                    ("pairs", bad_rung, missing_mcq)):
        result = runner.invoke(app, [command, "-c", config])
        assert result.exit_code == 1 and isinstance(result.exception, ConfigError), result.output
        assert problem in str(result.exception) and other not in str(result.exception)
        assert "alignlab.yaml:" in str(result.exception) and f" {command} — " not in result.output
    assert not (tmp_path / "runs").exists()
    assert runner.invoke(app, ["validate", "-c", config]).exit_code == 0
    assert run_pipeline(load_config(config), until="validate", console=QUIET)  # only the stages it visits
    shutil.rmtree(tmp_path / "taxonomy")
    for command in (["generate"], ["generate", "--dry-run"]):
        result = runner.invoke(app, [*command, "-c", config])
        assert isinstance(result.exception, ConfigError) and "taxonomy folder" in str(result.exception)


# ------------------------------------------------------------------ one stage table

def test_every_file_a_stage_reads_is_written_by_an_earlier_stage():
    written: set[str] = set()
    for stage in STAGES:
        assert set(stage.reads) <= written, f"{stage.name} reads {set(stage.reads) - written}"
        written |= set(stage.writes)


def test_every_stage_is_a_command():
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert set(NAMES) <= commands, set(NAMES) - commands


def from_stage_rule(output: str, stage: str) -> str:
    """The output from the rule that opens `stage` on."""
    at = next(i for i, line in enumerate(output.splitlines()) if f" {stage} — " in line)
    return "\n".join(output.splitlines()[at:])


def test_empty_curate_ends_alignlab_curate_and_alignlab_run_alike(tmp_path, teacher_url, tiny_model_dir):
    """Curation removes every sample (decontaminated against generate's own output): the stage
    alone and the pipeline print the same funnel, then fail with the same error naming the step
    and its reason, exit 1 — forced, and again when the stage is skipped as unchanged."""
    eval_set = f"runs/t/generate/{SAMPLES}"
    config = str(workspace(tmp_path, teacher_url, tiny_model_dir, curate={"steps": [
        {"decontaminate": {"ngram": 3, "taxonomy_heldout": False, "eval_sets": [eval_set]}}]}))
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "-c", config]).exit_code == 0

    for force in (["--force"], []):
        alone = runner.invoke(app, ["curate", "-c", config, *force])
        in_run = runner.invoke(app, ["run", "-c", config, "--until", "curate", *(force and ["--force", "curate"])])
        for result in (alone, in_run):
            assert result.exit_code == 1 and isinstance(result.exception, AlignlabError), result.output
            assert "no samples left" in str(result.exception) and "decontaminate removed" in str(result.exception)
        assert str(alone.exception) == str(in_run.exception)
        assert from_stage_rule(alone.output, "curate") == from_stage_rule(in_run.output, "curate")
        assert ("curate: unchanged since the last run" in alone.output) == (not force)


# ------------------------------------------------------------------ crash safety

def outputs(run_dir: Path) -> dict[str, str]:
    """Every data file a finished run holds, by content hash (checkpoint state and logs aside)."""
    skip = {"manifest.json", "config.json", "scores.json", "metrics.jsonl", "phase.json", "trainer_state.json",
            "requests.sqlite", "requests.sqlite-wal", "requests.sqlite-shm", "report.html", "report.png"}
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if (path.is_file() and path.name not in skip and "checkpoint-" not in str(rel)
                and "tensorboard" not in rel.parts and "training_state" not in rel.parts):
            data = path.read_bytes()
            if path.name == "counts.json":  # step timings differ from run to run; the counts must not
                data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
            out[str(rel)] = hashlib.sha256(data).hexdigest()
    return out


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def run_cli(config: Path, kill_after: float | None = None) -> int:
    """`alignlab run` in a subprocess; SIGKILL after `kill_after` seconds when given."""
    process = subprocess.Popen([sys.executable, "-m", "alignlab.cli", "run", "-c", str(config), "--until", "align"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err.decode()[-3000:]
        return 0
    try:
        process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return process.returncode


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_gives_the_same_outputs(tmp_path, teacher_url, tiny_model_dir):
    # Both runs happen in the same workspace (model ids of checkpoints contain their path).
    config = workspace(tmp_path, teacher_url, tiny_model_dir)
    run_dir = tmp_path / "runs" / "t"
    started = time.perf_counter()
    run_cli(config)
    duration = time.perf_counter() - started
    expected = outputs(run_dir)
    assert any(k.startswith("align/selected/") for k in expected) and "mix/skills.jsonl" in expected
    shutil.rmtree(tmp_path / "runs")

    codes = [run_cli(config, kill_after=duration * share) for share in (0.3, 0.7)]
    assert -signal.SIGKILL in codes  # at least one run really was killed mid-way
    run_cli(config)
    assert outputs(run_dir) == expected
