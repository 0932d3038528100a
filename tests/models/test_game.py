"""The Pyomo game: structure and objective values against the numpy utilities (models/game.py)."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from models import Mechanism, Metric, preset
from models.game import allocations, build_game, rewards, set_allocations, set_rewards
from models.iom import iom_matrix
from models.utility import msp_utilities, mu_utilities


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_structure(name):
    sc = preset(name)
    model = build_game(sc)
    n_vars = len(list(model.component_data_objects(pyo.Var)))
    n_cons = len(list(model.component_data_objects(pyo.Constraint)))
    n_objs = len(list(model.component_data_objects(pyo.Objective)))
    assert n_vars == sc.n_mu * sc.n_msp + sc.n_msp
    assert n_cons == sc.n_mu
    assert n_objs == sc.n_mu + sc.n_msp
    assert len(model.total) == sc.n_msp
    assert all(model.msp[m].R.ub == sc.Rmax[m] and model.msp[m].R.lb == 0.0 for m in model.MSP)
    assert all(model.mu[n].f[m].lb == 0.0 for n in model.MU for m in model.MSP)


@pytest.mark.parametrize("mechanism, metric", [(m, Metric.FULL) for m in Mechanism]
                         + [(Mechanism.PROPORTIONAL, m) for m in Metric if m is not Metric.FULL])
def test_objectives_equal_numpy_utilities(mechanism, metric):
    # Prepare: the partial-metric games are the same game with another quality
    sc = preset("default", seed=5).replace(mechanism=mechanism, metric=metric)
    rng = np.random.default_rng(2)
    R = rng.uniform(0, sc.Rmax)
    f = rng.uniform(0, 1, sc.D.shape) * sc.F[:, None] / sc.n_msp
    model = build_game(sc)
    # Execute
    set_rewards(model, R)
    set_allocations(model, f)
    # Assert
    np.testing.assert_allclose(rewards(model), R)
    np.testing.assert_allclose(allocations(model), f)
    V = [pyo.value(model.msp[m].utility) for m in model.MSP]
    U = [pyo.value(model.mu[n].utility) for n in model.MU]
    np.testing.assert_allclose(V, msp_utilities(sc, R, f), rtol=1e-12)
    np.testing.assert_allclose(U, mu_utilities(sc, R, f), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose([pyo.value(model.total[m]) for m in model.MSP], iom_matrix(sc, f).sum(0), rtol=1e-12)


def test_pair_without_data_is_fixed_at_zero():
    sc = preset("tiny")
    D = sc.D.copy()
    D[1, 0] = 0
    model = build_game(sc.replace(D=D))
    assert model.mu[1].f[0].fixed and model.mu[1].f[0].value == 0.0
    assert not model.mu[1].f[1].fixed


def test_replaceable_formula_is_used():
    sc = preset("tiny")
    model = build_game(sc, iom_fn=lambda f, Q, a, b: 2.0 * f)
    set_allocations(model, np.full(sc.D.shape, 0.25))
    assert pyo.value(model.total[0]) == pytest.approx(2.0 * 0.25 * sc.n_mu)
