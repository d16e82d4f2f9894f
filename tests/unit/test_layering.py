"""The package layering, read from the import graph (stdlib ``ast``), so that it can't rot.

- The core (``pipeline/_*.py``) imports no capability package, and nothing above it.
- Each capability package imports the core and only the capability packages its
  ``__init__`` docstring allows; none imports ``pipeline.cli``, ``pipeline.demo``,
  ``producers``, ``consumers`` or ``examples``.
- ``producers`` builds on the core and ``pipeline.avro``; ``consumers`` on those and
  ``producers``. Neither reaches into the services or the CLI.
- No import cycle between modules, counting every import (also those inside functions or
  under ``TYPE_CHECKING``: a local import that hides a cycle is still a cycle).
- Public documents (the README's code, ``examples/``) import no ``_private`` module.
- No module over 600 lines; no ``_<capability>_*.py`` file at the top of ``pipeline/``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "producers", "consumers", "examples")
CAPABILITIES = ("avro", "scheduler", "lag", "ops", "stats", "console")
COMPOSITION = ("cli", "demo")  # may import anything
# What each capability package may import besides the core (its docstring says the same).
CAPABILITY_DEPS: dict[str, set[str]] = {
    "avro": set(),
    "scheduler": set(),
    "lag": set(),
    "ops": {"avro"},
    "stats": {"lag", "ops"},
    # the ops console reads through the services; sending is handed in by `pipeline console`
    "console": {"avro", "lag", "ops", "scheduler", "stats"},
}
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every project module ``name`` imports, resolved to the deepest module that exists."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one.
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                for a in node.names
            ]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield node.lineno, target


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    """``core``, a capability or composition package name, ``facade``, or the top package."""
    parts = module.split(".")
    if parts[0] != "pipeline":
        return parts[0]
    if len(parts) == 1 or parts[1] == "__main__":
        return "facade"  # re-exports the public names of the core and of pipeline.avro
    return "core" if parts[1].startswith("_") else parts[1]


def _violations(allowed: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, imports in GRAPH.items():
        layer = _layer(module)
        if layer not in allowed:
            continue
        for line, target in imports:
            if _layer(target) not in allowed[layer] | {layer}:
                bad.append(f"{MODULES[module].relative_to(REPO)}:{line}: {module} -> {target}")
    return bad


def test_core_imports_no_capability_package() -> None:
    assert _violations({"core": set()}) == []


def test_capability_packages_import_the_core_and_what_they_declare() -> None:
    rules = {cap: {"core", *deps} for cap, deps in CAPABILITY_DEPS.items()}
    assert _violations(rules) == []


def test_capability_docstrings_name_their_imports() -> None:
    for cap in CAPABILITIES:
        doc = ast.get_docstring(ast.parse((REPO / "pipeline" / cap / "__init__.py").read_text()))
        assert doc is not None, f"pipeline/{cap}/__init__.py has no docstring"
        assert "may import" in doc, f"pipeline.{cap}'s docstring does not say what it may import"
        for other in CAPABILITY_DEPS[cap]:
            assert f"pipeline.{other}" in doc, f"pipeline.{cap} may import {other}: say so"


def test_sdk_packages_stay_below_the_services() -> None:
    rules = {
        "producers": {"core", "avro", "facade"},
        "consumers": {"core", "avro", "facade", "producers"},
    }
    assert _violations(rules) == []


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for _, nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    # A package __init__ importing its own submodules is not a cycle unless one imports back.
    assert _cycles() == []


def _private(module: str) -> bool:
    return any(part.startswith("_") and part != "__main__" for part in module.split("."))


def test_examples_import_public_names_only() -> None:
    bad = [
        f"{MODULES[m].relative_to(REPO)}:{line}: {target}"
        for m, imports in GRAPH.items()
        if m.split(".")[0] == "examples"
        for line, target in imports
        if target.split(".")[0] != "examples" and _private(target)
    ]
    assert bad == []


def test_readme_code_imports_public_names_only() -> None:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python examples"
    statements = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", "\n".join(blocks), flags=re.M)
    assert statements
    assert [s for s in statements if _private(s)] == []


def test_modules_stay_small() -> None:
    big = {
        str(path.relative_to(REPO)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


@pytest.mark.parametrize("capability", [*CAPABILITIES, *COMPOSITION])
def test_no_capability_modules_left_at_the_top(capability: str) -> None:
    assert (REPO / "pipeline" / capability / "__init__.py").is_file()
    assert sorted(p.name for p in (REPO / "pipeline").glob(f"_{capability}_*.py")) == []
