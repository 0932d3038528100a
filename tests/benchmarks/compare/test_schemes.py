"""The pricing schemes and their registry (benchmarks/compare/schemes.py)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.compare import (SCHEMES, Decision, RoundInfo, Scheme, drl_available, make_scheme, register_scheme,
                                scheme_names)
from benchmarks.compare.schemes import BUILTIN_SCHEMES
from models import InputError, Metric, leader_deviation_gain, preset
from models.dynamics import trajectory


@pytest.fixture(scope="module")
def market():
    """Round 1 of a dynamic default market, restricted to its active MUs."""
    return trajectory(preset("default"), 2, seed=3).active_scenario(1)


def info(sc, t=0, seed=0):
    return RoundInfo(round=t, scenario=sc, seed=seed, rng=np.random.default_rng([seed, t]))


def test_builtin_schemes_are_those_of_model_section_8():
    assert BUILTIN_SCHEMES == ("epec", "drl", "fixed", "random", "single_leader", "aoi_only", "accuracy_only",
                               "data_only")


def test_fixed_and_random(market):
    fixed = make_scheme("fixed").rewards(info(market))
    np.testing.assert_array_equal(fixed.R, market.Rmax / 2)
    r1 = make_scheme("random").rewards(info(market, t=1)).R
    r2 = make_scheme("random").rewards(info(market, t=1)).R
    r3 = make_scheme("random").rewards(info(market, t=2)).R
    assert np.all((0 <= r1) & (r1 <= market.Rmax))
    np.testing.assert_array_equal(r1, r2)
    assert not np.allclose(r1, r3)


@pytest.mark.parametrize("name, metric", [("epec", Metric.FULL), ("aoi_only", Metric.AOI),
                                          ("accuracy_only", Metric.ACCURACY), ("data_only", Metric.DATA)])
def test_equilibrium_schemes_are_certified_equilibria_of_their_game(market, name, metric):
    # Execute
    scheme = make_scheme(name)
    scheme.reset(market, 0)
    dec = scheme.rewards(info(market))
    # Assert: certified, and no MSP gains by deviating in the game of its metric (numpy check)
    assert scheme.metric is metric and dec.certified is True
    gains = leader_deviation_gain(market.replace(metric=metric), dec.R, grid_points=41)
    assert gains.max() < 1e-6 * (1 + np.abs(dec.R).max())


def test_partial_metric_rewards_differ_from_the_full_game(market):
    full = make_scheme("epec").rewards(info(market)).R
    part = make_scheme("accuracy_only").rewards(info(market)).R
    assert np.abs(full - part).max() > 1e-3


def test_single_leader_solves_each_msps_own_stackelberg_problem(market):
    # Execute
    scheme = make_scheme("single_leader")
    scheme.reset(market, 0)
    dec = scheme.rewards(info(market))
    # Assert: each reward is the best reply of MSP m alone with the MUs (numpy grid check)
    assert dec.certified is True
    for m in range(market.n_msp):
        alone = market.subset(msps=[m])
        assert leader_deviation_gain(alone, dec.R[m:m + 1], grid_points=81)[0] < 1e-6
    # and it is not the EPEC: the MSPs ignore each other
    assert np.abs(dec.R - make_scheme("epec").rewards(info(market)).R).max() > 1e-3


def test_register_own_scheme():
    class Third(Scheme):
        def rewards(self, info):
            return Decision(info.scenario.Rmax / 3)

    register_scheme("third_test", Third)
    try:
        assert "third_test" in scheme_names("all")
        s = make_scheme("third_test")
        assert s.name == "third_test"
        with pytest.raises(InputError, match="already registered"):
            register_scheme("third_test", Third)
    finally:
        SCHEMES.pop("third_test")


@pytest.mark.parametrize("spec, field", [("epec,nope", "--schemes"), ("", "--schemes")])
def test_unknown_scheme_refused(spec, field):
    with pytest.raises(InputError, match=field):
        scheme_names(spec)


@pytest.mark.skipif(drl_available(), reason="drl/ provides the learned pricing")
def test_drl_without_learned_pricing_is_a_clear_error(tmp_path):
    from benchmarks.compare import CompareConfig

    with pytest.raises(InputError, match="drl.load_policy"):
        CompareConfig(schemes=("drl", "fixed"))
