"""No import cycles inside alignlab, and the config loader stays light.

Every module of the package is imported (so a module that cannot even be imported fails here),
then the graph of alignlab-internal imports is read from each module's source, including the
imports written inside functions: a lazy import still ties two modules together, and a cycle of
them is one refactor away from an ImportError at start-up.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import alignlab
from alignlab.codedeps import named_imports


def _modules() -> dict[str, Path]:
    root = Path(alignlab.__file__).parent
    found = {"alignlab": root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix="alignlab."):
        rel = Path(*info.name.split(".")[1:])
        path = root / rel / "__init__.py" if info.ispkg else root / rel.with_suffix(".py")
        found[info.name] = path
    return found


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The alignlab modules `module` imports (codedeps.named_imports: the graph stage
    fingerprints follow); importing a package's module from outside it counts as importing
    the package too (from inside, the package is already being imported when its modules run)."""
    out = set(named_imports(module, path))
    for target in list(out):
        parts = target.split(".")
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            if parent in known and not (module == parent or module.startswith(parent + ".")):
                out.add(parent)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imported(m, p, known) for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component larger than one module (Tarjan), each printed
    as the path that closes it, so the message says which imports to cut."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_through(graph, set(c)) for c in components]


def _path_through(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """The shortest cycle through the component's first module, breadth-first."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def test_every_module_imports():
    # A `__main__` module is a script: importing it runs it.
    for name in _modules():
        if not name.endswith(".__main__"):
            importlib.import_module(name)


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_config_loads_without_stage_dependencies():
    """Composing alignlab.yaml's sections must not pull in what the stages run on."""
    code = ("import sys, alignlab.config; "
            "print(' '.join(m for m in ('torch', 'jinja2', 'transformers', 'datasketch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
