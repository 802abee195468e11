"""Documents resolve for all three forms of `document.repo`: a git URL (cloned once), a local
git repository (read at the commit), and a plain folder (read as it is)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from gitrepo import git

from alignlab.taxonomy import DocumentError, Leaf, load_taxonomy, read_documents, resolve_documents
from alignlab.taxonomy.documents import glob_match, is_git_url

TIDES = Path(__file__).parent / "data" / "taxonomy" / "valid" / "knowledge" / "science" / "tides"


def make_repo(path: Path, files: dict[str, str]) -> str:
    """A git repository holding `files` in one commit; returns the commit's sha."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "documents")
    return git(path, "rev-parse", "HEAD")


def knowledge_leaf(root: Path, repo: str, commit: str, patterns: tuple[str, ...] = ("*.md",)) -> Leaf:
    """The valid tides leaf, copied under `root` with its `document:` pointed elsewhere."""
    folder = root / "knowledge" / "tides"
    folder.mkdir(parents=True)
    text = (TIDES / "qna.yaml").read_text()
    pattern_lines = "".join(f'    - "{p}"\n' for p in patterns)
    text = text.replace("  repo: ./documents\n  commit: main\n  patterns:\n    - \"*.md\"\n",
                        f"  repo: {repo}\n  commit: {commit}\n  patterns:\n{pattern_lines}")
    (folder / "qna.yaml").write_text(text)
    [leaf] = load_taxonomy(root)
    return leaf


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_plain_folder_is_read_as_it_is():
    [leaf] = [leaf for leaf in load_taxonomy(TIDES.parents[2]) if leaf.path == "knowledge/science/tides"]
    [doc] = read_documents(leaf)
    assert doc.path == "tides.md"
    assert doc.text == (TIDES / "documents" / "tides.md").read_text()
    assert doc.source == str(TIDES / "documents" / "tides.md")


def test_local_git_repository_is_read_at_the_commit_not_the_working_tree(tmp_path):
    repo = tmp_path / "docs_repo"
    first = make_repo(repo, {"a.md": "first version", "sub/b.txt": "nested", "notes.txt": "skip"})
    (repo / "a.md").write_text("second version")
    git(repo, "commit", "--quiet", "-am", "edit")
    (repo / "a.md").write_text("uncommitted edit")
    # A path relative to the leaf's folder (root/knowledge/tides).
    leaf = knowledge_leaf(tmp_path / "tax", "../../../docs_repo", first, ("*.md", "**/b.txt"))
    docs = read_documents(leaf)
    assert [(d.path, d.text) for d in docs] == [("a.md", "first version"), ("sub/b.txt", "nested")]
    assert docs[0].source == f"{repo}@{first[:12]}:a.md"
    head = git(repo, "rev-parse", "HEAD")
    leaf = knowledge_leaf(tmp_path / "tax2", str(repo), head)  # an absolute path
    assert read_documents(leaf)[0].text == "second version"


def test_unknown_commit_in_a_local_repository_is_reported_at_the_commit_key(tmp_path):
    make_repo(tmp_path / "docs_repo", {"a.md": "text"})
    leaf = knowledge_leaf(tmp_path / "tax", str(tmp_path / "docs_repo"), "0123456789abcdef")
    docs, [problem] = resolve_documents(leaf)
    assert docs == []
    assert (problem.line, problem.col) == (7, 3)
    assert "commit '0123456789abcdef' not found" in problem.message


def test_git_url_is_cloned_once_and_fetched_for_a_new_commit(tmp_path, home):
    upstream = tmp_path / "upstream"
    first = make_repo(upstream, {"doc.md": "from the remote"})
    url = upstream.as_uri()  # file:///...
    leaf = knowledge_leaf(tmp_path / "tax", url, first)
    [doc] = read_documents(leaf)
    assert doc.text == "from the remote"
    assert doc.source == f"{url}@{first[:12]}:doc.md"
    [clone] = [p for p in (home / "repos").iterdir() if p.is_dir()]

    (upstream / "doc.md").write_text("a later commit")
    git(upstream, "commit", "--quiet", "-am", "later")
    second = git(upstream, "rev-parse", "HEAD")
    later = knowledge_leaf(tmp_path / "tax2", url, second)
    assert read_documents(later)[0].text == "a later commit"

    shutil.rmtree(upstream)  # the clone is reused: no network needed for known commits
    assert read_documents(leaf)[0].text == "from the remote"
    assert [p for p in (home / "repos").iterdir() if p.is_dir()] == [clone]


def test_clone_failure_names_the_url(tmp_path):
    url = (tmp_path / "offline" / "repo.git").as_uri()
    leaf = knowledge_leaf(tmp_path / "tax", url, "main")
    _, [problem] = resolve_documents(leaf)
    assert (problem.line, problem.col) == (6, 3)  # the `repo:` key
    assert f"cannot clone {url}" in problem.message
    with pytest.raises(DocumentError, match="cannot clone file://"):
        read_documents(leaf)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with a correct cross-reference table."""
    content = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def test_pdf_text_is_extracted_and_a_broken_pdf_is_a_problem(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.pdf").write_bytes(minimal_pdf("Spring tides come at full moon."))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    leaf = knowledge_leaf(tmp_path / "tax", str(docs), "recorded-only", ("tides.pdf", "broken.pdf"))
    found, problems = resolve_documents(leaf)
    assert [(d.path, d.text) for d in found] == [("tides.pdf", "Spring tides come at full moon.")]
    assert [p.line for p in problems] == [10]  # the second pattern
    assert "broken.pdf" in problems[0].message


def test_an_odd_pdf_is_one_line_naming_it_not_pypdfs_raw_log(tmp_path, caplog):
    docs = tmp_path / "docs"
    docs.mkdir()
    head, _, tail = minimal_pdf("Neap tides come at half moon.").rpartition(b"startxref\n")
    pointer = int(tail.split(b"\n")[0])
    (docs / "odd.pdf").write_bytes(head + b"startxref\n%d\n%%%%EOF\n" % (pointer + 3))  # pypdf repairs it
    leaf = knowledge_leaf(tmp_path / "tax", str(docs), "recorded-only", ("odd.pdf",))
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):  # as `alignlab run` reads it, in validate and again in generate
            found, problems = resolve_documents(leaf)
            assert [d.text for d in found] == ["Neap tides come at half moon."] and problems == []
    [record] = caplog.records  # nothing of pypdf's own, and the document said once
    assert record.name == "alignlab.taxonomy.documents" and record.levelno == logging.WARNING
    assert re.match(rf"{re.escape(str(docs / 'odd.pdf'))}: pypdf gave \d+ warnings? reading this PDF "
                    r"\(first: incorrect startxref pointer", record.getMessage())


@pytest.mark.parametrize("path, pattern, matches", [
    ("a.md", "*.md", True),
    ("sub/a.md", "*.md", False),  # `*` stays within one folder, as glob does
    ("sub/a.md", "sub/*.md", True),
    ("sub/deep/a.md", "**/*.md", True),
    ("a.md", "**/*.md", True),
    ("a.txt", "*.md", False),
    ("docs/a.md", "./docs/a.md", True),
])
def test_glob_patterns(path, pattern, matches):
    assert glob_match(path, pattern) is matches


@pytest.mark.parametrize("repo, is_url", [
    ("https://github.com/org/docs.git", True), ("ssh://git@host/docs.git", True),
    ("git@github.com:org/docs.git", True), ("file:///srv/docs", True),
    ("./documents", False), ("/srv/docs", False), ("../shared/docs", False),
])
def test_git_urls_are_told_from_paths(repo, is_url):
    assert is_git_url(repo) is is_url
