"""kiln's import graph, built from the source (every import statement, in functions and under
TYPE_CHECKING too): no cycle between packages or between modules, the foundation (kiln.core) imports
nothing of kiln but kiln.errors, template/ never imports engine/, and no module imports another's
private names (a private module is private to its package: its siblings may import it)."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: package -> what it may import of kiln (itself always)
ALLOWED = {
    "kiln.errors": (),
    "kiln.core": ("kiln.errors",),
}
#: package -> packages it must not import
FORBIDDEN = {
    "kiln.template": ("kiln.engine",),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  #: file:line of the import statement


class Graph:
    def __init__(self, src: Path) -> None:
        self.files: dict[str, Path] = {}
        for path in sorted(src.rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            self.files[".".join(parts)] = path
        self.edges: list[Edge] = []
        self.private: list[str] = []
        for name, path in self.files.items():
            self._read(name, path, src)

    def is_package(self, name: str) -> bool:
        return self.files.get(name, Path()).name == "__init__.py"

    def _read(self, name: str, path: Path, src: Path) -> None:
        package = name if self.is_package(name) else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(src.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._add(name, alias.name, where)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in self.files:
                        self._add(name, target, where)
                    else:
                        self._add(name, base, where)
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and not (target in self.files and base == package):
                        self.private.append(f"{where}: {name} imports {alias.name} from {base}")

    def _add(self, source: str, target: str, where: str) -> None:
        """An edge to `target` and to each package above it that `source` is not inside (importing
        a module runs its packages' __init__ first)."""
        parts = target.split(".")
        for end in range(1, len(parts) + 1):
            name = ".".join(parts[:end])
            inside = source == name or source.startswith(name + ".")
            if name in self.files and name != source and not inside:
                self.edges.append(Edge(source, name, where))


def cycle_in(edges: list[Edge]) -> list[Edge] | None:
    """One cycle of the graph, as the edges that make it, or None."""
    out: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        if edge.source != edge.target:
            out[edge.source].append(edge)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Edge] = []  # the edges from the first node to the current one

    def visit(node: str) -> list[Edge] | None:
        state[node] = 1
        for edge in out[node]:
            if state.get(edge.target) == 1:
                start = next((i + 1 for i, e in enumerate(path) if e.target == edge.target), 0)
                return [*path[start:], edge]
            if edge.target not in state:
                path.append(edge)
                found = visit(edge.target)
                if found:
                    return found
                path.pop()
        state[node] = 2
        return None

    for node in sorted(out):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def child_of(package: str, module: str) -> str | None:
    """The part of `package` that `module` is in (itself, a module or a subpackage), or None."""
    if module == package:
        return package
    if not module.startswith(package + "."):
        return None
    return package + "." + module[len(package) + 1 :].split(".")[0]


def describe(cycle: list[Edge]) -> str:
    return " -> ".join([cycle[0].source, *(f"{e.target} ({e.where})" for e in cycle)])


def problems(graph: Graph) -> list[str]:
    found: list[str] = []
    cycle = cycle_in(graph.edges)
    if cycle:
        found.append("modules import each other: " + describe(cycle))
    for package in sorted(n for n in graph.files if graph.is_package(n)):
        collapsed = []
        for edge in graph.edges:
            source, target = child_of(package, edge.source), child_of(package, edge.target)
            if source and target and source != target:
                collapsed.append(Edge(source, target, edge.where))
        cycle = cycle_in(collapsed)
        if cycle:
            found.append(f"parts of {package} import each other: " + describe(cycle))

    def within(name: str, package: str) -> bool:
        return name == package or name.startswith(package + ".")

    for edge in graph.edges:
        for package, allowed in ALLOWED.items():
            own = within(edge.target, package) or any(within(edge.target, a) for a in allowed)
            if within(edge.source, package) and not own and edge.target != "kiln":
                found.append(f"{edge.where}: {package} may import only {allowed or 'nothing'} of kiln")
        for package, forbidden in FORBIDDEN.items():
            if within(edge.source, package) and any(within(edge.target, f) for f in forbidden):
                found.append(f"{edge.where}: {edge.source} imports {edge.target}")
    return found + graph.private


def test_kiln_import_graph() -> None:
    graph = Graph(SRC)
    assert len(graph.files) > 100 and len(graph.edges) > 300  # the whole source was read
    assert problems(graph) == []


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


BASE = {"kiln/__init__.py": "", "kiln/errors.py": "", "kiln/core/__init__.py": ""}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # a cycle through an import inside a function
            {
                "kiln/a.py": "from kiln import b\n",
                "kiln/b.py": "def f():\n    from kiln.a import x\n",
            },
            "modules import each other: kiln.a -> kiln.b (src/kiln/a.py:1) -> kiln.a (src/kiln/b.py:2)",
        ),
        (  # packages in a cycle, though their modules are not
            {
                "kiln/p/__init__.py": "",
                "kiln/p/one.py": "import kiln.q.two\n",
                "kiln/p/three.py": "",
                "kiln/q/__init__.py": "",
                "kiln/q/two.py": "",
                "kiln/q/four.py": "from kiln.p import three\n",
            },
            "parts of kiln import each other: kiln.p -> kiln.q (src/kiln/p/one.py:1) -> kiln.p (src/kiln/q/four.py:1)",
        ),
        (  # a cycle under TYPE_CHECKING, relative imports
            {
                "kiln/p/__init__.py": "",
                "kiln/p/one.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .two import T\n",
                "kiln/p/two.py": "from . import one\n",
            },
            "modules import each other: kiln.p.one -> kiln.p.two (src/kiln/p/one.py:3) -> kiln.p.one (src/kiln/p/two.py:1)",
        ),
        (
            {
                "kiln/template/__init__.py": "",
                "kiln/template/m.py": "",
                "kiln/engine/__init__.py": "",
                "kiln/engine/secrets.py": "",
                "kiln/template/v.py": "from kiln.engine.secrets import R\n",
            },
            "src/kiln/template/v.py:1: kiln.template.v imports kiln.engine.secrets",
        ),
        (
            {"kiln/core/ui.py": "from kiln import errors, config\n", "kiln/config.py": ""},
            "src/kiln/core/ui.py:1: kiln.core may import only ('kiln.errors',) of kiln",
        ),
        (
            {"kiln/a.py": "def _hidden(): pass\n", "kiln/b.py": "from kiln.a import _hidden\n"},
            "src/kiln/b.py:1: kiln.b imports _hidden from kiln.a",
        ),
    ],
    ids=[
        "function-level-cycle",
        "package-cycle",
        "type-checking-cycle",
        "template-engine",
        "core",
        "private",
    ],
)
def test_each_problem_is_found(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    write(tmp_path / "src", {**BASE, **files})
    assert expected in problems(Graph(tmp_path / "src"))


def test_a_private_module_may_be_imported_by_its_siblings(tmp_path: Path) -> None:
    write(
        tmp_path / "src",
        {**BASE, "kiln/p/__init__.py": "", "kiln/p/_impl.py": "", "kiln/p/m.py": "from . import _impl\n"},
    )
    assert problems(Graph(tmp_path / "src")) == []
