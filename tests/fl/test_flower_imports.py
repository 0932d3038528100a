"""flwr is imported only under fl/flower/, and there only Flower's public API outside the version gate.

Read from the source (ast), so a lazy import inside a function counts as much as one at the top;
and checked in a fresh interpreter: importing the FL core loads no flwr.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "solvers", "epec", "drl", "fl", "benchmarks")
FLOWER = REPO / "fl" / "flower"


def flwr_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of ``flwr`` or a submodule in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "flwr"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "flwr":
            found.append((node.lineno, node.module))
    return found


def sources():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def test_flwr_is_imported_only_under_fl_flower():
    outside = [f"{p.relative_to(REPO)}:{line} imports {mod}" for p in sources() if FLOWER not in p.parents
               for line, mod in flwr_imports(p)]
    assert outside == []
    inside = [p for p in FLOWER.glob("*.py") if flwr_imports(p)]
    assert len(inside) >= 4  # the check looks at the right files: the App, records, strategy, simulation, ...


def test_flower_internals_go_through_the_gate():
    from fl.flower.gate import PUBLIC_MODULES

    # a direct import of anything else than the public API (or flwr itself, for its version, in the gate)
    direct = [f"{p.name}:{line} imports {mod}" for p in FLOWER.glob("*.py") for line, mod in flwr_imports(p)
              if mod not in PUBLIC_MODULES and not (p.name == "gate.py" and mod == "flwr")]
    assert direct == []
    # and the gate is what the worker, the launcher, the waits and the simulation driver call
    for name in ("worker.py", "supernode_launcher.py", "waits.py", "simulation.py"):
        assert "internal(" in (FLOWER / name).read_text(), name


def test_the_fl_core_imports_no_flwr():
    code = ("import sys; import fl, fl.data, fl.partition, fl.nets, fl.train, fl.aggregate, fl.trainer, fl.flower, "
            "fl.flower.runconfig, fl.flower.deployment; print('flwr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_gate_refuses_another_flower_release_with_the_public_way_out(monkeypatch):
    pytest.importorskip("flwr")
    import flwr

    from fl.flower import gate

    assert gate.matches() and gate.internal("flwr.supercore.run", what="x", instead="y") is not None
    monkeypatch.setattr(flwr, "__version__", "1.43.0")
    assert not gate.matches() and gate.optional("flwr.supercore.run") is None
    with pytest.raises(gate.FlowerVersionError, match=r"the simulation uses Flower 1\.42\.x internals .*this is "
                                                      r"Flower 1\.43\.0: use flwr run"):
        gate.internal("flwr.supercore.run", what="the simulation", instead="use flwr run")


def test_the_simulation_driver_refuses_another_flower_release_before_ray_starts(monkeypatch):
    pytest.importorskip("flwr")
    import flwr

    from fl.flower import gate
    from fl.flower.simulation import run_flower_simulation

    monkeypatch.setattr(flwr, "__version__", "2.0.0")
    with pytest.raises(gate.FlowerVersionError, match="metatrading fl-deploy"):
        run_flower_simulation({"rounds": 1})
