"""The MetaTrading game solved through the public epec functions, checked independently in numpy."""
from __future__ import annotations

import numpy as np
import pytest

import epec
from models import preset
from models.equilibrium import follower_equilibrium, follower_kkt_residual, leader_deviation_gain
from models.game import allocations, build_game, rewards, set_rewards
from models.utility import msp_utilities

CERT = epec.CertificateOptions(grid=11, refine_iter=8, starts=2)


@pytest.fixture(scope="module")
def solved():
    """Each preset solved once (gauss-seidel, scholtes); the module's tests read the results."""
    out = {}
    for name in ("tiny", "default"):
        sc = preset(name)
        model = build_game(sc)
        res = epec.solve_epec(model, leaders=[model.msp], followers=[model.mu], method="gauss-seidel",
                              mode="scholtes", tol=1e-6, certify=True, certificate=CERT)
        out[name] = (sc, model, res)
    return out


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_epec_certificate_holds(solved, name):
    sc, model, res = solved[name]
    assert res.ok, res.message
    V = msp_utilities(sc, rewards(model), allocations(model))
    cert = res.certificate
    assert cert.max_deviation_gain <= 1e-4 * np.abs(V).max()
    assert cert.kkt_residual < 1e-3
    assert cert.follower_unique
    R = rewards(model)
    assert np.all(R > 0) and np.all(R < sc.Rmax)  # interior rewards


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_epec_followers_kkt_checked_in_numpy(solved, name):
    sc, model, res = solved[name]
    R, f = rewards(model), allocations(model)
    res_np = follower_kkt_residual(sc, R, f)
    assert res_np.max < 1e-3
    # And the point is the numpy solver's follower equilibrium at the same rewards.
    np.testing.assert_allclose(f, follower_equilibrium(sc, R).f, atol=1e-3)


def test_epec_no_profitable_deviation_in_numpy(solved):
    sc, model, _ = solved["default"]
    R = rewards(model)
    V = msp_utilities(sc, R, follower_equilibrium(sc, R).f)
    gains = leader_deviation_gain(sc, R, grid_points=61)
    assert gains.max() <= 1e-4 * np.abs(V).max()


@pytest.mark.parametrize("mode", ["scholtes", "smoothing", "penalty"])
def test_follower_nash_agrees_with_numpy(mode):
    # Prepare
    # A low reward for MSP 2 makes one MU skip it (f = 0) and 11 budgets bind: every complementarity regime.
    sc = preset("default")
    R = np.array([13.0, 9.0, 3.0])
    model = build_game(sc)
    set_rewards(model, R)
    for m in model.MSP:
        model.msp[m].R.fix()
    # Execute
    res = epec.solve_nash(model, players=[model.mu], mode=mode)
    # Assert
    assert res.ok, res.message
    f = allocations(model)
    ref = follower_equilibrium(sc, R).f
    assert (ref == 0).sum() >= 1 and (ref.sum(1) > sc.F - 1e-9).sum() >= 1
    np.testing.assert_allclose(f, ref, atol=1e-4)
    assert follower_kkt_residual(sc, R, f).max < 1e-3


def test_damped_jacobi_reaches_a_certified_point(solved):
    # tiny has a set of EPEC points (MU 2's budget is exactly at its kink over a range of rewards),
    # so Jacobi need not land on the Gauss-Seidel point: check its own certificate in numpy instead.
    sc, _, _ = solved["tiny"]
    model = build_game(sc)
    res = epec.solve_epec(model, leaders=[model.msp], followers=[model.mu], method="jacobi", damping=0.5,
                          tol=1e-6, certify=False)
    assert res.status is epec.GameStatus.UNCERTIFIED, res.message
    R = rewards(model)
    V = msp_utilities(sc, R, follower_equilibrium(sc, R).f)
    assert leader_deviation_gain(sc, R, grid_points=301).max() <= 1e-4 * np.abs(V).max()
