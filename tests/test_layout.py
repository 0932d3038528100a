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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports when it is imported (module-level statements only:
    an import inside a function runs later and makes no circle at import time)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def test_no_import_circle():
    # Prepare: the graph of module-level imports between the project's modules
    modules = {_module_name(p): p for p in _modules()}
    graph = {m: {t for t in _top_level_imports(p) if t in modules and t != m} for m, p in modules.items()}
    # Execute: a depth-first search for a back edge; a package's __init__ importing its own
    # submodules is how a package is made, not a circle
    circles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                if not any(a == b.rpartition(".")[0] or b == a.rpartition(".")[0] for a, b in zip(cycle, cycle[1:])):
                    circles.append(" -> ".join(cycle))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # Assert
    assert circles == []
