"""The import layers of ``ttskiln.LAYERS``: families never import a stage, bottom modules import
only bottom modules, every top-level module names its layer.

Imports are read from the syntax trees, those inside functions included (a lazy import runs as
surely as a top-level one when the function is called).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import ttskiln
from ttskiln import LAYERS

PACKAGE = Path(ttskiln.__file__).resolve().parent


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ttskiln" or len(parts) == 1:
        return None  # outside the package, or the package itself (its version string)
    return next((layer for layer, names in LAYERS.items() if parts[1] in names), "undeclared")


def import_graph(root: Path) -> dict[str, set[tuple[str, int]]]:
    """Module -> (imported ttskiln module, line) for every ``.py`` file under ``root``."""
    graph: dict[str, set[tuple[str, int]]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        package = module if is_package else module.rpartition(".")[0]
        found: set[tuple[str, int]] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found.add((target, node.lineno))
                # ``from ttskiln import benchmark`` imports the module ttskiln.benchmark
                found.update((f"{target}.{alias.name}", node.lineno) for alias in node.names
                             if target == "ttskiln")
        graph[module] = {(name, line) for name, line in found if name.split(".")[0] == "ttskiln"}
    return graph


def violations(root: Path) -> list[str]:
    problems = []
    for module, imports in sorted(import_graph(root).items()):
        layer = _layer_of(module)
        for target, line in sorted(imports):
            other = _layer_of(target)
            if other is None or other == "undeclared":
                continue  # reported once below, for the module itself
            if layer == "families" and other == "stage":
                problems.append(f"{module}:{line}: a family module imports the stage module {target}")
            if layer == "bottom" and other != "bottom" and target != "ttskiln.families.base":
                problems.append(f"{module}:{line}: a bottom module imports {target} ({other} layer)")
    return problems


def test_every_top_level_module_names_its_layer():
    declared = [name for names in LAYERS.values() for name in names]
    assert len(declared) == len(set(declared)), "a module is in two layers"
    present = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert sorted(present - set(declared)) == [], "add these modules to ttskiln.LAYERS"
    assert sorted(set(declared) - present) == [], "ttskiln.LAYERS names modules that do not exist"


def test_families_import_no_stage_and_bottom_imports_only_bottom():
    assert violations(PACKAGE) == []


def test_the_check_finds_a_lazy_stage_import_in_a_family(tmp_path):
    copy = tmp_path / "ttskiln"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "families" / "vocos" / "late.py").write_text(
        "def f():\n    from ttskiln.benchmark import benchmark\n    from ...timing import time_calls\n"
    )
    (copy / "timing.py").write_text((copy / "timing.py").read_text() + "\nfrom . import validate\n")
    found = violations(copy)
    assert found == [
        "ttskiln.families.vocos.late:2: a family module imports the stage module ttskiln.benchmark",
        "ttskiln.timing:" + str(len((copy / "timing.py").read_text().splitlines()))
        + ": a bottom module imports ttskiln.validate (stage layer)",
    ]
