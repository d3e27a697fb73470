"""The library's shape: every api function has one typed result, takes no ``cfg: Any``,
and prints nothing (the CLI prints)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from hpcbridge import api

API_DIR = Path(api.__file__).parent


def functions() -> list[str]:
    return [n for n in api.__all__ if inspect.isfunction(getattr(api, n))]


def test_every_function_has_one_typed_result() -> None:
    assert len(functions()) >= 20
    for name in functions():
        sig = inspect.signature(getattr(api, name))
        ret = str(sig.return_annotation)  # annotations are strings here (PEP 563)
        assert ret not in ("", "Any", "None", str(inspect.Signature.empty)), name
        assert "Union" not in ret and "|" not in ret and "Optional" not in ret, f"{name} -> {ret}"
        assert not ret.startswith("dict"), f"{name} returns a plain {ret}"
        for param in sig.parameters.values():
            assert param.annotation != "Any", f"{name}({param.name}: Any)"
        assert "cfg" not in sig.parameters, name


def test_the_library_prints_nothing() -> None:
    for path in sorted(API_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path.name}:{node.lineno} prints"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names]
                module = getattr(node, "module", None) or ""
                assert "click" not in names and not module.startswith("click"), path.name
