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


def test_drl_without_learned_pricing_is_a_clear_error(monkeypatch):
    # a build whose drl/ lacks load_policy / train_pricing
    import benchmarks.compare.run as run_mod
    from benchmarks.compare import CompareConfig

    monkeypatch.setattr(run_mod, "drl_available", lambda: False)
    with pytest.raises(InputError, match="drl.load_policy"):
        CompareConfig(schemes=("drl", "fixed"))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A pricing policy trained for 'tiny' in the dynamic market with a one-update budget."""
    import drl

    out = tmp_path_factory.mktemp("policy") / "p"
    drl.train_pricing(preset("tiny"), out=out, seconds=60.0, updates=1, seed=0, dynamic=True, device="cpu")
    return out


@pytest.mark.skipif(not drl_available(), reason="drl/ has no learned pricing in this build")
def test_drl_scheme_acts_on_its_own_history_only(tmp_path, tiny_policy):
    # Prepare
    import drl
    from benchmarks.compare import CompareConfig, SchemeSetup, run_scheme
    from fl.data import load_dataset

    base = preset("tiny")
    scheme = make_scheme("drl")
    scheme.prepare(SchemeSetup(base=base, out=tmp_path, seeds=1, rounds=3, drl_policy=str(tiny_policy)))
    cfg = CompareConfig(scenario="tiny", schemes=("drl",), seeds=1, rounds=3, epochs=1, drl_policy=str(tiny_policy))
    # Execute
    rec = run_scheme(scheme, base, cfg, 0, load_dataset("mnist5k"))
    # Assert: replaying the policy on the recorded outcomes gives the recorded rewards, and the
    # training budget is recorded
    pol = drl.load_policy(tiny_policy)
    pol.reset()
    for r in rec["rounds"]:
        np.testing.assert_allclose(r["R"], pol.act(deterministic=True), rtol=1e-12)
        pol.feedback(r["R"], r["iom"], r["contributors"], r["msp_utility"])
    assert rec["describe"]["training_budget"]["updates"] == 1


@pytest.mark.skipif(not drl_available(), reason="drl/ has no learned pricing in this build")
def test_drl_policy_of_another_market_is_refused(tmp_path, tiny_policy):
    from benchmarks.compare import SchemeSetup

    with pytest.raises(InputError, match="--drl-policy"):
        make_scheme("drl").prepare(SchemeSetup(base=preset("default"), out=tmp_path, seeds=1, rounds=1,
                                               drl_policy=str(tiny_policy)))
