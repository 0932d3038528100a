"""Tests of epec/reformulation.py, scholtes.py, smoothing.py, penalty.py."""
from __future__ import annotations

import pyomo.environ as pyo
import pytest
from pyomo.mpec import Complementarity, complements

from epec import (FischerBurmeisterSmoothing, PenaltyMode, ReformulationError, ScholtesRelaxation,
                  make_mode)

MODES = [ScholtesRelaxation(), FischerBurmeisterSmoothing(), PenaltyMode()]


def _lcp():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=1.0)
    m.y = pyo.Var(initialize=1.0)
    m.c = Complementarity(expr=complements(m.x >= 0, m.y - 1 + m.x >= 0))
    m.e = pyo.Constraint(expr=m.x + m.y == 3)
    return m


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.kind)
def test_apply_clones_and_maps_back(mode):
    # Prepare
    m = _lcp()
    # Execute
    work, data = mode.apply(m)
    # Assert: the user's model is untouched, the clone's complementarity is deactivated
    assert work is not m
    assert m.c.active and not work.c.active
    assert len(data.pairs) == 1
    work.x.set_value(0.25)
    data.load()
    assert m.x.value == 0.25


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.kind)
def test_mode_rejects_equality_side(mode):
    m = pyo.ConcreteModel()
    m.x = pyo.Var()
    m.y = pyo.Var()
    m.c = Complementarity(expr=complements(m.x == 0, m.y >= 0))
    with pytest.raises(ReformulationError, match=type(mode).__name__):
        mode.apply(m)


def test_make_mode_accepts_strings_and_rejects_unknown():
    assert isinstance(make_mode("smoothing"), FischerBurmeisterSmoothing)
    with pytest.raises(ValueError, match="mode"):
        make_mode("big-m")


@pytest.mark.parametrize("bad", [dict(eps_start=-1.0), dict(factor=2.0), dict(eps_end=1.0, eps_start=0.1)])
def test_scholtes_validates(bad):
    with pytest.raises(ValueError):
        ScholtesRelaxation(**bad)


def test_schedules_reach_their_end():
    assert ScholtesRelaxation().schedule(False)[-1] == pytest.approx(1e-9)
    assert ScholtesRelaxation().schedule(True) == [pytest.approx(1e-9)]
    assert FischerBurmeisterSmoothing().schedule(False)[-1] == pytest.approx(1e-6)
    assert PenaltyMode().schedule(False)[0] == 1.0
