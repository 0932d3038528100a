"""The implicit leader step of epec/leader_steps.py: box halving around a trial point without a follower
response, and Anderson acceleration of the diagonalisation."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

import epec.leader_steps as G
from epec.game import Game, make_solver
from epec import CertificateOptions, GameStatus, solve_epec
from epec.kkt import player_objective, player_variables
from epec.modes import make_mode
from tests.epec import problems as P


def _capped_follower(utility: str = "quadratic", n_x: int = 1) -> pyo.ConcreteModel:
    """Leader ``x in [0, 2]^n_x``; the follower ``min (y - 0.1)^2`` s.t. ``y >= 0, y + x_0 <= 0.8``
    has no feasible point (no response) for ``x_0 > 0.8``. ``y(x) = 0.1`` up to ``x_0 = 0.7`` and
    ``0.8 - x_0`` after. ``utility="quadratic"``: the leader maximises
    ``-sum_k (x_k - 0.6)^2 + y``, optimum ``x = 0.6``, ``V = 0.1``. ``"kink"`` (one decision):
    ``x + 2 y``, slope 1 then -1, optimum at the kink ``x = 0.7``, ``V = 0.9``."""
    m = pyo.ConcreteModel()
    m.leader = pyo.Block()
    m.follower = pyo.Block()
    m.leader.x = pyo.Var(range(n_x), bounds=(0, 2), initialize=0.0)
    m.follower.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.1)
    m.follower.cap = pyo.Constraint(expr=m.follower.y + m.leader.x[0] <= 0.8)
    m.follower.cost = pyo.Objective(expr=(m.follower.y - 0.1) ** 2)
    if utility == "kink":
        v = m.leader.x[0] + 2 * m.follower.y
    else:
        v = -sum((m.leader.x[k] - 0.6) ** 2 for k in range(n_x)) + m.follower.y
    m.leader.v = pyo.Objective(expr=v, sense=pyo.maximize)
    return m


def _step_recording_trials(m: pyo.ConcreteModel) -> tuple:
    """One implicit step of the leader from ``x = 0``, with the trial points (x_0, response ok)."""
    game = Game(m, [m.follower], [("leader", player_variables(m.leader), player_objective(m.leader))],
                  make_mode("smoothing"), make_solver(None, None), True)
    first, state = G.implicit_response(game, None, None, cold=True)
    resp = game.response
    solve = resp.solve
    tried: list[tuple[float, bool]] = []

    def recorded(z0, y, p=None, **kw):  # the real solve, its trial points recorded
        r = solve(z0, y, p, **kw)
        tried.append((float(y[resp.leader_pos[0]][0]), r.ok))
        return r

    resp.solve = recorded
    x, st, run, pg = G.implicit_step(game, 0, state)
    assert first.ok
    return x, st, run, pg, tried, resp


@pytest.mark.parametrize("utility, n_x, x_opt, v_opt, v_tol", [
    # the scalar ascent: expands towards the bound, backs off, brackets the kink (smoothed by the
    # KKT system's mu: V there is off by O(mu), lambda * slack = mu^2 gives y = 0.1 - O(mu))
    ("kink", 1, [0.7], 0.9, 1e-7),
    ("quadratic", 2, [0.6, 0.6], 0.1, 1e-8),  # L-BFGS-B: halves the box around the failed trial point
])
def test_implicit_step_backs_off_from_a_point_without_response(utility, n_x, x_opt, v_opt, v_tol):
    # Prepare
    m = _capped_follower(utility, n_x)
    # Execute
    x, st, run, pg, tried, resp = _step_recording_trials(m)
    # Assert
    assert any(t > 0.8 and not ok for t, ok in tried)  # a trial point had no response...
    assert x == pytest.approx(x_opt, abs=1e-8)  # ...and the step still found the optimum
    assert run.ok and run.message.startswith("implicit")
    assert pg <= 1e-6
    assert float(resp.utilities(st.z, st.y, st.p)[0]) == pytest.approx(v_opt, abs=v_tol)


def test_scalar_step_takes_the_newton_step_of_a_quadratic():
    # Prepare: V = -(x - 0.6)^2 + 0.1 near x = 0 (the follower's cap is not reached)
    m = _capped_follower("quadratic", 1)
    # Execute
    x, st, run, pg, tried, _ = _step_recording_trials(m)
    # Assert: start, probe, then the exact Newton step from the secant curvature (and maybe one
    # more point to confirm); no trial point beyond the cap
    assert x[0] == pytest.approx(0.6, abs=1e-10)
    assert len({t for t, _ in tried}) <= 4
    assert all(ok for _, ok in tried)
    assert pg <= 1e-10


def test_certificate_counts_failed_responses_and_covers_the_rest():
    # Prepare
    m = _capped_follower()
    # Execute
    res = solve_epec(m, [m.leader], [m.follower], mode="smoothing",
                     certificate=CertificateOptions(grid=21, starts=2))
    # Assert
    assert res.ok, res.message
    assert all(not h.accelerated and np.isfinite(h.stationarity) for h in res.history)  # implicit steps
    assert m.leader.x[0].value == pytest.approx(0.6, abs=1e-6)
    cert = res.certificate
    # grid points with x > 0.8 have no follower response: counted, not hidden
    assert 0 < cert.failed_evaluations < cert.evaluations
    assert cert.max_deviation_gain <= 1e-8


@pytest.mark.parametrize("method", ["gauss-seidel", "jacobi"])
def test_anderson_acceleration_reaches_the_same_point(method):
    # Prepare
    plain, fast = P.multi_leader_cournot(), P.multi_leader_cournot()
    # Execute
    r0 = solve_epec(plain, [plain.leader], [plain.follower], method=method, tol=1e-9, certify=False)
    r1 = solve_epec(fast, [fast.leader], [fast.follower], method=method, tol=1e-9, certify=False, acceleration=2)
    # Assert
    assert r0.status is r1.status is GameStatus.UNCERTIFIED, (r0.message, r1.message)
    assert any(h.accelerated for h in r1.history)
    for i in range(P.ML):
        assert fast.leader[i].x.value == pytest.approx(P.MULTI_LEADER.expected[f"leader[{i}].x"], abs=1e-6)
        assert fast.leader[i].x.value == pytest.approx(plain.leader[i].x.value, abs=1e-6)
    assert r1.sweeps <= r0.sweeps


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_acceleration_validated(bad):
    m = P.multi_leader_cournot()
    with pytest.raises(ValueError, match="acceleration"):
        solve_epec(m, [m.leader], [m.follower], acceleration=bad)
