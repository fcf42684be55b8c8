"""The dependency rule of DESIGN.md and the absence of import cycles, read from the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mlip_autopipec"
STAGES = ("generation", "surrogate", "dft", "training", "inference", "validation")
SHARED = ("mlip_autopipec.config", "mlip_autopipec.core", "mlip_autopipec.errors")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """Our modules that `path` imports anywhere (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)  # `from package import module` imports the module too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    known = modules()
    return {name for name in names if name in known}


def test_every_stage_imports_only_config_core_errors_and_itself() -> None:
    for stage in STAGES:
        own = f"mlip_autopipec.{stage}"
        for name, path in modules().items():
            if name != own and not name.startswith(own + "."):
                continue
            for target in imported(path):
                allowed = target == own or target.startswith(own + ".")
                allowed |= any(target == s or target.startswith(s + ".") for s in SHARED)
                assert allowed, f"{name} imports {target}"
                assert target != "mlip_autopipec.core.database", f"{name} opens the database"


def test_config_imports_nothing_of_ours_but_itself() -> None:
    for name, path in modules().items():
        if name.startswith("mlip_autopipec.config"):
            for target in imported(path):
                assert target.startswith("mlip_autopipec.config"), f"{name} imports {target}"


def test_there_is_no_import_cycle() -> None:
    graph = {name: imported(path) for name, path in modules().items()}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if target == node or node.startswith(target + "."):
                continue  # a module importing its own package's __init__ is not a cycle
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join([*trail, node, target]))
            if target not in state:
                visit(target, [*trail, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


@pytest.mark.parametrize("stage", STAGES)
def test_importing_a_stage_loads_no_heavy_package_no_dask_and_no_database(stage: str) -> None:
    """Heavy packages are imported on first use, on the worker that needs them."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"package = importlib.import_module('mlip_autopipec.{stage}')\n"
        "for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "bad = ('dask', 'distributed', 'torch', 'chgnet', 'mace', 'tensorflow', 'pyace',\n"
        "       'mlip_autopipec.core.database', 'mlip_autopipec.orchestration',\n"
        "       'mlip_autopipec.cli')\n"
        "print(sorted(name for name in bad if name in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
