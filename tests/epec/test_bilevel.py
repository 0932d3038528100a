"""solve_bilevel on degenerate followers (issue 15, item 5): two follower constraints active at
once, where the Scholtes relaxation stalls above kkt_tol; the stalled point is polished."""
import pyomo.environ as pyo
import pytest

from epec import solve_bilevel


def budget_and_bound():
    """Follower ``min (y1 - x)^2 + (y2 - 1 + x)^2`` s.t. ``y1 + y2 <= 1``, ``y >= 0``; leader
    ``min x^2 + 10 y1`` over ``x in [-1, 1]``.

    Derivation (ours): for ``x in [0, 1]`` the unconstrained reply ``(x, 1 - x)`` meets the budget
    exactly (active with multiplier 0); for ``x < 0``, ``y1 = 0`` (bound) and ``y2 = 1`` (budget). So
    ``F = x^2 + 10 x`` on ``[0, 1]`` and ``x^2`` below: the solution is ``x = 0``, ``y = (0, 1)``,
    where the bound ``y1 >= 0`` and the budget are both active with zero multipliers (degenerate).
    """
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(-1, 1), initialize=0.5)
    m.F = pyo.Block()
    m.F.y = pyo.Var([1, 2], bounds=(0, None), initialize=0.3)
    m.F.budget = pyo.Constraint(expr=m.F.y[1] + m.F.y[2] <= 1)
    m.F.obj = pyo.Objective(expr=(m.F.y[1] - m.x) ** 2 + (m.F.y[2] - 1 + m.x) ** 2)
    m.obj = pyo.Objective(expr=m.x ** 2 + 10 * m.F.y[1])
    return m, (0.0, 0.0, 1.0)


def weakly_active_budget():
    """Follower ``min (y1 - x)^2 + (y2 - 1)^2`` s.t. ``y1 + y2 <= 1 + x``, ``y >= 0``; leader
    ``min (x - 0.2)^2 + (y1 + y2 - 1)^2`` over ``x in [-1, 1]``.

    Derivation (ours): for ``x >= 0`` the reply is ``(x, 1)``, its sum ``1 + x`` meets the budget
    with multiplier 0; the leader's ``(x - 0.2)^2 + x^2`` is least at ``x = 0.1``: ``y = (0.1, 1)``,
    budget active and degenerate there. (For ``x < 0``: ``y = (0, 1 + x)``, ``F >= 0.04 + x^2 > 0.02``.)
    """
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(-1, 1), initialize=0.5)
    m.F = pyo.Block()
    m.F.y = pyo.Var([1, 2], bounds=(0, None), initialize=0.3)
    m.F.budget = pyo.Constraint(expr=m.F.y[1] + m.F.y[2] <= 1 + m.x)
    m.F.obj = pyo.Objective(expr=(m.F.y[1] - m.x) ** 2 + (m.F.y[2] - 1) ** 2)
    m.obj = pyo.Objective(expr=(m.x - 0.2) ** 2 + (m.F.y[1] + m.F.y[2] - 1) ** 2)
    return m, (0.1, 0.1, 1.0)


@pytest.mark.parametrize("build", [budget_and_bound, weakly_active_budget])
@pytest.mark.parametrize("mode", ["scholtes", "smoothing"])
def test_degenerate_follower_certified(build, mode):
    """Before the polish the default scholtes mode refused both (KKT residual 5e-5 > kkt_tol,
    and a complementarity stall); smoothing certified them."""
    m, (x, y1, y2) = build()
    res = solve_bilevel(m, followers=[m.F], mode=mode)
    assert res.ok, res.message
    assert res.certificate.kkt_residual <= 1e-6
    # the leader's gain tolerance (1e-8 absolute) allows |dx| ~ 1e-4 at a quadratic minimum
    assert pyo.value(m.x) == pytest.approx(x, abs=2e-4)
    assert pyo.value(m.F.y[1]) == pytest.approx(y1, abs=2e-4)
    assert pyo.value(m.F.y[2]) == pytest.approx(y2, abs=2e-4)


def test_indifferent_follower_at_a_deviation_is_seen_optimistically():
    """Lucchetti, Mignanego & Pieri (1987), Example 4.1 (BASBLib lmp_1987_01): for x < 1 the
    follower's reply is y = 1 and F = 0.5 + 0.5 x; at x = 1 every y is a best reply and the
    optimistic one, y = 0, gives F = 0. x = 0 (unique reply, F = 0.5) is not the optimistic
    optimum, and x = 1 has no unique reply: never ok (issue 15: it was ok at x = 0)."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1))
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(0, 1))
    m.F.obj = pyo.Objective(expr=(m.x - 1) * m.F.y, sense=pyo.minimize)
    m.obj = pyo.Objective(expr=0.5 * (1 - m.x) + m.x * m.F.y, sense=pyo.minimize)
    # Execute
    r = solve_bilevel(m, followers=[m.F])
    # Assert: refused, and for the follower's non-unique reply (the cause), not a leader's gain
    assert not r.ok
    assert "not unique" in r.message
