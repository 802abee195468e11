"""A knowledge leaf's documents: where `document.repo` points, and the text of each file.

`document.repo` is resolved by one rule:
  (a) a git URL (https://, http://, ssh://, git://, file://, git@host:...) is cloned once into
      `$ALIGNLAB_HOME/repos/<hash>` and read at `commit` (fetched again if the commit is new);
  (b) a local path (absolute, or relative to the leaf's folder) whose top holds `.git` is a
      git repository, read at `commit` (committed files only, not the working tree);
  (c) a local path to a plain folder is read from disk as it is (`commit` is recorded only).
`patterns` are globs relative to that root (`*` stays within a folder, `**` crosses folders).
Markdown and text files must be UTF-8; PDFs are read with pypdf's text extraction.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from filelock import FileLock

from alignlab.logcapture import captured_logs
from alignlab.taxonomy.errors import DocumentError
from alignlab.taxonomy.git import last_line, nul_list, run_git
from alignlab.taxonomy.leaf import Leaf, Problem

SUPPORTED_SUFFIXES = (".md", ".txt", ".pdf")
_GIT_URL = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")
log = logging.getLogger(__name__)
# Documents already reported as odd: `alignlab run` reads them in validate and again in generate.
_reported_pdfs: set[str] = set()


@dataclass(frozen=True)
class Document:
    path: str  # relative to the document root, e.g. "chapters/history.md"
    text: str
    source: str  # where it was read: a file on disk, or "<repo>@<commit>:<path>"


class _Issue(DocumentError):
    """A document problem tied to a key of qna.yaml, e.g. ("document", "patterns", 0)."""

    def __init__(self, keys: tuple, message: str):
        super().__init__(message)
        self.keys, self.message = keys, message


def is_git_url(repo: str) -> bool:
    return bool(_GIT_URL.match(repo))


def read_documents(leaf: Leaf) -> list[Document]:
    """Every document of a knowledge leaf; raises `DocumentError` listing each problem."""
    documents, problems = resolve_documents(leaf)
    if problems:
        raise DocumentError(f"cannot read the documents of {leaf.path}:\n" + "\n".join(map(str, problems)))
    return documents


def resolve_documents(leaf: Leaf) -> tuple[list[Document], list[Problem]]:
    """The documents that could be read, and a problem (at its qna.yaml key) for each that could not."""
    if leaf.document is None:
        return [], []
    try:
        root = open_root(leaf)
    except _Issue as issue:
        return [], [_problem(leaf, issue)]
    files = root.files()
    documents, problems, seen = [], [], set()
    for i, pattern in enumerate(leaf.document.patterns):
        matched = [f for f in files if glob_match(f, pattern)]
        if not matched:
            problems.append(_problem(leaf, _Issue(("document", "patterns", i),
                                                  f"no document in {root.label} matches {pattern!r}")))
        for rel in matched:
            if rel in seen:
                continue
            seen.add(rel)
            try:
                documents.append(Document(rel, to_text(rel, root.read(rel), root.source(rel)), root.source(rel)))
            except ValueError as e:
                problems.append(_problem(leaf, _Issue(("document", "patterns", i), f"{root.source(rel)}: {e}")))
    return documents, problems


def _problem(leaf: Leaf, issue: _Issue) -> Problem:
    line, col = leaf.yaml.loc(issue.keys) if leaf.yaml is not None else (1, 1)
    return Problem(leaf.qna_path, line, col, issue.message, leaf.path)


# ------------------------------------------------------------------ roots


class FolderRoot:
    """Rule (c): a plain folder, read as it is on disk."""

    def __init__(self, folder: Path):
        self.folder, self.label = folder, str(folder)

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")
                      if p.is_file() and not any(s.startswith(".") for s in p.relative_to(self.folder).parts))

    def read(self, rel: str) -> bytes:
        try:
            return (self.folder / rel).read_bytes()
        except OSError as e:
            raise ValueError(f"cannot read: {e.strerror or e}") from None

    def source(self, rel: str) -> str:
        return str(self.folder / rel)


class GitRoot:
    """Rules (a) and (b): the files of one commit of a git repository (bare or not)."""

    def __init__(self, repo_dir: Path, commit: str, label: str):
        self.repo_dir, self.commit, self.label = repo_dir, commit, f"{label}@{commit[:12]}"

    def files(self) -> list[str]:
        out = run_git(self.repo_dir, "ls-tree", "-r", "-z", "--name-only", self.commit)
        return sorted(f for f in nul_list(out.stdout) if not any(s.startswith(".") for s in f.split("/")))

    def read(self, rel: str) -> bytes:
        out = run_git(self.repo_dir, "cat-file", "blob", f"{self.commit}:{rel}")
        if out.returncode:
            raise ValueError(f"cannot read from git: {last_line(out.stderr)}")
        return out.stdout

    def source(self, rel: str) -> str:
        return f"{self.label}:{rel}"


def open_root(leaf: Leaf) -> FolderRoot | GitRoot:
    """Apply the resolution rule to `leaf.document.repo`; raises `_Issue` at the key at fault."""
    settings = leaf.document
    if is_git_url(settings.repo):
        repo_dir = clone_repo(settings.repo, settings.commit)
        return GitRoot(repo_dir, _commit_in(repo_dir, settings.commit, settings.repo), settings.repo)
    folder = Path(os.path.normpath(leaf.folder / Path(settings.repo).expanduser()))
    if not folder.exists():
        raise _Issue(("document", "repo"), f"document repo {settings.repo!r} is neither a git URL nor "
                                           f"an existing folder (looked at {folder})")
    if not folder.is_dir():
        raise _Issue(("document", "repo"), f"document repo {folder} is a file; give its folder")
    if (folder / ".git").exists():
        return GitRoot(folder, _commit_in(folder, settings.commit, str(folder)), str(folder))
    return FolderRoot(folder)


def _commit_in(repo_dir: Path, commit: str, label: str) -> str:
    out = run_git(repo_dir, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if out.returncode:
        raise _Issue(("document", "commit"), f"commit {commit!r} not found in {label}")
    return out.stdout.decode().strip()


def clone_repo(url: str, commit: str | None = None) -> Path:
    """A mirror clone of `url` under `$ALIGNLAB_HOME/repos/`, made once and fetched again only
    when `commit` is not in it yet. A lock keeps two processes from cloning at once."""
    from alignlab.llm.embedded import alignlab_home

    target = alignlab_home() / "repos" / hashlib.sha256(url.encode()).hexdigest()[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock"):
        if not (target / "HEAD").is_file():
            # Clone beside the target and rename: a half-finished clone is never used.
            scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}.tmp-"))
            try:
                out = run_git(None, "clone", "--quiet", "--mirror", url, str(scratch / "repo"))
                if out.returncode:
                    raise _Issue(("document", "repo"), (
                        f"cannot clone {url} (for commit {commit or 'HEAD'}): {last_line(out.stderr)}. "
                        f"Check the URL and the network, or clone it yourself and point document.repo "
                        f"at the local clone (a path, relative to the leaf's folder)"))
                os.replace(scratch / "repo", target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        elif commit and run_git(target, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").returncode:
            out = run_git(target, "fetch", "--quiet", "origin")
            if out.returncode:
                raise _Issue(("document", "commit"), (
                    f"commit {commit!r} is not in the cached clone of {url} and fetching failed: "
                    f"{last_line(out.stderr)}"))
    return target


# ------------------------------------------------------------------ files


def glob_match(path: str, pattern: str) -> bool:
    """`*`, `?` and `[...]` match within one folder; a `**` segment matches any folders."""
    return _match(path.split("/"), [p for p in pattern.strip("/").split("/") if p not in ("", ".")])


def _match(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(parts[1:], pattern[1:])


def to_text(rel: str, data: bytes, source: str | None = None) -> str:
    """A document's text; raises ValueError saying why it cannot be used. `source` names the
    document in the one line said about a PDF pypdf had to repair."""
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix == ".pdf":
        text = _pdf_text(data, source or rel)
        if not text.strip():
            raise ValueError("the PDF has no extractable text (a scanned image?)")
        return text
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"unsupported format {suffix or '(no suffix)'}; use {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}); "
                         f"save the file as UTF-8") from None
    if not text.strip():
        raise ValueError("the document is empty")
    return text


def _pdf_text(data: bytes, source: str) -> str:
    from pypdf import PdfReader

    # pypdf logs each repair of an odd PDF (a wrong xref offset, a broken stream) on its own
    # loggers, several raw lines per file that do not say which file; they become one line here.
    with captured_logs("pypdf", logging.WARNING) as records:
        try:
            reader = PdfReader(io.BytesIO(data))
            text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
        except Exception as e:  # a damaged PDF fails in many ways inside pypdf; all mean "unreadable"
            raise ValueError(f"cannot read the PDF: {type(e).__name__}: {e}") from None
    if records and source not in _reported_pdfs:
        _reported_pdfs.add(source)
        log.warning("%s: pypdf gave %d warning%s reading this PDF (first: %s); its text was extracted, "
                    "but check that it reads right, or save the PDF again", source, len(records),
                    "s" if len(records) != 1 else "", records[0].getMessage().strip())
    return text
