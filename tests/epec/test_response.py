"""Tests of epec/response.py: the Newton follower response against Ipopt's, and its sensitivities."""
from __future__ import annotations

import numpy as np
import pytest

from epec.game import Game, make_solver as _make_solver
from epec.kkt import player_objective, player_variables
from epec.modes import make_mode
from epec.response import FollowerResponse
from tests.epec import problems as P


def _game(n_mu, n_msp, mode="smoothing"):
    m = P.proportional_share(n_mu, n_msp)
    specs = [(b.name, player_variables(b), player_objective(b)) for b in m.msp.values()]
    return Game(m, list(m.mu.values()), specs, make_mode(mode), _make_solver(None, None), True)


@pytest.mark.parametrize("mode", ["smoothing", "scholtes"])
def test_newton_response_agrees_with_ipopt(mode):
    # Prepare
    game = _game(20, 3, mode)
    resp = FollowerResponse(game.kkts, [ld.vars for ld in game.leaders], [ld.objective for ld in game.leaders])
    z0, y0 = resp.read()
    # Execute
    r = resp.solve(z0, y0, cold=True)
    assert game.respond(None, warm=False).ok
    z_ipopt = resp.read()[0]
    # Assert
    assert r.ok and r.residual < 1e-6
    k = resp.n_primal
    np.testing.assert_allclose(r.z[:k], z_ipopt[:k], atol=1e-6)


def test_utility_gradient_matches_finite_difference():
    # Prepare
    game = _game(8, 2)
    resp = FollowerResponse(game.kkts, [ld.vars for ld in game.leaders], [ld.objective for ld in game.leaders])
    z0, y0 = resp.read()
    x = [np.array([20.0]), np.array([30.0])]
    y = resp.inputs_at(y0, x)
    base = resp.solve(z0, y, cold=True, sensitivity=True)
    # Execute
    v, g = resp.utility_gradient(1, base, y)
    h = 1e-6
    yh = resp.inputs_at(y0, [x[0], x[1] + h])
    vh = resp.utilities(resp.solve(base.z, yh).z, yh)[1]
    # Assert
    assert base.ok
    assert g[0] == pytest.approx((vh - v) / h, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("perturb", [0.0, 0.3])
def test_compiled_kkt_residual_matches_pyomo(perturb):
    # Prepare: the followers' equilibrium, then (perturb > 0) a point off it
    game = _game(6, 2)
    resp = game.response
    z0, y0 = resp.read()
    r = resp.solve(z0, y0, cold=True)
    z = r.z + perturb * np.random.default_rng(0).normal(size=r.z.size)
    resp.load(z)
    # Execute
    compiled = resp.kkt_residual(z, y0)
    pyomo = game.residual_pyomo()
    # Assert
    assert r.ok
    for part in ("stationarity", "feasibility", "complementarity"):
        assert getattr(compiled, part) == pytest.approx(getattr(pyomo, part), rel=1e-9, abs=1e-12)
    assert (compiled.max > 1e-2) == (perturb > 0)
    assert game.residual() == compiled  # what results report when the Newton response exists


@pytest.mark.parametrize("bad", [dict(warm_max_iter=0), dict(warm_max_iter=2.5), dict(max_iter=0), dict(mu=-1.0)])
def test_response_options_validated(bad):
    from epec.response import ResponseOptions

    with pytest.raises(ValueError, match=next(iter(bad))):
        ResponseOptions(**bad)


@pytest.mark.parametrize("pass_fx", [False, True])
def test_gradient_from_a_solved_start_matches_the_cold_one(pass_fx):
    # Prepare: a solved point, then a warm re-solve from it (whose forced Newton step is at
    # rounding level, so the factorisation of that step stands for the solution's)
    game = _game(8, 2)
    resp = FollowerResponse(game.kkts, [ld.vars for ld in game.leaders], [ld.objective for ld in game.leaders])
    z0, y0 = resp.read()
    y = resp.inputs_at(y0, [np.array([20.0]), np.array([30.0])])
    p = resp.system.read_params()
    cold = resp.solve(z0, y, p, cold=True, sensitivity=True)
    fx = resp.system.input_jacobian(cold.z, y, p, resp.options.mu)[:, resp.leader_pos[1]] if pass_fx else None
    # Execute
    warm = resp.solve(cold.z, y, p, sensitivity=True)
    v_cold, g_cold = resp.utility_gradient(1, cold, y, p)
    v_warm, g_warm = resp.utility_gradient(1, warm, y, p, Fx=fx)
    # Assert
    assert cold.ok and warm.ok and warm.iterations == 1 and warm.lu is not None
    assert v_warm == pytest.approx(v_cold, rel=1e-12)
    np.testing.assert_allclose(g_warm, g_cold, rtol=1e-8)


def test_first_order_predictor_starts_closer_than_the_last_solution():
    # Prepare: the response at x and its tangent dz/dx_1 = -(dF/dz)^-1 dF/dx_1
    game = _game(8, 2)
    resp = FollowerResponse(game.kkts, [ld.vars for ld in game.leaders], [ld.objective for ld in game.leaders])
    z0, y0 = resp.read()
    p = resp.system.read_params()
    y = resp.inputs_at(y0, [np.array([20.0]), np.array([30.0])])
    base = resp.solve(z0, y, p, cold=True, sensitivity=True)
    dx = np.array([0.5])
    y1 = resp.inputs_at(y0, [np.array([20.0]), np.array([30.5])])
    fx = resp.system.input_jacobian(base.z, y, p, resp.options.mu)[:, resp.leader_pos[1]]
    # Execute
    z_pred = base.z - base.lu.solve(fx @ dx)
    f_pred = np.max(np.abs(resp.system.residual(z_pred, y1, p, resp.options.mu)))
    f_last = np.max(np.abs(resp.system.residual(base.z, y1, p, resp.options.mu)))
    from_pred, from_last = resp.solve(z_pred, y1, p), resp.solve(base.z, y1, p)
    # Assert
    assert base.ok and from_pred.ok and from_last.ok
    assert f_pred < 0.1 * f_last
    np.testing.assert_allclose(from_pred.z, from_last.z, atol=1e-8)
