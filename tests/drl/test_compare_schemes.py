"""The pricing schemes and their registry (drl/compare/schemes.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from drl.compare import (SCHEMES, Decision, RoundInfo, Scheme, drl_available, make_scheme, register_scheme,
                                scheme_names)
from drl.compare.schemes import BUILTIN_SCHEMES
from models import InputError, Metric, leader_deviation_gain, preset
from models.dynamics import trajectory


@pytest.fixture(scope="module")
def market():
    """Round 1 of a dynamic default market, restricted to its active MUs."""
    return trajectory(preset("default"), 2, seed=3).active_scenario(1)


def info(sc, t=0, seed=0):
    return RoundInfo(round=t, scenario=sc, seed=seed, rng=np.random.default_rng([seed, t]))


def test_builtin_schemes_are_those_of_model_section_8():
    assert BUILTIN_SCHEMES == ("epec", "drl", "fixed", "random", "fixed_cap", "random_cap", "static", "hill_climb",
                               "single_leader", "aoi_only", "accuracy_only", "data_only")
    groups = {n: make_scheme(n).group.value for n in BUILTIN_SCHEMES}
    assert [n for n, g in groups.items() if g == "naive"] == ["fixed", "random", "fixed_cap", "random_cap",
                                                              "static", "hill_climb"]
    assert [n for n, g in groups.items() if g == "full_information"] == ["epec", "single_leader"]
    assert [n for n, g in groups.items() if g == "ablation"] == ["aoi_only", "accuracy_only", "data_only"]


def _levelled(name, b):
    scheme = make_scheme(name)
    scheme.set_level(b)
    return scheme


def test_fixed_and_random_at_their_level(market):
    b = np.array([3.0, 7.0, 11.0])[:market.n_msp]
    fixed = _levelled("fixed", b).rewards(info(market))
    np.testing.assert_array_equal(fixed.R, b)
    r1 = _levelled("random", b).rewards(info(market, t=1)).R
    r2 = _levelled("random", b).rewards(info(market, t=1)).R
    r3 = _levelled("random", b).rewards(info(market, t=2)).R
    assert np.all((0 <= r1) & (r1 <= 2 * b))
    np.testing.assert_array_equal(r1, r2)
    assert not np.allclose(r1, r3)
    draws = np.array([_levelled("random", b).rewards(info(market, t=t)).R for t in range(400)])
    np.testing.assert_allclose(draws.mean(0), b, rtol=0.1)  # mean b_m
    assert make_scheme("fixed").setting.value == "budget_matched"
    assert make_scheme("fixed_cap").setting.value == "cap_relative"
    with pytest.raises(RuntimeError, match="set_level"):
        make_scheme("fixed").rewards(info(market))
    with pytest.raises(InputError, match="level"):
        make_scheme("fixed").set_level([-1.0] * market.n_msp)


def test_static_posts_the_first_rounds_equilibrium_unchanged(market):
    from epec import solve_scenario

    # Execute: round 0 in one market, round 1 in another
    scheme = make_scheme("static")
    scheme.reset(market, 0)
    first = scheme.rewards(info(market))
    other = trajectory(preset("default"), 3, seed=5).active_scenario(2)
    later = scheme.rewards(info(other, t=1))
    # Assert: the certified EPEC of round 0, posted again in round 1
    assert first.certified is True
    np.testing.assert_allclose(first.R, solve_scenario(market).R, rtol=1e-12)
    np.testing.assert_array_equal(later.R, first.R)


class _PublicOnly:
    """A round's market of which only the public ``Rmax`` may be read."""

    def __init__(self, Rmax):
        self.Rmax = Rmax


def test_hill_climb_acts_on_its_own_history_only(market):
    # Prepare: a hill climb played on the real market's responses, 8 rounds
    from drl.compare import RoundOutcome
    from drl.compare.schemes import HillClimber
    from models import follower_equilibrium, iom_matrix, msp_payment, msp_value

    played = make_scheme("hill_climb")
    played.reset(market, 0)
    history = []
    for t in range(8):
        R = played.rewards(info(market, t)).R
        total = iom_matrix(market, follower_equilibrium(market, R).f).sum(0)
        V = msp_value(market.lam, total) - msp_payment(market.mechanism, R, total, market.eps0)
        out = RoundOutcome(R=R, total_iom=total, contributors=np.zeros(market.n_msp), utility=V)
        history.append(out)
        played.feedback(out)
    # Execute: each MSP replayed alone from its own (R_m, V_m); and the scheme replayed on
    # outcomes whose other MSPs' entries are garbage, seeing only the public Rmax
    scrambled = make_scheme("hill_climb")
    scrambled.reset(market, 0)
    alone = [HillClimber(float(r)) for r in market.Rmax]
    for t, out in enumerate(history):
        R = scrambled.rewards(RoundInfo(round=t, scenario=_PublicOnly(market.Rmax), seed=0, rng=None)).R
        np.testing.assert_array_equal(R, out.R)
        for m, agent in enumerate(alone):
            assert agent.act() == out.R[m]
            agent.feedback(out.R[m], out.utility[m])
        for m in range(market.n_msp):  # MSP m's entries kept, every other entry replaced
            junk = np.where(np.arange(market.n_msp) == m, 0.0, 1e6)
            fake = RoundOutcome(R=np.where(junk == 0, out.R, junk), total_iom=junk, contributors=junk,
                                utility=np.where(junk == 0, out.utility, -junk))
            probe = make_scheme("hill_climb")
            probe.reset(market, 0)
            probe.agents = [_copy(a) for a in scrambled.agents]
            probe.feedback(fake)
            scrambled_m = _copy(scrambled.agents[m])
            scrambled_m.feedback(out.R[m], out.utility[m])
            assert probe.agents[m].act() == scrambled_m.act()
        scrambled.feedback(out)
    # Assert: it moved (it is not a constant), within [0, Rmax]
    Rs = np.array([o.R for o in history])
    assert np.ptp(Rs, axis=0).min() > 0 and np.all((0 <= Rs) & (Rs <= market.Rmax))


def _copy(agent):
    import copy

    return copy.deepcopy(agent)


def test_hill_climber_reverses_with_a_smaller_step_when_utility_falls():
    from drl.compare.schemes import HillClimber

    a = HillClimber(100.0)
    assert a.act() == 50.0
    a.feedback(50.0, 1.0)  # first round: keep going up by the first step
    assert a.act() == 60.0
    a.feedback(60.0, 2.0)  # utility rose: same direction, same step
    assert a.act() == 70.0
    a.feedback(70.0, 1.5)  # utility fell: reverse, half the step
    assert a.act() == 65.0


def test_an_uncertified_first_round_stops_instead_of_posting_another_schemes_rewards(market, monkeypatch):
    import epec
    from drl.compare import UncertifiedStart

    real = epec.solve_scenario
    calls = []

    def flaky(sc, **kw):
        sol = real(sc, **kw)
        calls.append(1)
        if len(calls) == 1:
            return SimpleNamespace(ok=False, R=sol.R, result=SimpleNamespace(status=SimpleNamespace(name="FAILED"),
                                                                            message="test"))
        if len(calls) == 3:
            return SimpleNamespace(ok=False, R=sol.R * 0 + 1.0,
                                   result=SimpleNamespace(status=SimpleNamespace(name="FAILED"), message="test"))
        return sol

    monkeypatch.setattr(epec, "solve_scenario", flaky)
    scheme = make_scheme("epec")
    scheme.reset(market, 0)
    with pytest.raises(UncertifiedStart, match="no earlier"):
        scheme.rewards(info(market))  # call 1: uncertified, nothing to keep
    good = scheme.rewards(info(market, t=1))  # call 2: certified
    kept = scheme.rewards(info(market, t=2))  # call 3: uncertified, the last certified kept
    assert good.certified is True and kept.certified is False and "kept" in kept.note
    np.testing.assert_array_equal(kept.R, good.R)


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
    import drl.compare.config as config_mod
    from drl.compare import CompareConfig

    monkeypatch.setattr(config_mod, "drl_available", lambda: False)
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
    from drl.compare import CompareConfig, SchemeSetup, run_scheme
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
    from drl.compare import SchemeSetup

    with pytest.raises(InputError, match="--drl-policy"):
        make_scheme("drl").prepare(SchemeSetup(base=preset("default"), out=tmp_path, seeds=1, rounds=1,
                                               drl_policy=str(tiny_policy)))
