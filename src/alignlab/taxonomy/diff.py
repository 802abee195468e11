"""Which leaves changed since a git ref: added, modified, deleted, and not yet committed.

    d = diff_taxonomy("taxonomy", base="origin/main")   # or "HEAD", a sha, or "empty"
    d.added, d.modified, d.untracked, d.deleted        # leaf paths relative to the root

The comparison starts at the merge base of `base` and HEAD (what this branch changed, as
InstructLab does) and runs against the working tree, so uncommitted edits count; files no git
command knows yet (new qna.yaml files) are listed as untracked. A change to any file inside a
leaf's folder (a document, a held-out set) marks the leaf modified. `base="empty"` lists every
leaf as added and needs no git.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from alignlab.taxonomy.errors import TaxonomyError
from alignlab.taxonomy.git import last_line, nul_list, run_git
from alignlab.taxonomy.load import QNA, find_qna_files

ADDED, MODIFIED, DELETED, UNTRACKED = "added", "modified", "deleted", "untracked"
_PRIORITY = {UNTRACKED: 3, ADDED: 2, DELETED: 1, MODIFIED: 0}


@dataclass(frozen=True)
class LeafChange:
    path: str  # leaf folder relative to the taxonomy root
    status: str  # added | modified | deleted | untracked
    uncommitted: bool  # part of the change is only in the working tree or the index


@dataclass
class TaxonomyDiff:
    base: str
    base_commit: str | None  # the merge base compared against; None for "empty"
    changes: list[LeafChange] = field(default_factory=list)

    def _with(self, status: str) -> list[str]:
        return [c.path for c in self.changes if c.status == status]

    @property
    def added(self) -> list[str]:
        return self._with(ADDED)

    @property
    def modified(self) -> list[str]:
        return self._with(MODIFIED)

    @property
    def untracked(self) -> list[str]:
        return self._with(UNTRACKED)

    @property
    def deleted(self) -> list[str]:
        return self._with(DELETED)

    @property
    def changed_leaves(self) -> list[str]:
        """Leaves that exist and need (re)generating: added, modified or untracked."""
        return [c.path for c in self.changes if c.status != DELETED]


def diff_taxonomy(root: str | Path, base: str = "origin/main") -> TaxonomyDiff:
    root = Path(root)
    files = find_qna_files(root)
    if base == "empty":
        return TaxonomyDiff(base, None, [LeafChange(_leaf_of(f.relative_to(root).as_posix()), ADDED, False)
                                         for f in files])
    top = run_git(root, "rev-parse", "--show-toplevel")
    if top.returncode:
        raise TaxonomyError(f"{root} is not inside a git repository, so there is no ref to compare "
                            f"against; use --base empty to list every leaf")
    resolved = run_git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    if resolved.returncode:
        raise TaxonomyError(f"git ref {base!r} not found in {top.stdout.decode().strip()}; give another "
                            f"with --base (e.g. HEAD, main, a commit) or --base empty")
    base_commit = resolved.stdout.decode().strip()
    merge_base = run_git(root, "merge-base", base_commit, "HEAD")
    if merge_base.returncode == 0:
        base_commit = merge_base.stdout.decode().strip()

    # --relative: paths relative to the root, and only changes under it.
    changed = run_git(root, "diff", "--name-status", "--no-renames", "--relative", "-z", base_commit)
    if changed.returncode:
        raise TaxonomyError(f"git diff against {base} failed: {last_line(changed.stderr)}")
    entries = nul_list(changed.stdout)
    statuses = dict(zip(entries[1::2], entries[0::2]))
    head = run_git(root, "diff", "--name-only", "--no-renames", "--relative", "-z", "HEAD")
    uncommitted = set(nul_list(head.stdout)) if head.returncode == 0 else set(statuses)
    untracked = nul_list(run_git(root, "ls-files", "--others", "--exclude-standard", "-z").stdout)

    leaf_folders = {f.parent.relative_to(root).as_posix() for f in files}
    changes: dict[str, LeafChange] = {}

    def note(file: str, status: str, pending: bool) -> None:
        leaf = _leaf_of(file) if PurePosixPath(file).name == QNA else _owner(file, leaf_folders)
        if leaf is None or any(part.startswith(".") for part in PurePosixPath(leaf).parts):
            return
        if PurePosixPath(file).name != QNA:
            status = MODIFIED  # a document or other file changed inside an existing leaf
        old = changes.get(leaf)
        if old is None or _PRIORITY[status] > _PRIORITY[old.status]:
            changes[leaf] = LeafChange(leaf, status, pending or bool(old and old.uncommitted))
        elif pending and not old.uncommitted:
            changes[leaf] = LeafChange(leaf, old.status, True)

    for file, code in statuses.items():
        note(file, {"A": ADDED, "D": DELETED}.get(code[:1], MODIFIED), file in uncommitted)
    for file in untracked:
        note(file, UNTRACKED, True)
    return TaxonomyDiff(base, base_commit, sorted(changes.values(), key=lambda c: c.path))


def _leaf_of(qna_file: str) -> str:
    return PurePosixPath(qna_file).parent.as_posix()


def _owner(file: str, leaf_folders: set[str]) -> str | None:
    """The nearest folder above `file` that is a leaf, if any."""
    for parent in PurePosixPath(file).parents:
        folder = parent.as_posix()
        if folder in leaf_folders:
            return folder
    return None
