"""Loading InstructLab trees into Leaf records: kinds, seeds with their lines, extra files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alignlab.taxonomy import (
    FREEFORM_SKILL, GROUNDED_SKILL, KNOWLEDGE, DocumentSettings, TaxonomyError, load_taxonomy, scan_taxonomy,
)

VALID = Path(__file__).parent / "data" / "taxonomy" / "valid"


@pytest.fixture(scope="module")
def leaves():
    return {leaf.path: leaf for leaf in load_taxonomy(VALID)}


def test_every_leaf_is_found_with_its_kind(leaves):
    assert {path: leaf.kind for path, leaf in leaves.items()} == {
        "compositional_skills/extraction/dates": GROUNDED_SKILL,
        "compositional_skills/writing/haiku": FREEFORM_SKILL,
        "foundational_skills/reasoning/arithmetic": FREEFORM_SKILL,
        "knowledge/science/tides": KNOWLEDGE,
    }
    assert leaves["foundational_skills/reasoning/arithmetic"].tree == "foundational_skills"


def test_skill_seeds_keep_their_text_and_lines(leaves):
    haiku = leaves["compositional_skills/writing/haiku"]
    assert haiku.version == 2 and haiku.created_by == "tester"
    assert haiku.task_description == "Write a haiku about the given subject."
    assert [s.line for s in haiku.seed_examples] == [5, 10, 15, 20, 25]
    assert haiku.seed_examples[1].question == "Write a haiku about a cat."
    assert haiku.seed_examples[1].answer.startswith("The cat in the sun\n")
    assert haiku.seed_examples[1].context is None
    dates = leaves["compositional_skills/extraction/dates"]
    assert dates.seed_examples[2].context == "The bridge was opened in 1932 and rebuilt in 1987."
    assert dates.seed_examples[2].questions_and_answers[0].line == 12
    assert dates.qna_path == VALID / "compositional_skills/extraction/dates/qna.yaml"


def test_knowledge_leaf_has_document_settings_outline_and_qa_lines(leaves):
    tides = leaves["knowledge/science/tides"]
    assert tides.domain == "Oceanography"
    assert tides.task_description == ""
    assert tides.document == DocumentSettings(repo="./documents", commit="main", patterns=("*.md",))
    assert tides.document_outline.startswith("What causes tides")
    assert len(tides.seed_examples) == 5
    assert [qa.line for qa in tides.seed_examples[0].questions_and_answers] == [13, 15, 17]
    assert tides.seed_examples[0].question == "What are tides?"
    assert tides.where(("seed_examples", 1, "context")).endswith("tides/qna.yaml:19:5")


def test_extra_files_and_heldout_mcq_are_exposed_but_not_leaves(leaves):
    tides = leaves["knowledge/science/tides"]
    assert tides.heldout_mcq == VALID / "knowledge/science/tides/heldout_mcq.jsonl"
    assert tides.extra_files == (tides.heldout_mcq,)
    assert leaves["compositional_skills/writing/haiku"].heldout_mcq is None


def test_hidden_folders_are_skipped(tmp_path):
    shutil.copytree(VALID / "compositional_skills", tmp_path / "compositional_skills")
    hidden = tmp_path / "compositional_skills" / ".trash" / "old"
    hidden.mkdir(parents=True)
    (hidden / "qna.yaml").write_text("not: [valid")
    assert len(load_taxonomy(tmp_path)) == 2


def test_missing_or_empty_tree_is_a_clear_error(tmp_path):
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope")
    with pytest.raises(TaxonomyError, match="no qna.yaml files"):
        load_taxonomy(tmp_path)


def test_a_leaf_file_named_qna_yml_is_not_read_but_said(tmp_path):
    shutil.copytree(VALID / "compositional_skills", tmp_path / "compositional_skills")
    haiku = tmp_path / "compositional_skills" / "writing" / "haiku"
    (haiku / "qna.yaml").rename(haiku / "qna.yml")
    leaves, problems = scan_taxonomy(tmp_path)
    assert "compositional_skills/writing/haiku" not in {leaf.path for leaf in leaves}  # as InstructLab
    [problem] = problems
    assert str(problem) == (f"{haiku / 'qna.yml'}:1:1: warning: qna.yml is not read (InstructLab reads "
                            f"only qna.yaml): rename it to qna.yaml")
    assert problem.leaf == "compositional_skills/writing/haiku"
    for qna in tmp_path.rglob("qna.yaml"):
        qna.rename(qna.with_name("qna.yml"))
    with pytest.raises(TaxonomyError, match=r"no qna.yaml files .*\(2 qna.yml found: rename them to qna.yaml\)"):
        load_taxonomy(tmp_path)


def test_a_leaf_prefix_selects_whole_folder_names():
    from alignlab.taxonomy.load import matches_leaf

    assert matches_leaf("knowledge/geo/kel", "knowledge") and matches_leaf("knowledge/geo/kel", "knowledge/")
    assert matches_leaf("knowledge/geo/kel", "knowledge/geo/kel") and matches_leaf("knowledge/geo/kel", "knowledge/*")
    assert not matches_leaf("knowledgebase/geo", "knowledge")  # another folder that starts alike
    assert not matches_leaf("knowledge/geography/x", "know") and not matches_leaf("knowledge/geo/kel", "knowledge/ge")
    assert matches_leaf("knowledge/geo/kel", "know*") and matches_leaf("knowledge/geo/kel", "*/geo/*")
