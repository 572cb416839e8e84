"""The package's shape, checked: imports point down (no cycle, no lazy import of fastnn's own
modules, each layer importing only the layers below it), modules stay about 400 lines, and the repository points at nothing outside it.

The layers, bottom to top (docs/architecture.md):

    _version, _core  <-  _ext  <-  backend  <-  the classes  <-  io, distributed  <-  model  <-  _public, fastnn
    reference: _core.config only          datasets: _core and _version only
"""
from __future__ import annotations

import ast
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastnn"
if not (ROOT / "setup.py").is_file() or not (PACKAGE / "__init__.py").is_file():
    pytest.skip("the repository's files are not next to the tests (an installed package's tests)",
                allow_module_level=True)

# Rank of each group; a module may import its own group or lower ranks only.
CLASSES = {"layers", "activations", "losses", "optimizers", "accuracy", "conv", "normalization", "history", "plotting",
           "callbacks", "schedules", "augment", "metrics"}
RANK = {"_version": 0, "_shadowed": 0, "_core": 0, "_ext": 1, "backend": 2, **{name: 3 for name in CLASSES}, "io": 4,
        "distributed": 4, "model": 5, "_model_inputs": 5, "_train_loop": 5, "_plan": 5, "summary": 5, "_public": 6, "": 7}
# Side packages and what they may import.
SIDE = {"reference": {"reference", "_core.config", "_shadowed"}, "datasets": {"datasets", "_core", "_version", "_shadowed"}}
# Optional dependencies imported where they are used (an ImportError there says which extra to install).
OPTIONAL = {"tqdm", "tqdm.auto", "matplotlib", "matplotlib.figure", "matplotlib.pyplot", "PIL", "PIL.Image",
            "threadpoolctl", "numpy._core", "numpy.core", "scipy.linalg", "scipy.linalg.cython_blas",
            "mpi4py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    if not base.startswith("fastnn"):
        return [base]
    # `from . import x` may name submodules
    return [f"{base}.{alias.name}" if (ROOT / (base + "." + alias.name).replace(".", "/")).with_suffix(".py").exists()
            or (ROOT / (base + "." + alias.name).replace(".", "/")).is_dir() else base for alias in node.names]


def _imports(module: str, path: pathlib.Path):
    """(imported module, line, at top level?) for every import statement of a module."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    top = set(map(id, tree.body))
    # imports inside `if TYPE_CHECKING:` are for type checkers only
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
    # the guarded import of the kernels in fastnn/__init__ (try/except ImportError) is top level
    guarded = {id(n) for node in tree.body if isinstance(node, ast.Try) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        at_top = id(node) in top or id(node) in guarded
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, at_top
        elif isinstance(node, ast.ImportFrom):
            for name in _resolve(module, is_package, node):
                yield name, node.lineno, at_top


def _group(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


GRAPH = {module: [(name, line, top) for name, line, top in _imports(module, path)]
         for module, path in _modules()}


def _internal(name: str) -> str | None:
    """The fastnn module an import names (the longest module path that exists), or None."""
    if not name.startswith("fastnn"):
        return None
    parts = name.split(".")
    while parts and ".".join(parts) not in GRAPH:
        parts.pop()
    return ".".join(parts) if parts else None


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph `edges` (depth-first search), or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(edges):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    """Over the top-level imports between fastnn's modules (a package's __init__ counts as its
    own module)."""
    edges = {m: {t for n, _, top in deps if top and (t := _internal(n)) and t != m} for m, deps in GRAPH.items()}
    cycle = _find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down():
    wrong = []
    for module, deps in GRAPH.items():
        group = _group(module)
        for name, line, _ in deps:
            target = _internal(name)
            if target is None or target == module or target == "fastnn" and module.startswith("fastnn."):
                if target == "fastnn" and module != "fastnn":
                    wrong.append(f"{module}:{line} imports the package root")
                continue
            tgroup = _group(target)
            rel = target[len("fastnn."):]
            if group in SIDE:
                if not any(rel == allowed or rel.startswith(allowed + ".") for allowed in SIDE[group]):
                    wrong.append(f"{module}:{line} imports {target} ({group} may import {sorted(SIDE[group])})")
            elif tgroup in SIDE:
                wrong.append(f"{module}:{line} imports {target}")
            elif RANK[tgroup] > RANK[group]:
                wrong.append(f"{module}:{line} ({group}) imports {target} ({tgroup}), a layer above it")
            elif group == "_core" and tgroup != "_core" and tgroup != "_version":
                wrong.append(f"{module}:{line} imports {target}: _core imports nothing above it")
    assert not wrong, "\n".join(wrong)


def test_no_lazy_import_of_fastnn_modules():
    """Imports of fastnn's own modules are at module level: none hides a cycle inside a function.
    Only optional third-party dependencies are imported where they are used."""
    lazy = [f"{module}:{line} imports {name}" for module, deps in GRAPH.items() for name, line, top in deps
            if not top and (name.startswith("fastnn") or name.startswith(".") or name not in OPTIONAL
                            and name.split(".")[0] not in {"ctypes", "shutil", "warnings", "importlib"})]
    assert not lazy, "\n".join(lazy)


@pytest.mark.parametrize("module, path", [(m, p) for m, p in _modules()], ids=lambda x: str(x))
def test_modules_are_about_400_lines_at_most(module, path):
    lines = len(path.read_text().splitlines())
    assert lines <= 420, f"{module} has {lines} lines: split it by job"


def _tracked_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.splitlines()]


# The notes beside a development checkout, issue numbers, and absolute paths of one machine. (The
# data sets folder beside a development checkout is a place the tests look for data, not a document.)
OUTSIDE = re.compile(r"\b(design|book-api|style-anchors|architecture-notes)\.md\b|\bissues? #?\d+\b|/work/")


def test_the_repository_points_at_nothing_outside_it():
    """No tracked file refers to notes that are not in the repository or to issue numbers: a
    person who clones it has neither. (docs/ holds the decisions.)"""
    found = []
    for path in _tracked_files():
        if path.suffix in {".png", ".json", ".csv"} or not path.is_file() or path.name == "test_architecture.py":
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not found, f"{len(found)} references:\n" + "\n".join(found[:60])


def test_repository_has_a_license():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
