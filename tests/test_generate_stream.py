"""Generation streams its outputs: windows of whole leaves, each written as it is decided.

The files must be the ones the whole run generated at once would give (the same records, ids
and order), and a run killed at any point (SIGKILL: no cleanup at all) then run again must
write them byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_generate import ScriptedTeacher, run, workspace

import alignlab.sdg.stage as stage

OUTPUTS = ("samples.jsonl", "rejects.jsonl", "counts.json", "chunks.jsonl")


def outputs(cfg) -> dict[str, bytes]:
    folder = cfg.run_dir.path / "generate"
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def test_windows_of_leaves_write_what_the_whole_run_at_once_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(stage, "WINDOW_CANDIDATES", 10**9)  # one window: every step over every leaf
    manifest, cfg = run(workspace(tmp_path / "whole"), ScriptedTeacher())
    whole = outputs(cfg)
    monkeypatch.setattr(stage, "WINDOW_CANDIDATES", 1)  # a window per leaf
    windowed_manifest, cfg = run(workspace(tmp_path / "windows"), ScriptedTeacher())
    assert outputs(cfg) == whole
    assert windowed_manifest["counts"]["samples"] == manifest["counts"]["samples"] > 0
    assert manifest["counts"]["rejected"] > 0  # rejects are compared too, not just an empty file


def test_leaf_windows_keep_leaves_whole_and_in_order():
    from alignlab.sdg.candidates import Candidate

    candidates = [Candidate(leaf=leaf, leaf_kind="freeform_skill", generator="freeform", order=(k,))
                  for leaf, n in (("b", 3), ("a", 2), ("c", 5)) for k in range(n)]
    windows = stage.leaf_windows(candidates, 4)
    assert [[c.leaf for c in w] for w in windows] == [["a", "a"], ["b", "b", "b"], ["c"] * 5]
    assert [c.leaf for c in stage.leaf_windows(candidates, 100)[0]] == sorted(c.leaf for c in candidates)


KILLED_RUN = """
import sys, time
from test_generate import ScriptedTeacher, run
import alignlab.sdg.stage as stage

class Slow(ScriptedTeacher):
    def generate(self, requests, on_done=None):
        time.sleep(0.002 * len(requests))
        return super().generate(requests, on_done)

stage.WINDOW_CANDIDATES = 1
run(sys.argv[1], Slow())
"""


def test_a_run_killed_mid_stream_then_run_again_writes_identical_files(tmp_path, monkeypatch):
    monkeypatch.setattr(stage, "WINDOW_CANDIDATES", 1)
    _, cfg = run(workspace(tmp_path / "reference"), ScriptedTeacher())
    reference = outputs(cfg)

    config = workspace(tmp_path / "killed")
    folder = tmp_path / "killed" / "runs" / "t" / "generate"
    partial = folder / ".samples.jsonl.partial"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(config)], env=env)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size) and child.poll() is None:
        assert time.monotonic() < deadline, "the run wrote no sample in time"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (folder / "samples.jsonl").exists() and not (folder / "manifest.json").exists()

    again = ScriptedTeacher()
    _, cfg = run(config, again)
    assert outputs(cfg) == reference
    assert not list(folder.glob(".*.partial"))
