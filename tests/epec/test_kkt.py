"""Tests of epec/kkt.py: KKT rows against hand-derived conditions, lifting."""
from __future__ import annotations

import pyomo.environ as pyo
import pytest
from pyomo.core.expr.visitor import identify_variables

from epec import KKTError, kkt, solve_nash
from tests.epec.problems import tullock


def _player(sense):
    m = pyo.ConcreteModel()
    m.p = pyo.Block()
    b = m.p
    b.x = pyo.Var(bounds=(0, 3), initialize=0.7)
    b.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.4)
    b.z = pyo.Var(initialize=0.2)
    m.a = pyo.Var(initialize=2.0)  # not on the player's block: a parameter
    b.obj = pyo.Objective(expr=(b.x - m.a) ** 2 + b.x * b.y + 0.5 * b.z ** 2, sense=sense)
    b.eq = pyo.Constraint(expr=b.x + 2 * b.y + b.z == 2)
    b.le = pyo.Constraint(expr=b.x - b.y <= 1)
    b.ge = pyo.Constraint(expr=b.x * b.y >= 0.1)
    b.rng = pyo.Constraint(expr=pyo.inequality(-1, b.y - b.z, 4))
    return m


@pytest.mark.parametrize("sense, s", [(pyo.minimize, 1.0), (pyo.maximize, -1.0)])
def test_kkt_rows_match_hand_derivation(sense, s):
    # Prepare
    m = _player(sense)
    b = m.p
    # Execute
    sys_ = kkt(b)
    mu = list(sys_.block.mu.values())
    lam = list(sys_.block.lam.values())
    values = [0.3, 0.5, 0.7, 0.11, 0.13, 0.17, 0.19, 0.23, 0.29]  # mu, then lam in creation order
    mu[0].set_value(values[0])
    for v, val in zip(lam, values[1:]):
        v.set_value(val)
    # constraints come sorted by name: eq, ge, le, rng
    l_ge, l_le, l_rlo, l_rup, n_xlo, n_xup, n_ylo = (v.value for v in lam)
    x, y, z, a, mu0 = b.x.value, b.y.value, b.z.value, m.a.value, values[0]
    rows = [pyo.value(c.body) for c in sys_.block.stationarity.values()]
    # Assert: grad(s f) + mu grad h + lam_le grad g_le - lam_ge grad g_ge - lam_lo grad r + lam_up grad r - nu_lb + nu_ub
    want_x = s * (2 * (x - a) + y) + mu0 + l_le - l_ge * y - n_xlo + n_xup
    want_y = s * x + 2 * mu0 - l_le - l_ge * x - l_rlo + l_rup - n_ylo
    want_z = s * z + mu0 + l_rlo - l_rup
    assert [v.name for v in sys_.variables] == ["p.x", "p.y", "p.z"]
    assert rows == pytest.approx([want_x, want_y, want_z], abs=1e-12)
    assert len(sys_.pairs) == 7
    assert len(sys_.equalities) == 1
    assert not b.obj.active and not b.le.active and b.eq.active


def test_kkt_complementarity_sides():
    # Prepare
    m = _player(pyo.minimize)
    # Execute
    sys_ = kkt(m.p)
    # Assert: slack values of the pairs at the initial point (ge, le, range lo, range up, x lb, x ub, y lb)
    x, y, z = 0.7, 0.4, 0.2
    slacks = [pyo.value(bb) for _, bb in sys_.pairs]
    assert slacks == pytest.approx([x * y - 0.1, 1 - (x - y), (y - z) + 1, 4 - (y - z), x, 3 - x, y])
    assert len(list(sys_.block.complementarity.values())) == 7


def test_kkt_rejects_player_without_objective():
    m = pyo.ConcreteModel()
    m.p = pyo.Block()
    m.p.x = pyo.Var()
    with pytest.raises(KKTError, match="Objective"):
        kkt(m.p)


def test_lifting_keeps_rows_sparse():
    # Prepare
    n = 6
    m_lift, m_dense = tullock(n), tullock(n)
    # Execute
    k_lift = kkt(m_lift.p[0], lift=True)
    k_dense = kkt(m_dense.p[0], lift=False)
    # Assert: the lifted row touches x_0 and s only; the unlifted row all n players
    lift_vars = {v.name for v in identify_variables(k_lift.block.stationarity[0].body)}
    dense_vars = {v.name for v in identify_variables(k_dense.block.stationarity[0].body)}
    assert {v for v in lift_vars if v.startswith("p[")} == {"p[0].x"}
    assert any(v.startswith("_epec_aggregates") for v in lift_vars)
    assert {f"p[{i}].x" for i in range(n)} <= dense_vars


def test_lifted_aggregate_shared_between_players():
    m = tullock(3)
    for i in range(3):
        kkt(m.p[i])
    assert len(m._epec_aggregates.s) == 1
    assert len(m._epec_aggregates.define) == 1


@pytest.mark.parametrize("mode", ["scholtes", "smoothing", "penalty"])
def test_lifted_and_unlifted_give_same_equilibrium(mode):
    # Prepare
    m1, m2 = tullock(5, 7.0), tullock(5, 7.0)
    # Execute
    r1 = solve_nash(m1, [m1.p], mode=mode, lift=True)
    r2 = solve_nash(m2, [m2.p], mode=mode, lift=False)
    # Assert
    assert r1.ok and r2.ok
    x1 = [m1.p[i].x.value for i in range(5)]
    x2 = [m2.p[i].x.value for i in range(5)]
    assert x1 == pytest.approx(x2, abs=1e-6)
    assert x1[0] == pytest.approx(7.0 * 4 / 25, abs=1e-5)
