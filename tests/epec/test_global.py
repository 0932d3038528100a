"""Honest, global equilibria (epec/diagonalisation.py, epec/certificate.py): ``ok`` only when the
certificate holds; global moves out of a leader's local maximum; no pure equilibrium reported
with its evidence; no NaN reaches a search."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pyomo.environ as pyo
import pytest

from epec import (CertificateOptions, GameStatus, GlobalOptions, certify, solve_epec, solve_scenario)
from epec.deviation_scan import golden_max
from models import build_game, leader_deviation_gain, msp_utilities
from models.scenario import scenario_from_dict

#: the two reproducers of the issue: before, each "converged" with a leader that gains by deviating
TRAPPED = {
    "unit_price_8x6": {"n_mu": 8, "n_msp": 6, "seed": 3893, "mechanism": "unit_price", "L": 1,
                       "Rmax": [0.10890879970680446, 0.9970635097246182, 0.6214069178558589, 61.77287568379547,
                                0.349701012863344, 2.5552933173249417]},
    "proportional_2x6": {"n_mu": 2, "n_msp": 6, "seed": 8966, "mechanism": "proportional",
                         "eps0": 0.001235761890448768, "w_acc": 0.6910741548654888,
                         "w_amt": 0.14905672650581564, "w_val": 0.15986911862869552},
}


@pytest.fixture(scope="module", params=sorted(TRAPPED))
def trapped(request):
    sc = scenario_from_dict(TRAPPED[request.param])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NaN reaches numpy or scipy
        return sc, solve_scenario(sc, grid=21)


def test_reproducers_end_certified(trapped):
    # Prepare / Execute
    sc, sol = trapped
    res, cert = sol.result, sol.result.certificate
    # Assert: certified, and the certificate's verdict is the numbers' verdict
    assert res.ok and res.status is GameStatus.CONVERGED, res.message
    assert cert.holds and not cert.reasons and not cert.profitable
    assert max(cert.relative_gains) <= 1e-6
    assert cert.kkt_residual <= 1e-6 and cert.follower_unique
    # ... and the independent numpy check agrees: no MSP gains by deviating on a grid of its range
    V = msp_utilities(sc, sol.R, sol.f)
    gains = leader_deviation_gain(sc, sol.R, grid_points=81)
    assert np.all(gains <= 1e-4 * np.maximum(1.0, np.abs(V)))


def test_a_trapped_leader_is_moved_by_the_global_scan(trapped):
    # Prepare
    sc, sol = trapped
    # Assert: the run got out of at least one refuted point, and each move's leader had gained
    assert sol.result.moves
    for mv in sol.result.moves:
        assert mv.gains[mv.leader] > 1e-6 * max(1.0, abs(mv.utilities[mv.leader]))
        assert mv.best_deviations[mv.leader] != mv.decisions[mv.leader]


def test_without_global_moves_the_trap_is_not_certified():
    # Prepare: issue's first reproducer; MSP 3 sits at R = 0 where no MU comes, a larger R pays
    sc = scenario_from_dict(TRAPPED["unit_price_8x6"])
    # Execute
    sol = solve_scenario(sc, grid=21, global_search=GlobalOptions(moves=0, starts=0))
    res, cert = sol.result, sol.result.certificate
    # Assert: not ok, the leader named with its gain and best deviation, nothing returned as answer
    assert not res.ok and res.status is GameStatus.NOT_CERTIFIED
    assert not cert.holds and 3 in cert.profitable
    assert "msp[3] gains" in res.message and "by deviating to" in res.message
    assert cert.deviation_gains[3] > 1.0 and cert.best_deviations[3][0] > 0.5
    assert sol.R is None and sol.f is None


def _no_pure_equilibrium() -> pyo.ConcreteModel:
    """Pang & Fukushima's two-leader game without a pure equilibrium (Comput. Manag. Sci. 2,
    2005): the follower plays ``y = max(0, 1 - x1 - x2)``; leader 1 minimises ``x1/2 + y``, so it
    answers ``x1 = 1 - x2``; leader 2 minimises ``-x2/2 - y``, so it answers ``x2 = 0`` when
    ``x1 < 1/2`` and ``x2 = 1`` otherwise: the best responses go round
    ``(1, 0) -> (1, 1) -> (0, 1) -> (0, 0) -> (1, 0)``."""
    m = pyo.ConcreteModel()
    m.leader = pyo.Block([0, 1])
    for i in (0, 1):
        m.leader[i].x = pyo.Var(bounds=(0.0, 1.0), initialize=0.3 + 0.2 * i)
    m.follower = pyo.Block()
    m.follower.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.5)
    m.follower.cost = pyo.Objective(expr=m.follower.y * (-1.0 + m.leader[0].x + m.leader[1].x)
                                    + 0.5 * m.follower.y ** 2)
    m.leader[0].cost = pyo.Objective(expr=0.5 * m.leader[0].x + m.follower.y)
    m.leader[1].cost = pyo.Objective(expr=-0.5 * m.leader[1].x - m.follower.y)
    return m


def test_a_game_without_pure_equilibrium_is_never_ok():
    # Prepare
    m = _no_pure_equilibrium()
    before = [m.leader[i].x.value for i in (0, 1)]
    # Execute
    res = solve_epec(m, [m.leader], [m.follower], mode="smoothing", max_iter=30,
                     certificate=CertificateOptions(grid=21, starts=1), global_search=GlobalOptions(moves=4, starts=1))
    # Assert: an honest failure with its evidence, the user's Vars untouched
    assert not res.ok
    assert res.status in (GameStatus.CYCLING, GameStatus.NO_EQUILIBRIUM)
    assert res.message
    if res.status is GameStatus.CYCLING:
        assert len(res.cycle) >= 2
    else:
        assert "no pure equilibrium" in res.message and res.moves
    assert [m.leader[i].x.value for i in (0, 1)] == before


def test_certifying_a_refuted_profile_names_the_deviation():
    # Prepare: leader 1 at x1 = 0.2 against x2 = 0.3 gains by moving to 1 - x2 = 0.7
    m = _no_pure_equilibrium()
    m.leader[0].x.set_value(0.2)
    m.leader[1].x.set_value(0.3)
    # Execute
    cert = certify(m, [m.leader], [m.follower], mode="smoothing", certificate=CertificateOptions(grid=41, starts=1))
    # Assert
    assert not cert.holds and 0 in cert.profitable
    assert cert.deviation_gains[0] == pytest.approx(0.25, abs=1e-3)  # V: -(0.1 + 0.5) -> -(0.35 + 0)
    assert cert.best_deviations[0][0] == pytest.approx(0.7, abs=1e-3)
    assert any("gains" in r for r in cert.reasons)


def test_golden_search_survives_failed_evaluations():
    # Prepare: a gain that is -inf (no follower response) on half of the bracket
    calls = []

    def f(t: float) -> float:
        calls.append(t)
        return -math.inf if t > 0.5 else -(t - 0.3) ** 2

    # Execute
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t, g = golden_max(f, 0.0, 1.0, 30)
    # Assert
    assert t == pytest.approx(0.3, abs=1e-4) and g <= 0.0 and math.isfinite(g)
    assert len(calls) == 30 and all(0.0 <= c <= 1.0 for c in calls)


@pytest.mark.parametrize("field, value", [("gain_rtol", 0.0), ("kkt_tol", -1.0), ("max_failed", 1.5),
                                          ("gain_atol", True)])
def test_certificate_tolerances_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        CertificateOptions(**{field: value})


@pytest.mark.parametrize("field, value", [("moves", -1), ("starts", 1.5), ("seed", -2)])
def test_global_options_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        GlobalOptions(**{field: value})


def test_uncertified_solve_is_loaded_but_not_ok():
    # Prepare
    sc = scenario_from_dict({"preset": "tiny"})
    model = build_game(sc)
    # Execute
    res = solve_epec(model, [model.msp], [model.mu], certify=False)
    # Assert
    assert res.status is GameStatus.UNCERTIFIED and not res.ok and res.certificate is None
    assert res.status.stopped
    assert [model.msp[m].R.value for m in model.MSP] == [pytest.approx(d[0]) for d in res.history[-1].decisions]


def test_solve_scenario_takes_the_callers_certificate_options():
    # Prepare
    from models import preset

    # Execute
    default = solve_scenario(preset("tiny"), grid=5)
    own = solve_scenario(preset("tiny"), grid=5, certificate=CertificateOptions(grid=5, starts=0))
    # Assert: the keyword replaces solve_scenario's options, and the numpy check still runs
    assert default.ok and default.result.certificate.starts == 3
    assert own.ok and own.result.certificate.starts == 0
    assert own.numpy_kkt is not None and own.numpy_kkt.max <= CertificateOptions().kkt_tol
