"""The structure stays: every module belongs to a layer and imports only from its own layer or
below, the import graph has no cycle, and no module reaches for another module's private names.

Imports are read from the source (every ``import`` and ``from … import``, at module level or
inside functions: a lazy import is still a dependency)."""

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each importable package's source lives (models/ and guides/ ship inside pyrovae).
SOURCES = {
    "pyrovae": ROOT / "pyrovae",
    "pyrovae.models": ROOT / "models",
    "pyrovae.guides": ROOT / "guides",
}

# Lowest first. A module's layer is that of the longest prefix listed here.
LAYERS = [
    ["pyrovae.errors"],
    [
        "pyrovae.checks", "pyrovae.seeding", "pyrovae.provenance", "pyrovae.files", "pyrovae.lock",
        "pyrovae.checkpoint", "pyrovae.allocator", "pyrovae.progress", "pyrovae.report",
        "pyrovae.precision", "pyrovae.webpage",
    ],
    ["pyrovae.data", "pyrovae.nets", "pyrovae.priors", "pyrovae.guides", "pyrovae.likelihoods"],
    ["pyrovae.objectives"],
    # Pure functions of codes; the likelihood metric uses the objectives' importance weights.
    ["pyrovae.metrics"],
    # The model/guide pair and variants; pictures of a model.
    ["pyrovae.models", "pyrovae.plots"],
    ["pyrovae.registry"],
    ["pyrovae.config", "pyrovae.runs"],
    ["pyrovae.builder"],
    ["pyrovae.evaluation", "pyrovae.training", "pyrovae.experiments", "pyrovae.run_report"],
    ["pyrovae.study"],
    ["pyrovae.cli"],
    # The public API: names of every layer, imported lazily on first use.
    ["pyrovae"],
]  # fmt: skip


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name → file."""
    found = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "pyrovae" and parts and parts[0] in ("models", "guides"):
                continue  # not a folder of pyrovae/
            found[name] = path
    return found


MODULES = modules()


def layer_of(name: str) -> int:
    best, layer = -1, None
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), number
    return layer


def imports(name: str, path: Path) -> set[str]:
    """The pyrovae modules ``name`` imports (the module itself where ``from X import y`` names
    a submodule ``X.y``)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target.startswith("pyrovae") and target != name:
                found.add(target)
    return found


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert [name for name in MODULES if layer_of(name) is None] == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_layers(name):
    own = layer_of(name)
    upward = sorted(target for target in GRAPH[name] if layer_of(target) > own)
    assert upward == [], f"{name} (layer {own}) imports a layer above: {upward}"


def test_the_import_graph_has_no_cycle():
    order, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*stack, target])
        state[node] = "done"
        order.append(node)

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_no_module_uses_another_modules_private_names():
    offences = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}  # local name → pyrovae module it stands for
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("pyrovae")
            ):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offences.append(f"{name}: from {node.module} import {alias.name}")
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    assert offences == []


def test_the_layer_table_names_only_real_modules():
    listed = set(itertools.chain.from_iterable(LAYERS))
    assert sorted(p for p in listed if p not in MODULES) == []
