"""The package's layering, read from the source: no upward import and no import cycle in lamp/.

Every ``import`` / ``from ... import`` of every module counts, wherever it is written (module level,
inside a function, under ``TYPE_CHECKING``): an import hidden in a function is still a dependency.
A module may import its own package and the layers below it (:data:`LAYERS`, higher imports lower).
``lamp/__init__.py`` is the public entry point, outside the layers: it may import anything, but only
inside functions (so ``import lamp`` loads nothing else), and any module may import it (for
``__version__``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "lamp"

LAYERS: dict[str, int] = {
    "cli": 8,
    "serve": 7,  # the HTTP server over a fitted pipeline
    "pipeline": 6,
    "rank": 5, "abduce": 5, "retrieval": 5, "tpp": 5, "eval": 5,
    "rules": 4, "nn": 4, "llm": 4, "parallel": 4,  # parallel: where the per-query stages run (executor=ray)
    "types": 3,  # the records between stages name an EventLog / QuerySet: above data
    "data": 2, "components": 2, "progress": 2,  # components: how a component describes itself; progress: bars
    "errors": 1,
}


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` at ``path:line``."""

    importer: str
    imported: str
    path: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.imported}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lamp_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _resolve(target: str, names: list[str], modules: dict[str, Path]) -> list[str]:
    """The lamp modules an import statement loads: ``from a.b import c`` is a.b.c when that is a module."""
    out = []
    for name in names:
        sub = f"{target}.{name}"
        out.append(sub if sub in modules else target)
    return out or [target]


def _package_of(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def import_edges(modules: dict[str, Path], root: Path = ROOT) -> list[Edge]:
    """Every import of a lamp module by a lamp module."""
    edges = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        in_fn = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                 for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name == "lamp" or a.name.startswith("lamp.")]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    pkg = _package_of(mod, modules).split(".")
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
                if base == "lamp" or base.startswith("lamp."):
                    targets = _resolve(base, [a.name for a in node.names], modules)
            rel = str(path.relative_to(root.parent))
            seen = set()
            for target in targets:
                while target not in modules and "." in target:  # `import lamp.a.b` of a name inside a module
                    target = target.rpartition(".")[0]
                if target != mod and target not in seen:
                    seen.add(target)
                    edges.append(Edge(mod, target, rel, node.lineno, id(node) in in_fn))
    return edges


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lamp"


def upward_imports(edges: list[Edge]) -> list[str]:
    bad = []
    for e in edges:
        src, dst = layer_of(e.importer), layer_of(e.imported)
        if src == "lamp":
            if not e.in_function:
                bad.append(f"{e} (lamp/__init__.py may import lamp modules only inside functions)")
            continue
        if dst == "lamp" or src == dst:
            continue
        if src not in LAYERS or dst not in LAYERS:
            bad.append(f"{e} ({src if src not in LAYERS else dst!r} has no layer: add it to LAYERS)")
        elif LAYERS[dst] >= LAYERS[src]:
            bad.append(f"{e} ({src}, layer {LAYERS[src]}, may not import {dst}, layer {LAYERS[dst]})")
    return bad


def import_cycles(edges: list[Edge]) -> list[tuple[list[str], list[Edge]]]:
    """Each strongly connected group of modules (Tarjan; root package excluded) and one cycle in it."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        if layer_of(e.importer) != "lamp" and layer_of(e.imported) != "lamp":
            graph.setdefault(e.importer, {}).setdefault(e.imported, e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # recursive Tarjan: lamp's import depth is small
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [(g, _cycle_in(graph, set(g))) for g in groups]


def _cycle_in(graph: dict[str, dict[str, Edge]], group: set[str]) -> list[Edge]:
    """A shortest cycle through the group's first module, by breadth-first search inside the group."""
    start = min(group)
    parent: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w, e in sorted(graph.get(v, {}).items()):
                if w == start:
                    path = [e]
                    while path[0].importer != start:
                        path.insert(0, parent[path[0].importer])
                    return path
                if w in group and w not in parent:
                    parent[w] = e
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle found in strongly connected group {sorted(group)}")


# -- the checks on lamp/ --------------------------------------------------------------------------
MODULES = lamp_modules()
EDGES = import_edges(MODULES)


def test_the_reader_sees_the_imports() -> None:
    """Guards the reader itself: known imports, in functions and under TYPE_CHECKING too, are found."""
    found = {(e.importer, e.imported): e for e in EDGES}
    assert ("lamp.tpp.recurrency", "lamp.tpp.base") in found
    assert found["lamp", "lamp.pipeline.api"].in_function
    assert len(MODULES) > 90 and len(EDGES) > 300


def test_no_upward_import() -> None:
    bad = upward_imports(EDGES)
    assert not bad, "imports that run up the layers (higher layers may import lower ones only):\n" + "\n".join(bad)


def test_no_import_cycle() -> None:
    cycles = import_cycles(EDGES)
    text = "\n\n".join(f"modules {', '.join(g)}; one cycle:\n" + "\n".join(f"  {e}" for e in c) for g, c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) between lamp modules:\n{text}"


# -- the checker on small made-up packages (it must be able to fail) -------------------------------
def _fake(tmp_path: Path, files: dict[str, str]) -> list[Edge]:
    """A made-up ``lamp`` package of ``files`` (path -> source); empty ``__init__.py`` files are added."""
    root = tmp_path / "lamp"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return import_edges(lamp_modules(root), root)


def test_checker_names_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    edges = _fake(tmp_path, {
        "data/log.py": "def f():\n    from lamp.tpp.base import x\n",
        "tpp/base.py": "from lamp.data import log\n",
    })
    bad = upward_imports(edges)
    assert bad == ["lamp/data/log.py:2: lamp.data.log -> lamp.tpp.base (data, layer 2, may not import tpp, layer 5)"]


def test_checker_flags_sibling_packages_type_checking_and_eager_root_imports(tmp_path: Path) -> None:
    edges = _fake(tmp_path, {
        "__init__.py": "from lamp.tpp import base\n",
        "abduce/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lamp.retrieval.b import B\n",
        "retrieval/b.py": "import lamp\nB = lamp.__version__\n",
        "tpp/base.py": "",
    })
    bad = upward_imports(edges)
    assert len(bad) == 2
    assert bad[0].startswith("lamp/__init__.py:1: lamp -> lamp.tpp.base (lamp/__init__.py may import")
    assert bad[1] == "lamp/abduce/a.py:3: lamp.abduce.a -> lamp.retrieval.b (abduce, layer 5, may not import " \
                     "retrieval, layer 5)"


def test_checker_names_every_edge_of_a_cycle(tmp_path: Path) -> None:
    edges = _fake(tmp_path, {
        "tpp/base.py": "def score():\n    from lamp.tpp.factored import rank\n",
        "tpp/factored.py": "from lamp.tpp import frequency\n",
        "tpp/frequency.py": "from . import base\n",
        "tpp/ok.py": "from lamp.tpp.base import score\n",
    })
    cycles = import_cycles(edges)
    assert [g for g, _ in cycles] == [["lamp.tpp.base", "lamp.tpp.factored", "lamp.tpp.frequency"]]
    assert [[str(e) for e in c] for _, c in cycles] == [[
        "lamp/tpp/base.py:2: lamp.tpp.base -> lamp.tpp.factored",
        "lamp/tpp/factored.py:1: lamp.tpp.factored -> lamp.tpp.frequency",
        "lamp/tpp/frequency.py:1: lamp.tpp.frequency -> lamp.tpp.base",
    ]]
