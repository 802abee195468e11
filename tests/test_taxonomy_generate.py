"""`alignlab generate` over a tree of every schema version, as community trees mix them: each
leaf yields samples and says its version; a remote document repository is cloned at generate
time, and one that cannot be reached fails its leaf alone, before the teacher is asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from community import COMMUNITY, REMOTE_COMMIT, REMOTE_REPO, accepted_copy, no_network
from gitrepo import git
from rich.console import Console

from alignlab.config import load_config
from alignlab.llm.cache import CachedBackend, RequestCache
from alignlab.llm.scripted import ScriptedBackend
from alignlab.sdg.stage import generate
from alignlab.store import read_jsonl
from alignlab.taxonomy import DocumentError

MOONS = "knowledge/science/astronomy/jupiter_moons"


def documents_repo(path: Path) -> str:
    """The documents the moons leaf names, in a git repository of their own; returns the commit."""
    (path / "jupiter").mkdir(parents=True)
    contexts = [s["context"] for s in yaml.safe_load((COMMUNITY / MOONS / "qna.yaml").read_text())["seed_examples"]]
    (path / "jupiter" / "galilean_moons.md").write_text("# The Galilean moons\n\n" + "\n".join(contexts))
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "moons")
    return git(path, "rev-parse", "HEAD")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path / "home"))
    accepted_copy(tmp_path / "taxonomy")
    settings = {"samples_per_seed": 1, "qa_per_chunk": 1, "chunk_tokens": 200, "magpie": {"enabled": False},
                "thresholds": dict.fromkeys(("faithfulness", "relevance", "standalone", "question", "quality"), 1)}
    (tmp_path / "alignlab.yaml").write_text(json.dumps({"name": "t", "taxonomy": "taxonomy", "generate": settings}))
    return tmp_path / "alignlab.yaml"


def point_moons_at(config: Path, repo: str, commit: str) -> None:
    qna = config.parent / "taxonomy" / MOONS / "qna.yaml"
    text = qna.read_text().replace(f"repo: {REMOTE_REPO}", f"repo: {repo}")
    qna.write_text(text.replace(f"commit: {REMOTE_COMMIT}", f"commit: {commit}"))


def run(config: Path, teacher: ScriptedBackend):
    cfg = load_config(config)
    cached = CachedBackend(teacher, RequestCache(cfg.cache_path))
    return generate(cfg, models=(cached, cached), console=Console(file=open("/dev/null", "w"))), cfg


def leaf_versions(root: Path) -> dict[str, int]:
    return {qna.parent.relative_to(root).as_posix(): yaml.safe_load(qna.read_text()).get("version", 1)
            for qna in root.rglob("qna.yaml")}


def test_every_leaf_of_every_version_yields_samples_that_carry_its_version(workspace, tmp_path):
    commit = documents_repo(tmp_path / "astronomy-knowledge")
    point_moons_at(workspace, (tmp_path / "astronomy-knowledge").as_uri(), commit)
    manifest, cfg = run(workspace, ScriptedBackend("scripted-teacher"))
    samples = list(read_jsonl(cfg.run_dir.path / "generate" / "samples.jsonl"))
    versions = leaf_versions(workspace.parent / "taxonomy")
    assert set(versions.values()) == {1, 2, 3}
    assert {s["metadata"]["leaf"] for s in samples} == set(versions)
    for sample in samples:
        assert sample["metadata"]["leaf_version"] == versions[sample["metadata"]["leaf"]]
    generated = {s["metadata"]["leaf"] for s in samples if s["metadata"]["generator"] in ("freeform", "grounded")}
    assert {leaf for leaf, v in versions.items() if v == 1} <= generated  # v1 skills are generated from, too
    # The file:// URL is a remote repository: cloned once under $ALIGNLAB_HOME/repos.
    assert len([p for p in (tmp_path / "home" / "repos").iterdir() if p.is_dir()]) == 1
    assert manifest["counts"]["samples"] == len(samples)


def test_an_unreachable_repo_fails_its_leaf_before_the_teacher_and_keeps_the_others(workspace, tmp_path,
                                                                                   monkeypatch):
    no_network(monkeypatch)
    teacher = ScriptedBackend("scripted-teacher")
    with pytest.raises(DocumentError) as info:
        run(workspace, teacher)
    message = str(info.value)
    assert f"{MOONS}/qna.yaml:" in message
    assert f"cannot clone {REMOTE_REPO} (for commit {REMOTE_COMMIT})" in message
    assert "point document.repo at the local clone" in message
    assert teacher.seen and not any("Ganymede" in request for request in teacher.seen)
    out = workspace.parent / "runs" / "t" / "generate"
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert {s["metadata"]["leaf"] for s in samples} == set(leaf_versions(workspace.parent / "taxonomy")) - {MOONS}
    assert not (out / "manifest.json").exists()  # so the stage runs again once the repo is reachable

    commit = documents_repo(tmp_path / "astronomy-knowledge")
    point_moons_at(workspace, (tmp_path / "astronomy-knowledge").as_uri(), commit)
    asked_before = list(teacher.seen)
    manifest, _ = run(workspace, teacher)
    again = teacher.seen[len(asked_before):]
    assert again and not set(again) & set(asked_before)  # the other leaves' replies come from the cache
    assert MOONS in manifest["counts"]["by_leaf"]
