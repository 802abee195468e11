"""Which alignlab modules a stage's code depends on, read from the imports in their source.

A stage's fingerprint covers its code. Lists of modules written by hand go stale (a stage
starts using another package's helper and editing that helper no longer re-runs it), so the
list is derived: from the stage's entry module, every `import alignlab.x`, `from alignlab.x
import y` and relative import, anywhere in the source (an import inside a function ties the
modules just as much), followed to its end. Nothing is imported: each file is parsed with
`ast` once per process (all of alignlab in about a third of a second), so a closure pulls in
none of the heavy dependencies of the modules it names. A module imported by name at run time
(a curation step's "module:function") is no import: the stage passes it as an entry, and an
entry may live outside alignlab (a step registered from the user's own package): its file is
found by Python's import system without importing it, and its alignlab imports are followed.
tests/test_import_graph.py reads the same graph to forbid import cycles.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import alignlab
from alignlab.store import code_version

ROOT = Path(alignlab.__file__).parent
# Files beside a package's modules that its code reads (prompt templates): editing one
# changes what the code does as surely as editing the code. Data sets (.jsonl) are inputs,
# fingerprinted by the stages that read them.
DATA_SUFFIXES = (".jinja", ".yaml", ".json")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source of `alignlab.a.b` under `root`: `a/b.py` or `a/b/__init__.py`; None when
    the name is no module (e.g. a function imported from a package)."""
    parts = name.split(".")[1:]
    if not parts:
        return root / "__init__.py"
    base = root.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def source_file(name: str, root: Path = ROOT) -> Path | None:
    """An alignlab module's source under `root`; any other module's from the import path
    (only its parent packages are imported to find it, never the module itself)."""
    if name.split(".")[0] == "alignlab":
        return module_file(name, root)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = Path(spec.origin) if spec and spec.origin else None
    return origin if origin and origin.suffix == ".py" and origin.is_file() else None


def _is_module(name: str, root: Path) -> bool:
    return name.split(".")[0] == "alignlab" and module_file(name, root) is not None


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    """Every statement, nested ones included (in functions, classes, `if`, `try`, ...).
    Imports are statements, so the expressions, most of a tree's nodes, need no visit."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.stmt):
            yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            todo.extend(getattr(node, field, ()))


@lru_cache(maxsize=None)
def named_imports(name: str, path: Path, root: Path = ROOT) -> frozenset[str]:
    """The alignlab modules the import statements of `name` (source: `path`) name, anywhere
    in its source. `from pkg import x` names `pkg.x` when that is a module, else `pkg`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if _is_module(a.name, root))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if _is_module(f"{target}.{alias.name}", root):
                    out.add(f"{target}.{alias.name}")
                elif _is_module(target, root):
                    out.add(target)
    return frozenset(out - {name})


def _with_parents(names: frozenset[str]) -> set[str]:
    """Importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` first."""
    return {".".join(m.split(".")[:k]) for m in names for k in range(1, m.count(".") + 2)}


def module_closure(entries: tuple[str, ...], root: Path | None = None) -> tuple[str, ...]:
    """`entries` and every alignlab module they import, directly or not, sorted. `root` is
    the package's folder (tests point it at a copy)."""
    return _closure(tuple(sorted(set(entries))), root or ROOT)


@lru_cache(maxsize=None)
def _closure(entries: tuple[str, ...], root: Path) -> tuple[str, ...]:
    # Cached per process (as is each file's parse): a running process's code does not change
    # under it.
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = source_file(name, root)
        if path is None:
            raise ValueError(f"{name}: no such module under {root} or on the import path")
        seen.add(name)
        todo.extend(_with_parents(named_imports(name, path, root)) - seen)
    return tuple(sorted(seen))


def _data_files(package_init: Path) -> list[Path]:
    """A package's data files, in its folder and its sub-folders that are not packages."""
    out: list[Path] = []
    folders = [package_init.parent]
    while folders:
        folder = folders.pop()
        for p in folder.iterdir():
            if p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists():
                folders.append(p)
            elif p.is_file() and p.suffix in DATA_SUFFIXES:
                out.append(p)
    return out


def code_files(*entries: str, root: Path | None = None) -> list[Path]:
    """Every source file of the closure, with the data files of each package in it (a
    package's, not a module's: which module reads a template is not written in an import)."""
    root = root or ROOT
    files: set[Path] = set()
    for name in module_closure(entries, root):
        path = source_file(name, root)
        files.add(path)
        if path.name == "__init__.py":
            files.update(_data_files(path))
    return sorted(files)


def stage_code_version(*entries: str, root: Path | None = None) -> str:
    """Fingerprint of the code behind `entries`: what a stage records so that editing any
    module it runs, however indirectly, re-runs it."""
    return code_version(*code_files(*entries, root=root))
