"""Backends are spelled in one place: the table in ``ttskiln.runners``.

Modules that write or read report rows (the families' chains, the chain stage, the report, the
ship policy, the row schema, validation, benchmarks) take a backend's label from the table, so
renaming a backend there renames it everywhere. The check reads string literals from the syntax
trees (docstrings and comments say what they like).
"""

from __future__ import annotations

import ast
from pathlib import Path

import ttskiln
from ttskiln.rows import REFERENCE_BACKEND
from ttskiln.runners import BACKENDS, TorchRunner, TrtllmRunner, TrtRunner, label

PACKAGE = Path(ttskiln.__file__).resolve().parent
#: Row-writing and row-reading modules outside the families package.
ROW_MODULES = ("chains", "report", "ship", "rows", "validate", "benchmark")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def spelled_labels(path: Path) -> list[str]:
    """``line: label`` for every string literal in ``path`` that is a backend label."""
    labels = {b.label for b in BACKENDS.values()}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [f"{node.lineno}: {node.value}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in labels
            and id(node) not in skip]


def test_row_modules_and_families_take_backend_labels_from_the_table():
    files = [PACKAGE / f"{name}.py" for name in ROW_MODULES] + sorted((PACKAGE / "families").rglob("*.py"))
    found = {str(p.relative_to(PACKAGE)): hits for p in files if (hits := spelled_labels(p))}
    assert found == {}


def test_the_check_finds_a_literal_label(tmp_path):
    bad = tmp_path / "chain.py"
    bad.write_text('"""Rows of backend onnxruntime-cpu."""\nBACKEND = "onnxruntime-cpu"\nX = "pytorch-eager"\n')
    assert spelled_labels(bad) == ["2: onnxruntime-cpu", "3: pytorch-eager"]


def test_reference_backend_and_runner_names_are_the_table_labels():
    assert REFERENCE_BACKEND == BACKENDS["torch"].label == label("pytorch")
    assert TorchRunner(lambda x: x, ["x"], ["y"]).name == label("torch")
    assert TrtRunner("engine.plan").name == label("trt")
    assert TrtllmRunner("engine", ["y"]).name == label("trtllm")
