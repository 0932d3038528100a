"""drl.compare.cache: the comparison's shared work returns what the computation returns, and its
keys miss on any changed input."""
import numpy as np
import pytest

import epec
from drl.compare.cache import ENV, SharedWork, cache_enabled
from drl.compare.levels import budget_level
from models import follower_equilibrium
from models.dynamics import trajectory
from models.scenario import Metric, preset


def test_follower_equilibria_are_shared_exactly_and_keyed_by_every_input():
    sc = preset("tiny")
    work = SharedWork(True)
    R = sc.Rmax / 2
    eq = work.follower_equilibrium(sc, R)
    assert np.array_equal(eq.f, follower_equilibrium(sc, R).f)
    assert work.follower_equilibrium(sc, R.copy()) is eq and work.followers.hits == 1
    with pytest.raises(ValueError):  # a shared result cannot be modified in place
        eq.f[0, 0] = 1.0
    D = sc.D.copy()
    D[0, 0] += 1
    for other_sc, other_R in ((sc, np.nextafter(R, np.inf)), (sc.replace(D=D), R), (sc.replace(metric=Metric.AOI), R)):
        before = work.followers.misses
        got = work.follower_equilibrium(other_sc, other_R)
        assert work.followers.misses == before + 1
        assert np.array_equal(got.f, follower_equilibrium(other_sc, other_R).f)


def test_epec_solves_are_shared_and_keyed_by_market_and_grid(monkeypatch):
    sc = preset("tiny")
    calls = []
    real = epec.solve_scenario
    monkeypatch.setattr(epec, "solve_scenario", lambda s, **kw: (calls.append(kw.get("grid")), real(s, **kw))[1])
    work = SharedWork(True)
    a = work.solve_scenario(sc)
    b = work.solve_scenario(sc)
    assert calls == [41] and a is b and a.ok and a.model is None
    np.testing.assert_array_equal(a.R, real(sc).R)
    work.solve_scenario(sc, grid=5)
    work.solve_scenario(sc.replace(eps0=sc.eps0 * 2))
    assert calls == [41, 5, 41]


def test_trajectories_and_budget_levels_are_keyed_by_seed():
    base = preset("tiny")
    work = SharedWork(True)
    t0 = work.trajectory(base, 2, 0)
    assert work.trajectory(base, 2, 0) is t0
    assert np.array_equal(work.trajectory(base, 2, 1).D, trajectory(base, 2, 1).D)
    assert work.trajectories.misses == 2
    budget = np.array([5.0, 6.0])[: base.n_msp] if base.n_msp == 2 else np.full(base.n_msp, 5.0)
    b0 = work.budget_level(base, 2, 0, budget)
    np.testing.assert_array_equal(b0, budget_level(base, 2, 0, budget))
    b0[:] = -1.0  # the caller's copy
    np.testing.assert_array_equal(work.budget_level(base, 2, 0, budget), budget_level(base, 2, 0, budget))
    assert work.levels.hits == 1
    work.budget_level(base, 2, 1, budget)
    work.budget_level(base, 2, 0, np.nextafter(budget, np.inf))
    assert work.levels.misses == 3


def test_environment_switch(monkeypatch):
    monkeypatch.setenv(ENV, "0")
    assert not cache_enabled() and not SharedWork().enabled
    assert SharedWork(True).enabled
    monkeypatch.setenv(ENV, "1")
    assert cache_enabled() and not SharedWork(False).enabled
    monkeypatch.delenv(ENV)
    assert cache_enabled()
