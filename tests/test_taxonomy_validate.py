"""Validation finds every seeded error in tests/data/taxonomy/broken at its exact place."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignlab.taxonomy import TaxonomyInvalid, check_taxonomy, load_taxonomy, validate_taxonomy
from alignlab.taxonomy.checks import approx_tokens

DATA = Path(__file__).parent / "data" / "taxonomy"
BROKEN, VALID = DATA / "broken", DATA / "valid"

# (qna.yaml under BROKEN, line, column, severity, a fragment of the message): each seeded by hand.
# Errors are what InstructLab's parser rejects; the rest are alignlab's own findings (warnings).
E, W = "error", "warning"
EXPECTED = [
    ("compositional_skills/duplicate_key", 9, 5, E, 'YAML lint: duplication of key "answer"'),
    ("compositional_skills/duplicate_question", 11, 5, W, "duplicate question (first asked at line 5)"),
    ("compositional_skills/empty", 1, 1, W, "file is empty"),
    ("compositional_skills/long_seed", 9, 5, W, "seed example 3 is 283 tokens, more than the 200"),
    ("compositional_skills/mixed_context", 4, 1, W, "seed examples 1, 2 have a context but 3, 4, 5 do not"),
    ("compositional_skills/not_utf8", 6, 17, E, "not UTF-8 text (byte 0xea)"),
    ("compositional_skills/schema_errors", 1, 1, E, "missing required key 'task_description'"),
    ("compositional_skills/schema_errors", 7, 5, E, "seed_examples[1].answer: must not be empty"),
    ("compositional_skills/schema_errors", 9, 5, E, "unknown key 'hint' in seed_examples[2]"),
    ("compositional_skills/schema_errors", 11, 5, E, "missing required key 'answer' in seed_examples[3]"),
    ("compositional_skills/schema_errors", 12, 5, E, "seed_examples[4].question: must be a string, got a list"),
    ("compositional_skills/syntax_error", 8, 25, E, "YAML syntax: mapping values are not allowed here"),
    ("compositional_skills/too_few_seeds", 4, 1, E, "seed_examples: needs at least 5 items, has 4"),
    ("knowledge/bad_documents", 10, 7, W, "latin1.md: not UTF-8 text (byte 0xe9 at line 2)"),
    ("knowledge/bad_documents", 11, 7, W, "empty.txt: the document is empty"),
    ("knowledge/bad_documents", 12, 7, W, "notes.docx: unsupported format .docx"),
    ("knowledge/bad_documents", 13, 7, W, "no document in"),
    ("knowledge/missing_repo", 6, 3, W, "document repo './no_such_folder' is neither a git URL nor an existing folder"),
    ("knowledge/old_version", 1, 1, E, "Version 2 is not supported for knowledge"),
    ("skills/wrong_folder", 1, 1, W, "'skills' is not a taxonomy folder"),
]


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def broken_problems():
    # A word counter and a budget of 200 words: only the long seed (283 words) is over it.
    return validate_taxonomy(BROKEN, max_seed_tokens=200, count_tokens=words)


def test_every_seeded_problem_is_found_at_its_line_with_its_severity(broken_problems):
    found = [(p.leaf, p.line, p.col, p.severity, p.message) for p in broken_problems]
    for leaf, line, col, severity, fragment in EXPECTED:
        assert any((lf, n, c, s) == (leaf, line, col, severity) and fragment in m for lf, n, c, s, m in found), \
            f"{leaf}/qna.yaml:{line}:{col}: {severity} {fragment!r} not reported; got:\n" + \
            "\n".join(map(str, broken_problems))


def test_nothing_is_reported_beyond_the_seeded_problems(broken_problems):
    expected = {(leaf, line, col) for leaf, line, col, _, _ in EXPECTED}
    extra = [str(p) for p in broken_problems if (p.leaf, p.line, p.col) not in expected]
    assert not extra
    assert len(broken_problems) == len(EXPECTED)


def test_problem_prints_as_path_line_col(broken_problems):
    problem = next(p for p in broken_problems if p.leaf == "compositional_skills/duplicate_key")
    assert str(problem).startswith(f"{BROKEN}/compositional_skills/duplicate_key/qna.yaml:9:5: YAML lint: ")
    assert problem.path == BROKEN / "compositional_skills/duplicate_key/qna.yaml"
    warning = next(p for p in broken_problems if p.leaf == "compositional_skills/duplicate_question")
    assert str(warning).startswith(f"{BROKEN}/compositional_skills/duplicate_question/qna.yaml:11:5: warning: ")


def test_the_valid_tree_has_no_problems():
    assert validate_taxonomy(VALID) == []


def test_the_example_workspace_taxonomy_is_valid():
    examples = Path(__file__).parents[1] / "examples" / "taxonomy"
    assert validate_taxonomy(examples) == []


def test_seed_length_uses_the_given_counter_and_budget():
    long_seed = BROKEN / "compositional_skills" / "long_seed"
    tree = long_seed.parent.parent
    over = [p for p in validate_taxonomy(tree, max_seed_tokens=200, count_tokens=words)
            if p.leaf == "compositional_skills/long_seed"]
    assert [(p.line, p.message.split(" is ")[1].split()[0]) for p in over] == [(9, "283")]
    # The default counter is about four characters a token: the 1,400-character seed is ~353.
    approx = [p for p in validate_taxonomy(tree, max_seed_tokens=300) if p.leaf == "compositional_skills/long_seed"]
    assert len(approx) == 1 and "more than the 300" in approx[0].message
    assert not [p for p in validate_taxonomy(tree, max_seed_tokens=None) if p.leaf == "compositional_skills/long_seed"]


def test_approx_tokens_is_about_four_characters_each():
    assert approx_tokens("") == 0
    assert approx_tokens("abcd") == 1
    assert approx_tokens("abcde") == 2


def test_load_taxonomy_refuses_a_broken_tree_and_lists_only_the_errors():
    with pytest.raises(TaxonomyInvalid) as info:
        load_taxonomy(BROKEN)
    expected = {(leaf, line, col) for leaf, line, col, severity, _ in EXPECTED if severity == E}
    assert {(p.leaf, p.line, p.col) for p in info.value.problems} == expected
    assert "duplicate_key/qna.yaml:9:5" in str(info.value)


def test_leaves_with_warnings_only_still_load():
    leaves, problems = check_taxonomy(BROKEN, max_seed_tokens=200, count_tokens=words)
    warned = {p.leaf for p in problems if not p.is_error} - {p.leaf for p in problems if p.is_error}
    assert {leaf.path for leaf in leaves} == warned - {"compositional_skills/empty"}


def test_documents_can_be_left_unchecked():
    problems = validate_taxonomy(BROKEN, max_seed_tokens=200, count_tokens=words, check_documents=False)
    assert not [p for p in problems if p.leaf in ("knowledge/bad_documents", "knowledge/missing_repo")]


def test_unknown_version_is_reported_at_the_version_key(tmp_path):
    leaf = tmp_path / "compositional_skills" / "haiku"
    leaf.mkdir(parents=True)
    text = (VALID / "compositional_skills/writing/haiku/qna.yaml").read_text()
    text = text.replace("version: 2\n", "") + "version: 9\n"  # the version key moves to the last line
    (leaf / "qna.yaml").write_text(text)
    [problem] = validate_taxonomy(tmp_path)
    assert (problem.line, problem.col) == (text.count("\n"), 1)
    assert "version 9 is not a schema version instructlab-schema knows (1, 2, 3)" in problem.message


def test_unknown_keys_are_each_reported_and_version_is_known(tmp_path):
    leaf = tmp_path / "compositional_skills" / "haiku"
    leaf.mkdir(parents=True)
    text = (VALID / "compositional_skills/writing/haiku/qna.yaml").read_text()
    text = text.replace("created_by: tester\n", "created_by: tester\nauthor: me\nlicense: none\n")
    (leaf / "qna.yaml").write_text(text)
    problems = validate_taxonomy(tmp_path)
    assert [(p.line, p.message.split(";")[0]) for p in problems] == [
        (3, "unknown key 'author'"), (4, "unknown key 'license'")]
    assert "allowed: version, created_by, task_description, seed_examples" in problems[0].message
