"""The package's shape: few top-level modules, no file over the size limit, no import cycle (lazy imports
included), and imports that point one way through the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rlvr"

#: the layers, lowest first: a module may import its own layer and those before it, never one after it
LAYERS = (
    ("foundations", ("types", "errors", "io", "names", "models", "testing", "config", "distributed")),
    ("sandboxes", ("sandboxes",)),
    ("verifiers", ("verifiers",)),
    ("data", ("data",)),
    ("environments", ("environments",)),
    ("rollout", ("rollout",)),
    ("objectives", ("objectives",)),
    ("learner", ("learner",)),
    ("algorithms", ("algorithms",)),
    ("eval", ("eval",)),
    ("train", ("train",)),
    ("cli", ("cli", "__main__", "__init__")),
    ("integrations", ("integrations",)),  # rlvr inside other trainers (TRL, verl): nothing in rlvr imports it
)
RANK = {top: rank for rank, (_, tops) in enumerate(LAYERS) for top in tops}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every rlvr module this one imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            module = target  # the longest prefix of the import that is a module of rlvr
            while module and module not in MODULES:
                module = module.rpartition(".")[0]
            if module and module != name and module.startswith("rlvr"):
                out.add(module)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    parts = name.split(".")
    return RANK["__init__"] if len(parts) == 1 else RANK[parts[1]]


def test_the_top_level_holds_at_most_ten_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_no_file_is_over_the_size_limit():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, long


def test_every_module_opens_with_a_docstring():
    missing = [name for name, path in MODULES.items() if ast.get_docstring(ast.parse(path.read_text())) is None]
    assert not missing, missing


def test_no_import_cycle_lazy_imports_included():
    """A package's __init__ re-exporting its own submodules is not a cycle; anything else that leads back is."""

    def reachable(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH.get(node, ()):
                if nxt == start:
                    return [*path, nxt]
                if nxt not in seen and not (MODULES[nxt].name == "__init__.py" and node.startswith(nxt + ".")):
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [cycle for name in MODULES if (cycle := reachable(name))]
    assert not cycles, cycles[0]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "rlvr"))
def test_imports_point_down_the_layers(name):
    upward = sorted(t for t in GRAPH[name] if t != "rlvr" and _layer(t) > _layer(name))
    assert not upward, f"{name} imports a later layer: {upward}"
