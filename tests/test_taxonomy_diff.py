"""`diff_taxonomy` finds added, modified, deleted and untracked leaves in a git repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitrepo import git

from alignlab.taxonomy import LeafChange, TaxonomyError, diff_taxonomy

VALID = Path(__file__).parent / "data" / "taxonomy" / "valid"


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository whose `taxonomy/` folder is the valid tree, committed on `main`."""
    git(tmp_path, "init", "--quiet", "--initial-branch=main")
    shutil.copytree(VALID, tmp_path / "taxonomy")
    (tmp_path / "README.md").write_text("outside the taxonomy\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "--quiet", "-m", "base")
    return tmp_path


def add_leaf(root: Path, path: str) -> None:
    folder = root / path
    folder.mkdir(parents=True)
    shutil.copy(VALID / "compositional_skills/writing/haiku/qna.yaml", folder / "qna.yaml")


def test_no_changes_since_head(repo):
    assert diff_taxonomy(repo / "taxonomy", "HEAD").changes == []


def test_added_modified_deleted_and_untracked(repo):
    taxonomy = repo / "taxonomy"
    git(repo, "checkout", "--quiet", "-b", "feature")
    add_leaf(taxonomy, "compositional_skills/writing/limerick")                  # committed on the branch
    qna = taxonomy / "compositional_skills/extraction/dates/qna.yaml"
    qna.write_text(qna.read_text().replace("Find the date", "Find the one date"))  # committed edit
    shutil.rmtree(taxonomy / "foundational_skills/reasoning/arithmetic")           # committed deletion
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "feature")
    haiku = taxonomy / "compositional_skills/writing/haiku/qna.yaml"
    haiku.write_text(haiku.read_text().replace("given subject", "subject given"))  # not committed
    (taxonomy / "knowledge/science/tides/documents/tides.md").write_text("# Tides\n\nRewritten.\n")
    add_leaf(taxonomy, "compositional_skills/writing/sonnet")                      # new, untracked
    (repo / "README.md").write_text("changed outside the taxonomy\n")

    diff = diff_taxonomy(taxonomy, "main")
    assert diff.changes == [
        LeafChange("compositional_skills/extraction/dates", "modified", uncommitted=False),
        LeafChange("compositional_skills/writing/haiku", "modified", uncommitted=True),
        LeafChange("compositional_skills/writing/limerick", "added", uncommitted=False),
        LeafChange("compositional_skills/writing/sonnet", "untracked", uncommitted=True),
        LeafChange("foundational_skills/reasoning/arithmetic", "deleted", uncommitted=False),
        LeafChange("knowledge/science/tides", "modified", uncommitted=True),  # its document changed
    ]
    assert diff.added == ["compositional_skills/writing/limerick"]
    assert diff.untracked == ["compositional_skills/writing/sonnet"]
    assert "foundational_skills/reasoning/arithmetic" not in diff.changed_leaves
    assert diff.base_commit == git(repo, "rev-parse", "main")


def test_compares_from_the_merge_base_so_upstream_changes_do_not_show(repo):
    taxonomy = repo / "taxonomy"
    git(repo, "checkout", "--quiet", "-b", "feature")
    add_leaf(taxonomy, "compositional_skills/writing/limerick")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "mine")
    git(repo, "checkout", "--quiet", "main")
    add_leaf(taxonomy, "compositional_skills/writing/ode")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "theirs")
    git(repo, "checkout", "--quiet", "feature")
    assert diff_taxonomy(taxonomy, "main").added == ["compositional_skills/writing/limerick"]


def test_staged_new_leaf_counts_as_added_and_uncommitted(repo):
    add_leaf(repo / "taxonomy", "compositional_skills/writing/ode")
    git(repo, "add", "-A")
    assert diff_taxonomy(repo / "taxonomy", "HEAD").changes == [
        LeafChange("compositional_skills/writing/ode", "added", uncommitted=True)]


def test_empty_base_lists_every_leaf_without_git(tmp_path):
    shutil.copytree(VALID, tmp_path / "taxonomy")
    diff = diff_taxonomy(tmp_path / "taxonomy", "empty")
    assert diff.added == ["compositional_skills/extraction/dates", "compositional_skills/writing/haiku",
                          "foundational_skills/reasoning/arithmetic", "knowledge/science/tides"]


def test_outside_a_repository_is_a_clear_error(tmp_path, monkeypatch):
    shutil.copytree(VALID, tmp_path / "taxonomy")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path
    with pytest.raises(TaxonomyError, match="not inside a git repository.*--base empty"):
        diff_taxonomy(tmp_path / "taxonomy", "origin/main")


def test_unknown_ref_is_a_clear_error(repo):
    with pytest.raises(TaxonomyError, match="git ref 'origin/main' not found"):
        diff_taxonomy(repo / "taxonomy", "origin/main")
