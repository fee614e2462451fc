"""Backends name no family: the contract that keeps families x backends from multiplying."""

from __future__ import annotations

import ast
import pathlib

import emix.backends

BACKENDS = pathlib.Path(emix.backends.__file__).parent


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def test_no_backend_file_imports_a_family_or_a_model():
    files = sorted(BACKENDS.glob("*.py"))
    assert len(files) >= 4
    for f in files:
        for name in _imports(f):
            parts = name.lstrip(".").split(".")
            assert "families" not in parts and "models" not in parts, f"{f.name} imports {name}"


def test_both_backends_offer_the_same_ops():
    from emix.backends.numpy_backend import NumpyOps

    torch_backend = BACKENDS / "torch_backend.py"
    tree = ast.parse(torch_backend.read_text())
    torch_ops = next(
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "TorchOps"
    )
    torch_methods = {n.name for n in torch_ops.body if isinstance(n, ast.FunctionDef)}
    numpy_methods = {n for n in vars(NumpyOps) if callable(getattr(NumpyOps, n)) and not n.startswith("__")}
    assert numpy_methods <= torch_methods | {"_dt"}, numpy_methods - torch_methods
