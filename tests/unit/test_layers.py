"""The layers point one way (docs/architecture.md).

    contracts (schemas/) -> domain (pipelines/rules/) -> adapters (connectors/)
        -> pipelines (pipelines/*) -> application (omm/)

A module may import its own layer and the layers before it, never a later one;
the domain imports nothing but the contracts, the standard library, pydantic and
yaml; only the application reads the environment; and no modules import each
other in a circle. Read from the source with ``ast`` (every import, including
those inside functions), so a lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "pipelines", "connectors", "omm")
LAYERS = ("contracts", "domain", "adapters", "pipelines", "application")
# third-party packages the domain may use besides the standard library
DOMAIN_THIRD_PARTY = frozenset({"pydantic", "yaml"})
# Reads JAVA_HOME and XDG_CACHE_HOME (where Java and the jar cache are, by the
# platform's conventions) and is `make setup`'s entry point, run before the
# virtualenv exists, so it cannot ask omm's settings.
ENVIRONMENT_EXCEPTIONS = frozenset({"connectors.broker.manager"})


def layer(module: str) -> int | None:
    """The layer of one of our modules (an index into LAYERS); None for anything else."""
    top = module.split(".")[0]
    if top == "schemas":
        return 0
    if module == "pipelines.rules" or module.startswith("pipelines.rules."):
        return 1
    if top == "connectors":
        return 2
    if top == "pipelines":
        return 3
    if top == "omm":
        return 4
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, relative ones resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports pkg.mod when mod is a module
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def upward_imports(source: str, module: str) -> list[str]:
    """Imports of ``module`` that point to a later layer than its own."""
    own = layer(module)
    assert own is not None, module
    found = []
    for line, target in imports(source, module):
        target_layer = layer(target)
        if target_layer is not None and target_layer > own:
            found.append(
                f"{module}:{line} ({LAYERS[own]}) imports {target} ({LAYERS[target_layer]})"
            )
    return found


def test_every_module_is_in_a_layer() -> None:
    modules = our_modules()
    assert len(modules) > 40
    assert all(layer(m) is not None for m in modules)
    assert {LAYERS[layer(m) or 0] for m in modules} == set(LAYERS)


def test_no_import_points_to_a_later_layer() -> None:
    found = [
        arrow
        for module, path in our_modules().items()
        for arrow in upward_imports(path.read_text(encoding="utf-8"), module)
    ]
    assert found == [], "imports pointing up the layers:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("schemas.models", "from pipelines.rules.matching import gtin_is_valid"),
        ("pipelines.rules.record_rules", "from omm.config import RulesConfig"),
        ("pipelines.rules.matching", "import connectors.kafka_client"),
        ("connectors.push", "from pipelines import ingest"),
        ("pipelines.ingest", "def f():\n    from omm.settings import get_settings\n"),
        ("pipelines.feed_health.stage", "from ...omm import settings"),
    ],
)
def test_the_check_catches_an_upward_import(module: str, source: str) -> None:
    # the same check as above, on a planted arrow: proof that it can fail
    assert upward_imports(source, module)


def test_a_downward_import_is_allowed() -> None:
    assert upward_imports("from schemas.registry import SchemaRegistry", "omm.cli") == []
    assert upward_imports("from pipelines.rules import enforcement", "connectors.push") == []


def test_the_domain_uses_only_the_contracts_stdlib_pydantic_and_yaml() -> None:
    found = []
    for module, path in our_modules().items():
        if layer(module) != 1:
            continue
        for line, target in imports(path.read_text(encoding="utf-8"), module):
            top = target.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top in DOMAIN_THIRD_PARTY
                or (layer(target) is not None and (layer(target) or 0) <= 1)
            )
            if not allowed:
                found.append(f"{module}:{line} imports {target}")
    assert found == []


def test_only_the_application_reads_the_environment() -> None:
    readers = ("environ", "getenv", "BaseSettings", "get_settings")
    found = []
    for module, path in our_modules().items():
        if layer(module) == 4 or module in ENVIRONMENT_EXCEPTIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if name in readers:
                found.append(f"{module}:{node.lineno} uses {name}")
    assert found == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    modules = our_modules()
    graph = {
        module: {
            target if target in modules else target.rsplit(".", 1)[0]
            for _, target in imports(path.read_text(encoding="utf-8"), module)
        }
        & set(modules) - {module}
        for module, path in modules.items()
    }
    # packages' __init__ modules are docstrings: an import of pkg.mod goes to pkg.mod
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
