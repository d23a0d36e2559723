"""One-way layers (issue 11, section 5): every import between actsym modules -- module-level and
function-local, read with ``ast`` -- goes down the pipeline

    base (parse/spec) -> derive -> codegen -> runtime -> analysis -> harness/viz -> cli

never up it, no library module imports the command line, and no two modules import each other (directly or
through others). ``if TYPE_CHECKING:`` imports (annotations only, never executed) do not count.

``actsym/__init__.py`` loads its public names lazily, so ``from actsym import define`` depends on the module
that defines ``define`` (``actsym.api``), ``from actsym import __version__`` on nothing, and ``import actsym``
followed by ``actsym.get(...)`` on ``actsym.api``.

To see the graph: ``python tests/test_layers.py`` prints every edge and each module's layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "actsym"

#: lowest first. A module is placed by its exact name, else by the longest ``package.*`` pattern (the
#: package itself and everything in it).
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["actsym", "actsym.functions", "actsym.parse", "actsym.budget", "actsym.spec", "actsym.catalog",
              "actsym.corpus", "actsym.loader", "actsym.numerics", "actsym.data"]),
    ("derive", ["actsym.rewrite", "actsym.derive", "actsym.derivation", "actsym.branch_points", "actsym.accuracy",
                "actsym.regimes", "actsym.verify"]),
    ("codegen", ["actsym.codegen.*"]),
    # codegen/writer.py writes the files of Activation objects (the back end of `actsym codegen`): runtime
    ("runtime", ["actsym.activation", "actsym.dispatch", "actsym.api", "actsym.backends", "actsym.modules",
                 "actsym.resolve", "actsym.codegen.writer"]),
    ("analysis", ["actsym.properties", "actsym.analysis.*"]),
    ("harness/viz", ["actsym.harness.*", "actsym.viz.*"]),
    ("cli", ["actsym.cli.*", "actsym.__main__"]),
]

#: cycles that exist today in files this test's author may not edit; remove an entry once it is fixed
#: (the test says so). rewrite.py takes _Timeout/time_budget from derive.py, which imports rewrite.py.
KNOWN_CYCLES = [{"actsym.derive", "actsym.rewrite"}]


# ------------------------------------------------------------------------------------------------------
# reading the imports
# ------------------------------------------------------------------------------------------------------


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _exports() -> dict[str, str]:
    """``actsym/__init__.py``'s lazy exports (name -> defining module), read from its ``_EXPORTS`` literal."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
            return ast.literal_eval(node.value)
    return {}


EXPORTS = _exports()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _existing(name: str) -> str | None:
    """The longest prefix of a dotted name that is an actsym module."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    """Every import statement of one module outside ``if TYPE_CHECKING:``, with its line."""

    def __init__(self, module: str, is_package: bool):
        self.module, self.is_package = module, is_package
        self.edges: list[tuple[str, int]] = []
        self.package_aliases: set[str] = set()  # names bound to the actsym package by `import actsym[.x]`
        self.top_level: list[int] = []  # lines of module-level imports of actsym modules
        self._depth = 0

    def _add(self, target: str | None, node: ast.AST) -> None:
        if target is not None and target.startswith("actsym"):
            self.edges.append((target, node.lineno))
            if self._depth == 0:
                self.top_level.append(node.lineno)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _scoped(self, node) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scoped

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "actsym" or alias.name.startswith("actsym."):
                if alias.asname is None:
                    self.package_aliases.add("actsym")
                    if alias.name != "actsym":
                        self._add(_existing(alias.name), node)
                elif alias.name == "actsym":
                    self.package_aliases.add(alias.asname)
                else:
                    self._add(_existing(alias.name), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module if self.is_package else self.module.rpartition(".")[0]
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        if not base.startswith("actsym"):
            return
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in MODULES:
                self._add(full, node)
            elif base == "actsym":
                if alias.name in EXPORTS:
                    self._add(EXPORTS[alias.name], node)
                # else: defined in actsym/__init__.py itself (__version__), which imports nothing
            else:
                self._add(_existing(base), node)

    def visit_Call(self, node: ast.Call) -> None:  # importlib.import_module("actsym.x") with a literal
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
            if isinstance(value, str) and value.startswith("actsym"):
                self._add(_existing(value), node)
        self.generic_visit(node)


def _package_uses(tree: ast.AST, aliases: set[str]) -> list[tuple[str, int]]:
    """``actsym.NAME`` after ``import actsym``: the module NAME comes from; any other use of the package
    object (passed around, returned) counts as using every export."""
    if not aliases:
        return []
    out, attr_values = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            attr_values.add(id(node.value))
            full = f"actsym.{node.attr}"
            if full in MODULES:
                out.append((full, node.lineno))
            elif node.attr in EXPORTS:
                out.append((EXPORTS[node.attr], node.lineno))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases and id(node) not in attr_values \
                and isinstance(node.ctx, ast.Load):
            out += [(m, node.lineno) for m in sorted(set(EXPORTS.values()))]
    return out


def edges_of(source: str, module: str, is_package: bool = False) -> dict[str, int]:
    """{imported actsym module: first line} of one module's source."""
    tree = ast.parse(source)
    v = _Imports(module, is_package)
    v.visit(tree)
    edges: dict[str, int] = {}
    for target, line in v.edges + _package_uses(tree, v.package_aliases):
        if target != module:
            edges.setdefault(target, line)
    return edges


def import_graph() -> tuple[dict[str, dict[str, int]], dict[str, list[int]]]:
    """module -> {imported module: first line}; and module -> lines of its module-level actsym imports."""
    graph: dict[str, dict[str, int]] = {}
    top: dict[str, list[int]] = {}
    for name, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        graph[name] = edges_of(source, name, path.name == "__init__.py")
        v = _Imports(name, path.name == "__init__.py")
        v.visit(ast.parse(source))
        top[name] = v.top_level
    return graph, top


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for i, (_, patterns) in enumerate(LAYERS):
        for pat in patterns:
            if pat == module:
                return i
            inside = module == pat[:-2] or module.startswith(pat[:-1])  # the package and everything in it
            if pat.endswith(".*") and inside and len(pat) > best_len:
                best, best_len = i, len(pat)
    return best


def cycles(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


GRAPH, TOP_LEVEL = import_graph()


def _where(a: str, b: str) -> str:
    return f"{MODULES[a].relative_to(REPO)}:{GRAPH[a][b]} imports {b}"


# ------------------------------------------------------------------------------------------------------
# the rules
# ------------------------------------------------------------------------------------------------------


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if layer_of(m) is None)
    assert not missing, f"place these modules in LAYERS (tests/test_layers.py): {missing}"


def test_no_library_module_imports_the_cli():
    cli = layer_of("actsym.cli")
    bad = [_where(a, b) for a, edges in GRAPH.items() if layer_of(a) != cli
           for b in edges if layer_of(b) == cli]
    assert not bad, "the library imports the command line:\n" + "\n".join(bad)


def test_imports_go_down_the_layers():
    bad = []
    for a, edges in GRAPH.items():
        for b in edges:
            la, lb = layer_of(a), layer_of(b)
            if la is not None and lb is not None and lb > la:
                bad.append(f"{_where(a, b)}  ({LAYERS[la][0]} -> {LAYERS[lb][0]})")
    assert not bad, "imports up the layers:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    found = cycles(GRAPH)
    new = [c for c in found if c not in KNOWN_CYCLES]
    detail = []
    for comp in new:
        detail.append(" <-> ".join(sorted(comp)) + ":\n    " + "\n    ".join(
            _where(a, b) for a in sorted(comp) for b in GRAPH[a] if b in comp))
    assert not new, "import cycles:\n" + "\n".join(detail)
    fixed = [c for c in KNOWN_CYCLES if c not in found]
    assert not fixed, f"these cycles are gone: remove them from KNOWN_CYCLES in tests/test_layers.py: {fixed}"


def test_the_package_root_imports_nothing_at_import_time():
    """``import actsym`` (and so ``actsym --help``) loads no other actsym module: the public names are lazy,
    and each one is defined where ``_EXPORTS`` says."""
    assert not TOP_LEVEL["actsym"], f"actsym/__init__.py imports actsym modules at lines {TOP_LEVEL['actsym']}"
    for name, module in EXPORTS.items():
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        assert name in defined, f"_EXPORTS says {name!r} is in {module}, which does not define it"


def test_the_reader_sees_the_kinds_of_import_it_must():
    """The rules above are only as good as the reader: check it on every form of import."""
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
import actsym.codegen.eager
from actsym import __version__, define, corpus
from .store import Store
if TYPE_CHECKING:
    from actsym.activation import Activation
def f():
    import actsym
    import importlib
    importlib.import_module("actsym.viz.plots")
    return actsym.get("relu"), actsym.parse.ExpressionError
"""
    edges = edges_of(source, "actsym.harness.report")
    assert set(edges) == {"actsym.codegen.eager", "actsym.api", "actsym.corpus", "actsym.harness.store",
                          "actsym.viz.plots", "actsym.parse"}  # no actsym.activation (TYPE_CHECKING)
    # the package object itself passed on: every lazy export counts
    assert set(edges_of("import actsym\nCORE = actsym\n", "actsym.x")) == set(EXPORTS.values())
    assert edges_of("from actsym import __version__\n", "actsym.x") == {}  # defined in the root, which imports nothing
    assert "actsym.dispatch" in GRAPH["actsym.activation"]  # a function-local import in the real code base
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [{"a", "b", "c"}]


def _imported_by_help(argv: list[str]) -> set[str]:
    """Top-level package names a subprocess imported (``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "eval" in proc.stdout and "toy2d" in proc.stdout
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("argv", [["-m", "actsym", "--help"], ["cli.py", "--help"], ["-m", "actsym.cli", "-h"]])
def test_help_imports_no_heavy_dependency(argv):
    """``actsym --help`` answers at once: no torch, SymPy, NumPy, matplotlib, SciPy or Hypothesis imported
    (measured by what was imported, not by a clock)."""
    heavy = _imported_by_help(argv) & {"torch", "sympy", "numpy", "matplotlib", "scipy", "hypothesis", "mpmath"}
    assert not heavy, f"{' '.join(argv)} imported {sorted(heavy)}"


if __name__ == "__main__":  # print the graph
    for a in sorted(GRAPH):
        la = layer_of(a)
        print(f"{a}  [{LAYERS[la][0] if la is not None else '?'}]")
        for b, line in sorted(GRAPH[a].items()):
            print(f"    -> {b}  (line {line})")
