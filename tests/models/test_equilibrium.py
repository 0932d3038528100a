"""The numpy follower equilibrium and its independent checks (models/equilibrium.py)."""
from __future__ import annotations

import numpy as np
import pytest

from models import Mechanism, preset
from models.equilibrium import (EquilibriumOptions, best_response, follower_equilibrium, follower_kkt_residual,
                                follower_uniqueness, leader_deviation_gain)
from models.utility import mu_utilities

CASES = [("tiny", Mechanism.PROPORTIONAL), ("default", Mechanism.PROPORTIONAL), ("default", Mechanism.UNIT_PRICE)]


@pytest.mark.parametrize("name,mechanism", CASES)
def test_equilibrium_satisfies_its_kkt(name, mechanism):
    # Prepare
    sc = preset(name).replace(mechanism=mechanism)
    R = sc.Rmax * (0.3 if mechanism is Mechanism.PROPORTIONAL else 0.05)
    # Execute
    eq = follower_equilibrium(sc, R)
    res = follower_kkt_residual(sc, R, eq.f)
    # Assert
    assert eq.converged
    assert res.max < 1e-8
    assert np.all(eq.f >= 0) and np.all(eq.f.sum(1) <= sc.F + 1e-12)


def test_default_equilibrium_exercises_every_regime():
    sc = preset("default")
    eq = follower_equilibrium(sc, np.array([10.0, 10.0, 10.0]))
    binding = eq.f.sum(1) > sc.F - 1e-9
    assert binding.any() and (~binding).any()
    assert np.all(eq.mu[~binding] == 0) and np.all(eq.mu[binding] > 0)


def test_no_mu_gains_by_a_unilateral_change():
    # Each MU's equilibrium allocation beats random feasible alternatives, others fixed.
    sc = preset("tiny", seed=1)
    R = np.array([8.0, 6.0])
    f = follower_equilibrium(sc, R).f
    U = mu_utilities(sc, R, f)
    rng = np.random.default_rng(0)
    for n in range(sc.n_mu):
        for _ in range(200):
            g = f.copy()
            g[n] = rng.dirichlet(np.ones(sc.n_msp + 1))[: sc.n_msp] * sc.F[n]
            assert mu_utilities(sc, R, g)[n] <= U[n] + 1e-9


def test_best_response_is_a_fixed_point():
    sc = preset("tiny")
    R = sc.Rmax / 4
    eq = follower_equilibrium(sc, R)
    f_br, _ = best_response(sc, R, eq.f)
    np.testing.assert_allclose(f_br, eq.f, atol=1e-8)


def test_batched_rewards_match_single_solves():
    sc = preset("tiny")
    Rs = np.array([[1.0, 5.0], [9.0, 2.0], [0.0, 4.0]])
    batch = follower_equilibrium(sc, Rs).f
    for k in range(len(Rs)):
        np.testing.assert_allclose(batch[k], follower_equilibrium(sc, Rs[k]).f, atol=1e-8)


def test_zero_reward_means_no_work_for_that_msp():
    sc = preset("tiny")
    f = follower_equilibrium(sc, np.array([0.0, 5.0])).f
    np.testing.assert_array_equal(f[:, 0], 0.0)
    assert np.all(f[:, 1] > 0)


def test_kkt_residual_detects_a_non_equilibrium():
    sc = preset("tiny")
    R = sc.Rmax / 4
    res = follower_kkt_residual(sc, R, np.full(sc.D.shape, 0.05))
    assert res.max > 1e-2


def test_unique_from_several_starts():
    sc = preset("default")
    assert follower_uniqueness(sc, sc.Rmax / 3, starts=4) < 1e-7


def test_deviation_gain_positive_away_from_equilibrium():
    sc = preset("tiny")
    gains = leader_deviation_gain(sc, np.array([0.5, 29.0]), grid_points=31)
    assert gains.min() > 0.1


def test_options_are_validated():
    with pytest.raises(ValueError, match="damping"):
        EquilibriumOptions(damping=0.0)


def test_tiny_marginal_cost_does_not_overflow():
    """Issue 15: on this scenario, at R = Rmax / 2 (within 1600 iterations), the Newton step of
    the MUs' best response divided 2 e by a subnormal ``b = mu + 2 e f`` and overflowed."""
    # Prepare
    import warnings

    from models.scenario import scenario_from_dict

    sc = scenario_from_dict({"n_mu": 2, "n_msp": 6, "seed": 3157, "mechanism": "proportional",
                             "Rmax": [240.0, 91.43, 21.11, 147.28, 270.24, 0.1408]})
    R = sc.Rmax / 2.0
    # Execute
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        eq = follower_equilibrium(sc, R, options=EquilibriumOptions(max_iter=1600))
    # Assert: finite and feasible (this scenario's fixed-point iteration does not settle within
    # max_iter, before and after the fix; solve_epec's Newton response finds the equilibrium)
    assert np.all(np.isfinite(eq.f)) and np.all(np.isfinite(eq.mu))
    assert np.all(eq.f >= 0) and np.all(eq.f.sum(1) <= sc.F + 1e-12)
