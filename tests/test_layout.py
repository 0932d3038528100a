"""The code's layout rules that a reader relies on (issue 19): no private name imported across
modules, Flower imported only under ``fl/flower/``, and no function over 100 lines."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("epec", "models", "solvers", "fl", "drl", "benchmarks")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            yield node, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            yield node, None, [a.name for a in node.names]


def test_no_private_name_is_imported_across_modules():
    # Prepare / Execute: every `from X import _name` in the package code
    found = [f"{p.relative_to(ROOT)}:{node.lineno} imports {name} from {mod or '.'}"
             for p in _modules() for node, mod, names in _imports(p) if mod is not None
             for name in names if name.startswith("_") and not name.startswith("__")]
    # Assert
    assert found == []


def test_flower_is_imported_only_under_fl_flower():
    flower = ROOT / "fl" / "flower"
    found = []
    for p in _modules():
        if flower in p.parents:
            continue
        for node, mod, names in _imports(p):
            targets = [mod] if mod is not None else names
            if any(t == "flwr" or t.startswith("flwr.") for t in targets):
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_no_function_is_over_100_lines():
    # Prepare / Execute: every function's length, docstring included (issue 19)
    found = [f"{p.relative_to(ROOT)}:{node.lineno} {node.name} {node.end_lineno - node.lineno + 1}"
             for p in _modules() for node in ast.walk(ast.parse(p.read_text(), filename=str(p)))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and node.end_lineno - node.lineno + 1 > 100]
    # Assert
    assert found == []
