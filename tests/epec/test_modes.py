"""Tests of epec/modes.py (the mode registry) and epec/checks.py: a user's own mode, registered
from outside the package, solves a game end to end and is offered by ``metatrading solve``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo
import pytest

import epec
from epec import MODES, Reformulation, check_positive, make_mode, register_mode, solve_nash
from epec.reformulation import geometric, implied_nonneg
from tests.epec import problems as P


@dataclass(frozen=True)
class ProductEquality(Reformulation):
    """``a, b >= 0, a b = eps`` with ``eps -> 0`` (a user's mode: the equality relaxation)."""

    eps_start: float = 1e-2
    eps_end: float = 1e-10
    comp_tol: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("eps_start", "eps_end", "comp_tol"):
            check_positive(name, getattr(self, name))

    def schedule(self, warm: bool) -> list[float]:
        values = geometric(self.eps_start, self.eps_end, 0.01)
        return values[-1:] if warm else values

    def _transform(self, block: Any, param: Any, a: Any, b: Any) -> None:
        for side in (a, b):
            if not implied_nonneg(side):
                block.cons.add(side >= 0)
        block.cons.add(a * b == param)


@pytest.fixture
def product_equality():
    register_mode("product-equality", ProductEquality, help="a b = eps, eps -> 0")
    yield "product-equality"
    MODES.pop("product-equality", None)


@pytest.mark.parametrize("prob", P.NASH_PROBLEMS, ids=repr)
def test_a_registered_mode_solves_a_nash_game(prob, product_equality):
    # Prepare
    m = prob.build()
    # Execute
    res = solve_nash(m, prob.players(m), mode=product_equality)
    # Assert: the user's mode ran (its name is the kind) and found the known equilibrium
    assert make_mode(product_equality).kind == "product-equality"
    assert res.ok, res.message
    assert max(abs(pyo.value(m.find_component(k)) - v) for k, v in prob.expected.items()) < prob.tol


def test_registry_refuses_bad_entries(product_equality):
    with pytest.raises(ValueError, match="already registered"):
        register_mode(product_equality, epec.ScholtesRelaxation)
    with pytest.raises(ValueError, match="not a subclass"):
        register_mode("mine", dict)
    with pytest.raises(ValueError, match="mode name"):
        register_mode("a,b", ProductEquality)
    with pytest.raises(ValueError, match="product-equality"):  # the message lists the registered ones
        make_mode("big-m")
    with pytest.raises(ValueError, match="eps_end"):
        ProductEquality(eps_end=0.0)
    assert list(MODES)[:3] == ["scholtes", "smoothing", "penalty"]


def test_the_mode_module_imports_no_mode():
    # the registry's module knows the base class only (no import circle through the modes)
    import ast
    import inspect

    import epec.modes
    import epec.reformulation

    for module in (epec.modes, epec.reformulation):
        tree = ast.parse(inspect.getsource(module))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"scholtes", "smoothing", "penalty"}, module.__name__


def test_a_plugin_mode_is_a_choice_of_solve(tmp_path, capsys):
    # Prepare: the user's module registers a Scholtes variant with a finer end
    from benchmarks.cli import main

    plugin = tmp_path / "my_modes.py"
    plugin.write_text(
        "from dataclasses import dataclass\n"
        "from epec import ScholtesRelaxation, register_mode\n\n"
        "@register_mode('scholtes-fine', help='Scholtes down to eps = 1e-11', replace=True)\n"
        "@dataclass(frozen=True)\n"
        "class FineScholtes(ScholtesRelaxation):\n"
        "    eps_end: float = 1e-11\n")
    try:
        # Execute
        rc_help = main(["--plugin", str(plugin), "solve", "--help"])
        shown = capsys.readouterr().out
        rc = main(["--plugin", str(plugin), "solve", "--scenario", "tiny", "--mode", "scholtes-fine",
                   "--grid", "5", "--starts", "0", "--out", str(tmp_path / "run"), "--quiet"])
        rc_bad = main(["solve", "--mode", "nope", "--out", str(tmp_path / "bad")])
    finally:
        MODES.pop("scholtes-fine", None)
    # Assert
    assert rc_help == 0 and "scholtes-fine: Scholtes down to eps = 1e-11" in " ".join(shown.split())
    assert rc == 0
    record = json.loads((tmp_path / "run" / "equilibrium.json").read_text())
    assert record["options"]["mode"] == "scholtes-fine"
    assert record["status"] == "converged"
    assert rc_bad == 2 and "--mode" in capsys.readouterr().err
