"""Tests of epec/constraints.py: leader constraints honoured by the solves and the certificate,
shared and coupling constraints refused, helper variables substituted or refused (issue 15)."""
from __future__ import annotations

import pyomo.environ as pyo
import pytest

from epec import GameStructureError, certify, solve_bilevel, solve_epec


def _capacity_game(cap: bool = True) -> pyo.ConcreteModel:
    """Issue 15, reproducer 1: firms A and B lead with capacity 5 each, firm F follows."""
    m = pyo.ConcreteModel()
    m.A, m.B, m.F = pyo.Block(), pyo.Block(), pyo.Block()
    for L in (m.A, m.B):
        L.q = pyo.Var(bounds=(0, 100))
        if cap:
            L.cap = pyo.Constraint(expr=L.q <= 5.0)
    m.F.q = pyo.Var(bounds=(0, 100))
    P = 100 - m.A.q - m.B.q - m.F.q
    m.A.obj = pyo.Objective(expr=(P - 10) * m.A.q, sense=pyo.maximize)
    m.B.obj = pyo.Objective(expr=(P - 20) * m.B.q, sense=pyo.maximize)
    m.F.obj = pyo.Objective(expr=(P - 30) * m.F.q - 0.5 * m.F.q ** 2, sense=pyo.maximize)
    return m


@pytest.mark.parametrize("leader_step", ["implicit", "full-space"])
def test_reproducer_1_capacities_are_kept(leader_step):
    # Derivation: the follower's best reply solves d/dqF [(70 - qA - qB - qF) qF - qF^2 / 2] = 0,
    # qF = (70 - qA - qB) / 3, so P = 100 - qA - qB - qF = (230 - 2 qA - 2 qB) / 3 and
    # V_A = (200 - 2 qA - 2 qB) qA / 3, V_B = (170 - 2 qA - 2 qB) qB / 3, both concave in the own q.
    # At qA = qB = 5: dV_A/dqA = (200 - 4 qA - 2 qB) / 3 = 170/3 > 0 and dV_B/dqB = (170 - 2 qA -
    # 4 qB) / 3 = 140/3 > 0, so each capacity binds: qA = qB = 5, qF = 20, P = 70, V_A = 300,
    # V_B = 250. (Without the capacities the toolkit answered qA = 38.33, qB = 23.33.)
    m = _capacity_game()
    r = solve_epec(m, leaders=[m.A, m.B], followers=[m.F], leader_step=leader_step)
    assert r.ok, r.message
    assert pyo.value(m.A.q) == pytest.approx(5.0, abs=1e-6)
    assert pyo.value(m.B.q) == pytest.approx(5.0, abs=1e-6)
    assert pyo.value(m.F.q) == pytest.approx(20.0, abs=1e-6)
    assert r.certificate.utilities == pytest.approx((300.0, 250.0), rel=1e-6)


def test_certify_refuses_a_point_that_breaks_a_leader_constraint():
    # Prepare: the unconstrained answer of the reproducer, qA = 115/3, qB = 70/3 (first-order
    # conditions 200 - 4 qA - 2 qB = 0 and 170 - 2 qA - 4 qB = 0), breaks both capacities
    m = _capacity_game()
    m.A.q.set_value(115.0 / 3.0)
    m.B.q.set_value(70.0 / 3.0)
    # Execute
    cert = certify(m, leaders=[m.A, m.B], followers=[m.F])
    # Assert: refused, and the first reasons name the broken constraints
    assert not cert.holds
    assert "A.cap" in cert.reasons[0] and "B.cap" in cert.reasons[1]


def _two_markets() -> pyo.ConcreteModel:
    """Leader A sells a1, a2 in two markets under a joint capacity a1 + a2 <= 20 (a general
    constraint: two decisions); leader B sells b in a third market under b^2 <= 36 (nonlinear).
    Market k's follower f_k has cost 30 and the quadratic term f_k^2 / 2."""
    m = pyo.ConcreteModel()
    m.A, m.B = pyo.Block(), pyo.Block()
    m.A.a = pyo.Var([1, 2], bounds=(0, 100), initialize=1.0)
    m.A.cap = pyo.Constraint(expr=m.A.a[1] + m.A.a[2] <= 20.0)
    m.B.b = pyo.Var(bounds=(0, 100), initialize=1.0)
    m.B.cap = pyo.Constraint(expr=m.B.b ** 2 <= 36.0)
    m.F = pyo.Block([1, 2, 3])
    for k in (1, 2, 3):
        m.F[k].f = pyo.Var(bounds=(0, 100))
    P = {1: 100 - m.A.a[1] - m.F[1].f, 2: 80 - m.A.a[2] - m.F[2].f, 3: 100 - m.B.b - m.F[3].f}
    for k in (1, 2, 3):
        m.F[k].obj = pyo.Objective(expr=(P[k] - 30) * m.F[k].f - 0.5 * m.F[k].f ** 2, sense=pyo.maximize)
    m.A.obj = pyo.Objective(expr=(P[1] - 10) * m.A.a[1] + (P[2] - 10) * m.A.a[2], sense=pyo.maximize)
    m.B.obj = pyo.Objective(expr=(P[3] - 10) * m.B.b, sense=pyo.maximize)
    return m


@pytest.mark.parametrize("leader_step", ["implicit", "full-space"])
def test_general_leader_constraints_are_kept(leader_step):
    # Derivation: f_1 = (70 - a1) / 3, f_2 = (50 - a2) / 3, f_3 = (70 - b) / 3 (as in the
    # reproducer), so V_A = (200 - 2 a1) a1 / 3 + (160 - 2 a2) a2 / 3 and V_B = (200 - 2 b) b / 3.
    # Unconstrained A would sell 50 and 40. With a1 + a2 <= 20 binding, the marginals are equal:
    # 200 - 4 a1 = 160 - 4 a2, so a1 = 15, a2 = 5 (multiplier 140/3 > 0). B's V_B increases up to
    # b = 50, so b^2 <= 36 binds: b = 6.
    m = _two_markets()
    r = solve_epec(m, leaders=[m.A, m.B], followers=[m.F], leader_step=leader_step)
    assert r.ok, r.message
    assert pyo.value(m.A.a[1]) == pytest.approx(15.0, abs=1e-5)
    assert pyo.value(m.A.a[2]) == pytest.approx(5.0, abs=1e-5)
    assert pyo.value(m.B.b) == pytest.approx(6.0, abs=1e-5)
    assert pyo.value(m.F[1].f) == pytest.approx(55.0 / 3.0, abs=1e-5)


def test_certificate_scan_stays_inside_a_general_constraint():
    # Prepare: the equilibrium of _two_markets; unconstrained deviations (a1 = 50, b = 50) pay
    m = _two_markets()
    m.A.a[1].set_value(15.0)
    m.A.a[2].set_value(5.0)
    m.B.b.set_value(6.0)
    # Execute
    cert = certify(m, leaders=[m.A, m.B], followers=[m.F])
    # Assert: certified; every best deviation keeps its leader's constraints
    assert cert.holds, cert.reasons
    a1, a2 = cert.best_deviations[0]
    assert a1 + a2 <= 20.0 + 1e-9
    assert cert.best_deviations[1][0] ** 2 <= 36.0 + 1e-9


def test_bilevel_leader_constraint_is_kept_by_the_certificate():
    # Issue 15: a leader constraint G(x) <= 0 of solve_bilevel was ignored by the deviation scan.
    # The follower's reply to x is y = x, so the leader minimises 2 (x - 5)^2 over x^2 <= 9: x = 3.
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 10), initialize=1.0)
    m.g = pyo.Constraint(expr=m.x ** 2 <= 9.0)
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-20, 20), initialize=0.0)
    m.F.obj = pyo.Objective(expr=(m.F.y - m.x) ** 2)
    m.obj = pyo.Objective(expr=(m.x - 5) ** 2 + (m.F.y - 5) ** 2)
    r = solve_bilevel(m, followers=[m.F])
    assert r.ok, r.message
    assert pyo.value(m.x) == pytest.approx(3.0, abs=1e-5)
    assert pyo.value(m.F.y) == pytest.approx(3.0, abs=1e-5)


def test_shared_constraint_is_refused_naming_it():
    m = _capacity_game(cap=False)
    m.joint = pyo.Constraint(expr=m.A.q + m.B.q <= 8.0)
    with pytest.raises(GameStructureError, match=r"constraint joint couples the decisions of leaders A and B"):
        solve_epec(m, leaders=[m.A, m.B], followers=[m.F])


def test_coupling_constraint_is_refused_naming_it():
    m = _capacity_game(cap=False)
    m.A.share = pyo.Constraint(expr=m.A.q - m.F.q <= 10.0)
    with pytest.raises(GameStructureError, match=r"constraint A.share involves leader A's decisions and the follower variable F.q"):
        solve_epec(m, leaders=[m.A, m.B], followers=[m.F])


def _priced_game() -> pyo.ConcreteModel:
    """The capacity game with the price as a model-level Var p == 100 - Q, Q a second helper."""
    m = _capacity_game()
    m.Q = pyo.Var(initialize=0.0)
    m.p = pyo.Var(initialize=0.0)
    m.total = pyo.Constraint(expr=m.Q == m.A.q + m.B.q + m.F.q)
    m.price = pyo.Constraint(expr=m.p + m.Q == 100)
    for L, c in ((m.A, 10), (m.B, 20)):
        L.obj.set_value((m.p - c) * L.q)
    m.F.obj.set_value((m.p - 30) * m.F.q - 0.5 * m.F.q ** 2)
    return m


def test_helper_variable_is_substituted():
    # Issue 15: p was held fixed as a parameter and the run ended solver_failed INFEASIBLE. With
    # p == 100 - Q and Q == qA + qB + qF substituted, the game is reproducer 1's (qA = qB = 5,
    # qF = 20) and p, Q are written back: p = 70, Q = 30.
    m = _priced_game()
    r = solve_epec(m, leaders=[m.A, m.B], followers=[m.F])
    assert r.ok, r.message
    assert (pyo.value(m.A.q), pyo.value(m.B.q), pyo.value(m.F.q)) == pytest.approx((5.0, 5.0, 20.0), abs=1e-6)
    assert pyo.value(m.p) == pytest.approx(70.0, abs=1e-6)
    assert pyo.value(m.Q) == pytest.approx(30.0, abs=1e-6)
    assert not m.p.fixed and m.price.active  # the user's model keeps its structure


def test_helper_variable_without_definition_is_refused_naming_it():
    m = _capacity_game()
    m.p = pyo.Var(initialize=0.0)
    m.floor = pyo.Constraint(expr=m.p >= 100 - m.A.q - m.B.q - m.F.q)  # an inequality defines nothing
    for L, c in ((m.A, 10), (m.B, 20)):
        L.obj.set_value((m.p - c) * L.q)
    with pytest.raises(GameStructureError, match=r"Var p is declared on no leader's or follower's block, and constraint floor"):
        solve_epec(m, leaders=[m.A, m.B], followers=[m.F])


def test_bilevel_helper_defined_by_the_follower_is_substituted():
    # Stackelberg duopoly with the price as a Var p == 100 - x - y: the follower's best reply to
    # x is y = (100 - x - 10) / 2 = 45 - x / 2 (maximise (100 - x - y - 10) y), so the leader
    # maximises (p - 10) x = (45 - x / 2) x: x = 45, y = 22.5, p = 32.5 (Stackelberg 1934; a
    # textbook closed form, derived here).
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 100), initialize=10.0)
    m.p = pyo.Var(initialize=0.0)
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(0, 100), initialize=10.0)
    m.price = pyo.Constraint(expr=m.p == 100 - m.x - m.F.y)
    m.F.obj = pyo.Objective(expr=(m.p - 10) * m.F.y, sense=pyo.maximize)
    m.obj = pyo.Objective(expr=(m.p - 10) * m.x, sense=pyo.maximize)
    r = solve_bilevel(m, followers=[m.F])
    assert r.ok, r.message
    assert (pyo.value(m.x), pyo.value(m.F.y), pyo.value(m.p)) == pytest.approx((45.0, 22.5, 32.5), abs=1e-5)


def test_certificate_follows_a_binding_general_constraint():
    # Prepare: A at (10, 10), on its capacity a1 + a2 = 20 but not at its best reply (15, 5)
    # (see test_general_leader_constraints_are_kept); B at its equilibrium b = 6
    m = _two_markets()
    m.A.a[1].set_value(10.0)
    m.A.a[2].set_value(10.0)
    m.B.b.set_value(6.0)
    # Execute
    cert = certify(m, leaders=[m.A, m.B], followers=[m.F])
    # Assert: A's gain is exact, V_A(15, 5) - V_A(10, 10) = (2550 + 750 - 1800 - 1400) / 3 = 100/3,
    # found along the binding constraint (the grid's random lines cross it)
    assert not cert.holds and cert.profitable == (0,)
    assert cert.deviation_gains[0] == pytest.approx(100.0 / 3.0, rel=1e-7)
    assert cert.best_deviations[0] == pytest.approx((15.0, 5.0), abs=1e-5)


def test_bilevel_coupling_constraint_is_kept():
    # The follower's reply to x is y = x; the leader minimises (x - 5)^2 + (y - 5)^2 subject to
    # the upper-level constraint x + y <= 6 (it uses the follower's y): 2 x <= 6, so x = y = 3.
    # Without the constraint at the followers' response, the scan's x = 5 looks better.
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 10), initialize=1.0)
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-20, 20), initialize=0.0)
    m.F.obj = pyo.Objective(expr=(m.F.y - m.x) ** 2)
    m.G = pyo.Constraint(expr=m.x + m.F.y <= 6.0)
    m.obj = pyo.Objective(expr=(m.x - 5) ** 2 + (m.F.y - 5) ** 2)
    r = solve_bilevel(m, followers=[m.F])
    assert r.ok, r.message
    assert (pyo.value(m.x), pyo.value(m.F.y)) == pytest.approx((3.0, 3.0), abs=1e-5)
    assert r.certificate.best_deviations[0][0] <= 3.0 + 1e-6


def test_solve_epec_refuses_a_leader_constraint_on_a_follower_multiplier_by_name():
    """A leader's constraint that uses a follower's multiplier (epec.multiplier) is refused by
    solve_epec in one line naming the constraint and the follower constraint (issue 15)."""
    import pyomo.environ as pyo
    from epec import GameStructureError, multiplier, solve_epec

    m = pyo.ConcreteModel()
    m.A, m.B, m.F = pyo.Block(), pyo.Block(), pyo.Block()
    for L in (m.A, m.B):
        L.q = pyo.Var(bounds=(0, 100), initialize=10)
    m.F.d = pyo.Var(bounds=(0, 200), initialize=20)
    m.F.bal = pyo.Constraint(expr=m.F.d == m.A.q + m.B.q)
    m.F.obj = pyo.Objective(expr=100 * m.F.d - 0.5 * m.F.d ** 2, sense=pyo.maximize)
    p = multiplier(m.F.bal)
    m.A.obj = pyo.Objective(expr=(p - 10) * m.A.q, sense=pyo.maximize)
    m.B.obj = pyo.Objective(expr=(p - 20) * m.B.q, sense=pyo.maximize)
    m.A.cap = pyo.Constraint(expr=p <= 60)
    with pytest.raises(GameStructureError) as err:
        solve_epec(m, leaders=[m.A, m.B], followers=[m.F])
    msg = str(err.value)
    assert "\n" not in msg
    assert "A.cap" in msg and "F.bal" in msg and "epec.multiplier" in msg
