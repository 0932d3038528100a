"""Tests of epec/multipliers.py: a follower's constraint multiplier in leaders' objectives.

The sign convention (the shadow price ``d obj* / d bound``) is checked against finite differences
of the follower's optimal value; a bilevel monopsony and a two-node electricity market EPEC, both
with answers derived below, are solved through every path (implicit and full-space leader
steps, the certificate's deviations).
"""
from __future__ import annotations

import pyomo.environ as pyo
import pytest

import epec
from epec import MultiplierError, certify, kkt, multiplier, solve_bilevel, solve_epec, solve_nash

# --- the sign convention ------------------------------------------------------------------------

#: one follower constraint per kind, active at the follower's optimum (the unconstrained
#: optimum (3, 2) breaks it), with its bounds shifted by the mutable Param ``t``
CONSTRAINTS = {
    "equality": lambda b, t: b.y[1] + 2 * b.y[2] == 4 + t,
    "upper": lambda b, t: b.y[1] + b.y[2] <= 3 + t,
    "lower": lambda b, t: b.y[1] - b.y[2] >= 2 + t,
    "range, upper active": lambda b, t: pyo.inequality(-1 + t, b.y[1] + b.y[2], 3 + t),
    "range, lower active": lambda b, t: pyo.inequality(6 + t, b.y[1] + b.y[2], 9 + t),
}


def _follower(kind: str, sense, t: float) -> pyo.ConcreteModel:
    """``opt (+-)((y1 - 3)^2 + (y2 - 2)^2)`` subject to one constraint of ``kind`` shifted by ``t``."""
    m = pyo.ConcreteModel()
    m.t = pyo.Param(mutable=True, initialize=t)
    m.F = pyo.Block()
    m.F.y = pyo.Var([1, 2], initialize=0.0)
    s = 1.0 if sense == pyo.minimize else -1.0
    m.F.obj = pyo.Objective(expr=s * ((m.F.y[1] - 3) ** 2 + (m.F.y[2] - 2) ** 2), sense=sense)
    m.F.con = pyo.Constraint(expr=CONSTRAINTS[kind](m.F, m.t))
    return m


def _optimal_value(kind: str, sense, t: float) -> float:
    m = _follower(kind, sense, t)
    res = solve_nash(m, players=[m.F], mode="smoothing")
    assert res.ok, res.message
    return pyo.value(m.F.obj)


@pytest.mark.parametrize("sense", [pyo.minimize, pyo.maximize], ids=["min", "max"])
@pytest.mark.parametrize("kind", list(CONSTRAINTS))
def test_multiplier_is_the_shadow_price_of_the_bound(kind, sense):
    # Prepare
    m = _follower(kind, sense, 0.0)
    p = multiplier(m.F.con)
    h = 1e-3
    # Execute
    res = solve_nash(m, players=[m.F], mode="smoothing")
    fd = (_optimal_value(kind, sense, h) - _optimal_value(kind, sense, -h)) / (2 * h)
    # Assert: d obj* / d t (the values are quadratic in t: the central difference is exact)
    assert res.ok, res.message
    assert pyo.value(p) == pytest.approx(fd, abs=1e-5)
    assert abs(fd) > 0.1  # the constraint is active: a sign error could not pass


def test_multiplier_of_an_equality_has_the_derived_value():
    # Prepare: min (y1 - 3)^2 + (y2 - 2)^2 s.t. y1 + 2 y2 = 4 + t: the squared distance of (3, 2)
    # to the line, (3 + 4 - 4 - t)^2 / 5, so d obj*/dt = -2 (3 - t) / 5 = -1.2 at t = 0
    m = _follower("equality", pyo.minimize, 0.0)
    p = multiplier(m.F.con)
    # Execute
    res = solve_nash(m, players=[m.F])
    # Assert
    assert res.ok, res.message
    assert pyo.value(p) == pytest.approx(-1.2, abs=1e-6)


def test_kkt_binds_the_placeholder_to_its_constraint():
    # Prepare
    m = _follower("range, upper active", pyo.maximize, 0.0)
    p = multiplier(m.F.con)
    # Execute
    sys_ = kkt(m.F)
    lam_lo, lam_up = list(sys_.block.lam.values())[:2]  # the range's two sides, created first
    lam_lo.set_value(0.25)
    lam_up.set_value(1.5)
    p.set_value(1.0)
    # Assert: maximised, so p = lam_up - lam_lo; a p off its definition is a feasibility residual
    assert [(q is p, c is m.F.con) for q, c, _ in sys_.multipliers] == [(True, True)]
    assert not p.fixed
    assert sys_.residual().feasibility == pytest.approx(0.25, abs=1e-12)
    p.set_value(1.25)
    assert sys_.residual().feasibility == pytest.approx(0.0, abs=1e-12)


def test_multiplier_of_an_indexed_constraint_and_repeated_calls():
    # Prepare
    m = pyo.ConcreteModel()
    m.F = pyo.Block()
    m.F.y = pyo.Var([1, 2])
    m.F.c = pyo.Constraint([1, 2], rule=lambda b, i: b.y[i] == i)
    m.F.s = pyo.Constraint(expr=m.F.y[1] <= 5)
    # Execute
    both = multiplier(m.F.c)
    one = multiplier(m.F.c[2])
    scalar = multiplier(m.F.s)
    # Assert
    assert set(both) == {1, 2}
    assert one is both[2] and both[1] is not both[2]
    assert multiplier(m.F.s) is scalar
    assert scalar.parent_block() is m.component("_epec_multipliers")


def test_multiplier_of_a_clone_is_the_clone_s_own():
    # Prepare
    m = pyo.ConcreteModel()
    m.F = pyo.Block()
    m.F.y = pyo.Var()
    m.F.c = pyo.Constraint(expr=m.F.y == 1)
    p = multiplier(m.F.c)
    # Execute
    c = m.clone()
    q = multiplier(c.F.c)
    # Assert
    assert q is not p and q.model() is c
    assert len(list(c.component("_epec_multipliers").value.values())) == 1


def test_multiplier_refuses_what_is_not_a_constraint():
    # Prepare
    m = pyo.ConcreteModel()
    m.x = pyo.Var()
    # Execute / Assert
    with pytest.raises(TypeError, match="expected a Pyomo Constraint"):
        multiplier(m.x)


def _leader_and_follower() -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.L = pyo.Block()
    m.L.x = pyo.Var(bounds=(0, 10), initialize=1.0)
    m.L.cap = pyo.Constraint(expr=m.L.x <= 5)
    m.F = pyo.Block()
    m.F.y = pyo.Var(initialize=0.0)
    m.F.fit = pyo.Constraint(expr=m.F.y == m.L.x)
    m.F.obj = pyo.Objective(expr=m.F.y ** 2)
    return m


def test_a_leader_constraint_has_no_multiplier_to_bind():
    # Prepare
    m = _leader_and_follower()
    m.L.obj = pyo.Objective(expr=multiplier(m.L.cap) * m.L.x, sense=pyo.maximize)
    # Execute / Assert: refused before any work, naming the constraint
    with pytest.raises(MultiplierError, match=r"multiplier\(L\.cap\): L\.cap is not a constraint of a follower"):
        solve_epec(m, leaders=[m.L], followers=[m.F])


def test_a_deactivated_follower_constraint_has_no_multiplier():
    # Prepare
    m = _leader_and_follower()
    m.F.y.setlb(-1.0)
    m.obj = pyo.Objective(expr=multiplier(m.F.fit) + m.L.x, sense=pyo.maximize)
    m.F.fit.deactivate()
    # Execute / Assert
    with pytest.raises(MultiplierError, match=r"multiplier\(F\.fit\): F\.fit is deactivated"):
        solve_bilevel(m, followers=[m.F])


# --- a bilevel program: a monopsony buyer pays the suppliers' market price ------------------------
#
# Two competitive suppliers serve the leader's purchase x at least cost (the follower):
#     min_y  y1^2 / 2 + 3 y2^2 / 2   s.t.  y1 + y2 == x  (price p),  y >= 0.
# Its KKT conditions give y1 = p, y2 = p / 3, so p = 3 x / 4 = d cost* / d x, the multiplier of
# the balance (minimised, equality: d obj* / d bound). The leader, worth 10 x - x^2 / 2, pays p x:
#     max_x 10 x - x^2 / 2 - (3 x / 4) x  =>  10 - x - 3 x / 2 = 0,  x = 4,
# p = 3, y = (3, 1), leader utility 40 - 8 - 12 = 20 (concave in x on [0, 20]: the global maximum).


def _monopsony() -> tuple[pyo.ConcreteModel, object]:
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 20), initialize=1.0)
    m.supply = pyo.Block()
    m.supply.y = pyo.Var([1, 2], bounds=(0, None))
    m.supply.cost = pyo.Objective(expr=0.5 * m.supply.y[1] ** 2 + 1.5 * m.supply.y[2] ** 2)
    m.supply.balance = pyo.Constraint(expr=m.supply.y[1] + m.supply.y[2] == m.x)
    p = multiplier(m.supply.balance)
    m.surplus = pyo.Objective(expr=10 * m.x - 0.5 * m.x ** 2 - p * m.x, sense=pyo.maximize)
    return m, p


@pytest.mark.parametrize("mode", ["scholtes", "smoothing", "penalty"])
def test_bilevel_monopsony_pays_the_multiplier(mode):
    # Prepare
    m, p = _monopsony()
    # Execute
    res = solve_bilevel(m, followers=[m.supply], mode=mode)
    # Assert
    assert res.ok, res.message
    assert pyo.value(m.x) == pytest.approx(4.0, abs=1e-6)
    assert pyo.value(p) == pytest.approx(3.0, abs=1e-6)
    assert [pyo.value(m.supply.y[j]) for j in (1, 2)] == pytest.approx([3.0, 1.0], abs=1e-6)
    assert res.certificate.utilities[0] == pytest.approx(20.0, abs=1e-6)


def test_bilevel_leader_constraint_on_the_multiplier():
    # Prepare: a price cap p <= 2.4 binds (p = 3 x / 4 at x = 4): x = 3.2, utility
    # 32 - 5.12 - 7.68 = 19.2 (the surplus is concave: the cap's boundary is the maximum)
    m, p = _monopsony()
    m.price_cap = pyo.Constraint(expr=p <= 2.4)
    # Execute: the MPEC holds the cap (the certificate's deviations are issue 15's item 1)
    res = solve_bilevel(m, followers=[m.supply], certify=False)
    # Assert
    assert res.status is epec.GameStatus.UNCERTIFIED, res.message
    assert pyo.value(m.x) == pytest.approx(3.2, abs=1e-6)
    assert pyo.value(p) == pytest.approx(2.4, abs=1e-6)


# --- an EPEC: two generators paid the locational price of a two-node network ---------------------
#
# Cournot generators behind an ISO (Hobbs, IEEE Trans. Power Syst. 15, 2000; derived here). Node n
# has a generator selling q_n in [0, 100] (a leader) at unit cost c = (10, 40), and consumers
# worth A d - B d^2 / 2 (A = 100, B = 1). The ISO (the follower) dispatches demand d and the flow
# f from node 1 to node 2 over a line of capacity F = 5 to maximise welfare:
#     max_{d, f} sum_n A d_n - B d_n^2 / 2   s.t.  d_1 - q_1 + f == 0,  d_2 - q_2 - f == 0  (balance),
#                                                 -F <= f <= F  (line).
# Raising a balance's bound by t injects t more at that node: its multiplier is d W*/dt, the
# locational price p_n = A - B d_n; the line's is p_2 - p_1 (the congestion rent).
# Generator n maximises (p_n - c_n) q_n. With the line congested (f = F):
#     d_1 = q_1 - F,  d_2 = q_2 + F,  p_1 = A - B (q_1 - F),  p_2 = A - B (q_2 + F),
# two separate monopolies: q_1 = (A + B F - c_1) / (2B) = 47.5,  q_2 = (A - B F - c_2) / (2B) = 27.5;
# congested indeed: the unconstrained flow (q_1 - q_2) / 2 = 10 > F. Prices p = (57.5, 67.5), rent 10,
# profits 47.5 * 47.5 = 2256.25 and 27.5 * 27.5 = 756.25.
# No deviation pays. Generator 1's price is concave in q_1 (slope -B/2 while the line is free,
# -B once it is congested), so its profit is concave: the stationary point is its best reply.
# Generator 2 relieves congestion for q_2 >= q_1 - 2F = 37.5, where p_2 = A - B (q_1 + q_2) / 2 and
# its profit (36.25 - q_2 / 2) q_2 falls (its peak 36.25 lies below 37.5): at most 656.25 < 756.25.
# Below 0 flows reverse only for q_2 > q_1 + 2F, where p_2 < 40 = c_2: a loss.

A, B, F_LINE = 100.0, 1.0, 5.0
COST = {1: 10.0, 2: 40.0}
Q_STAR, P_STAR, RENT, PROFIT = (47.5, 27.5), (57.5, 67.5), 10.0, (2256.25, 756.25)


def _iso(m: pyo.ConcreteModel, q: dict, capacity: float) -> None:
    """The ISO block ``m.iso`` dispatching the generators' sales ``q[n]`` over a line of ``capacity``."""
    m.iso = pyo.Block()
    m.iso.d = pyo.Var([1, 2], initialize=10.0)
    m.iso.f = pyo.Var(initialize=0.0)
    injection = {1: -m.iso.f, 2: m.iso.f}
    m.iso.balance = pyo.Constraint([1, 2], rule=lambda b, n: b.d[n] - q[n] - injection[n] == 0)
    m.iso.line = pyo.Constraint(expr=pyo.inequality(-capacity, m.iso.f, capacity))
    m.iso.welfare = pyo.Objective(expr=sum(A * m.iso.d[n] - 0.5 * B * m.iso.d[n] ** 2 for n in (1, 2)),
                                  sense=pyo.maximize)


def _market() -> tuple[pyo.ConcreteModel, dict, object]:
    m = pyo.ConcreteModel()
    m.gen = pyo.Block([1, 2])
    for n in (1, 2):
        m.gen[n].q = pyo.Var(bounds=(0, 100), initialize=10.0)
    _iso(m, {n: m.gen[n].q for n in (1, 2)}, F_LINE)
    lmp = epec.multiplier(m.iso.balance)
    for n in (1, 2):
        m.gen[n].profit = pyo.Objective(expr=(lmp[n] - COST[n]) * m.gen[n].q, sense=pyo.maximize)
    return m, lmp, epec.multiplier(m.iso.line)


@pytest.mark.parametrize("leader_step", ["implicit", "full-space"])
def test_epec_two_node_market_pays_the_locational_prices(leader_step):
    # Prepare
    m, lmp, rent = _market()
    # Execute
    res = solve_epec(m, leaders=[m.gen], followers=[m.iso], leader_step=leader_step)
    # Assert
    assert res.ok, res.message
    assert [pyo.value(m.gen[n].q) for n in (1, 2)] == pytest.approx(Q_STAR, abs=1e-6)
    assert [pyo.value(lmp[n]) for n in (1, 2)] == pytest.approx(P_STAR, abs=1e-6)
    assert pyo.value(rent) == pytest.approx(RENT, abs=1e-6)
    assert pyo.value(m.iso.f) == pytest.approx(F_LINE, abs=1e-6)
    assert res.certificate.utilities == pytest.approx(PROFIT, abs=1e-5)
    # the implicit path differentiated through the multipliers: every leader step implicit (a
    # full-space fallback leaves an empty message), and the other path none
    implicit = [run.message.startswith("implicit") for run in res.homotopy if run.message != "newton"]
    assert implicit and all(implicit) if leader_step == "implicit" else not any(implicit)


def test_certificate_evaluates_deviations_at_the_multipliers_of_the_response():
    # Prepare: generator 1 at 40 (generator 2 at 27.5): congested, p_1 = 100 - (40 - 5) = 65,
    # profit 55 * 40 = 2200; its best reply 47.5 earns 2256.25, a gain of 56.25. Generator 2 now
    # frees the line from q_2 = 40 - 2F = 30 on, where p_2 = 80 - q_2 / 2 and its profit
    # (40 - q_2 / 2) q_2 peaks at q_2 = 40 with 800: a gain of 800 - 756.25 = 43.75
    m, lmp, _ = _market()
    m.gen[1].q.set_value(40.0)
    m.gen[2].q.set_value(Q_STAR[1])
    # Execute
    cert = certify(m, leaders=[m.gen], followers=[m.iso])
    # Assert
    assert not cert.holds
    assert cert.utilities == pytest.approx((2200.0, 27.5 * (100 - 32.5 - 40)), abs=1e-6)
    assert cert.deviation_gains[0] == pytest.approx(56.25, abs=1e-5)
    assert cert.best_deviations[0][0] == pytest.approx(47.5, abs=1e-3)
    assert cert.deviation_gains[1] == pytest.approx(43.75, abs=1e-5)
    assert cert.best_deviations[1][0] == pytest.approx(40.0, abs=1e-3)
    assert pyo.value(m.gen[1].q) == 40.0 and lmp[1].value is None  # certify leaves the model alone


def test_ipopt_certificate_evaluates_deviations_at_the_multipliers():
    # Prepare: the same point, certified with every follower response from Ipopt (the path taken
    # when the followers' KKT system does not compile to a square smooth system; forced here)
    from epec.certificate import certify_game
    from epec.game import leaders_game

    m, _, _ = _market()
    m.gen[1].q.set_value(40.0)
    m.gen[2].q.set_value(Q_STAR[1])
    game = leaders_game(m, [m.gen], [m.iso], "scholtes", None, None, True, epec.ResponseOptions())
    game._response_error = "forced: the Ipopt path"
    assert game.response is None and game.respond(None, warm=False).ok
    # Execute
    cert = certify_game(game, epec.CertificateOptions())
    # Assert: the gains derived in the test above
    assert cert.deviation_gains == pytest.approx((56.25, 43.75), abs=1e-5)
    assert cert.utilities == pytest.approx((2200.0, 756.25), abs=1e-5)


# One owner of both plants (two decisions: the implicit step's box ascent) over a line of
# capacity 50 (derived here). While the line is free the ISO equalises the prices,
# p_1 = p_2 = A - B Q / 2 (Q = q_1 + q_2, d_n = Q / 2, f = (q_1 - q_2) / 2), so the owner sells from
# the cheap plant only: max (A - B q_1 / 2 - c_1) q_1 gives q_1 = (A - c_1) / B = 90, q_2 = 0
# (its marginal revenue A - B Q - c_2 = -30 < 0), p = 55, f = 45 < 50, rent 0, profit 45 * 90 = 4050.
# The line binds only for |q_1 - q_2| >= 100, i.e. at (100, 0) (profit 40 * 100 = 4000) or (0, 100)
# (10 * 100 = 1000): (90, 0) is the global maximum.


def test_epec_one_owner_of_two_plants_box_ascent():
    # Prepare
    m = pyo.ConcreteModel()
    m.owner = pyo.Block()
    m.owner.q = pyo.Var([1, 2], bounds=(0, 100), initialize=10.0)
    _iso(m, {n: m.owner.q[n] for n in (1, 2)}, 50.0)
    lmp, rent = multiplier(m.iso.balance), multiplier(m.iso.line)
    m.owner.profit = pyo.Objective(expr=sum((lmp[n] - COST[n]) * m.owner.q[n] for n in (1, 2)),
                                   sense=pyo.maximize)
    # Execute
    res = solve_epec(m, leaders=[m.owner], followers=[m.iso])
    # Assert
    assert res.ok, res.message
    assert [pyo.value(m.owner.q[n]) for n in (1, 2)] == pytest.approx([90.0, 0.0], abs=1e-6)
    assert [pyo.value(lmp[n]) for n in (1, 2)] == pytest.approx([55.0, 55.0], abs=1e-6)
    assert pyo.value(rent) == pytest.approx(0.0, abs=1e-6)
    assert res.certificate.utilities[0] == pytest.approx(4050.0, abs=1e-5)
    assert any(run.message.startswith("implicit") and "scalar" not in run.message for run in res.homotopy)


def test_a_price_taking_follower_uses_another_follower_s_multiplier():
    # Prepare: the supplier serves the consumer's demand D at cost y^2 / 2, so the price is
    # d cost* / d D = y = D; the consumer, worth 10 D - D^2 / 2, takes the price as given:
    # 10 - D - p = 0. The competitive equilibrium: D = p = 5 (a monopsonist would buy 10 / 3).
    m = pyo.ConcreteModel()
    m.supplier, m.consumer = pyo.Block(), pyo.Block()
    m.supplier.y = pyo.Var(initialize=1.0)
    m.consumer.D = pyo.Var(bounds=(0, 20), initialize=1.0)
    m.supplier.cost = pyo.Objective(expr=0.5 * m.supplier.y ** 2)
    m.supplier.balance = pyo.Constraint(expr=m.supplier.y == m.consumer.D)
    p = multiplier(m.supplier.balance)
    m.consumer.surplus = pyo.Objective(expr=10 * m.consumer.D - 0.5 * m.consumer.D ** 2 - p * m.consumer.D,
                                       sense=pyo.maximize)
    # Execute
    res = solve_nash(m, players=[m.supplier, m.consumer])
    # Assert
    assert res.ok, res.message
    assert pyo.value(m.consumer.D) == pytest.approx(5.0, abs=1e-6)
    assert pyo.value(p) == pytest.approx(5.0, abs=1e-6)
