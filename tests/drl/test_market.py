"""drl/market.py and drl/pettingzoo_env.py: the market steps, privacy of observations, PettingZoo API."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from drl import FEATURES, History, Market, MarketOptions, PricingParallelEnv
from models import InputError, follower_equilibrium, msp_utilities, preset


def test_stationary_step_is_the_exact_equilibrium():
    sc = preset("default")
    env = Market(sc, 3)
    R = np.array([[13.0, 9.0, 3.0], [0.0, 30.0, 12.0], [40.0, -1.0, 5.0]])  # last row clipped
    out = env.step(R)
    Rc = np.clip(R, 0, sc.Rmax)
    np.testing.assert_array_equal(out.R.numpy(), Rc)
    for e in range(3):
        f = follower_equilibrium(sc, Rc[e]).f
        np.testing.assert_allclose(out.utility[e].numpy(), msp_utilities(sc, Rc[e], f), rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(out.contributors[e].numpy(), (f > 1e-12).sum(0))
    assert out.contributors[1, 0] == 0  # nobody works for an MSP paying 0


def test_dynamic_markets_move_and_are_reproducible():
    sc = preset("default")
    a = Market(sc, 4, MarketOptions(dynamic=True), seed=7)
    b = Market(sc, 4, MarketOptions(dynamic=True), seed=7)
    R = np.full((4, 3), 12.0)
    ua = [a.step(R).utility for _ in range(6)]
    ub = [b.step(R).utility for _ in range(6)]
    for x, y in zip(ua, ub):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.allclose(ua[0], ua[5])  # the market moved
    assert not torch.allclose(ua[5][0], ua[5][1])  # markets move independently


def test_an_observation_is_a_function_of_the_msps_own_rounds_only():
    # Prepare: a market played with random rewards; each MSP's history is fed its own column
    sc = preset("default")
    env = Market(sc, 2)
    hists = [History(float(sc.Rmax[m]), float(sc.lam[m]), sc.n_mu, 4, 2) for m in range(3)]
    rng = np.random.default_rng(0)
    outs = []
    for _ in range(6):
        out = env.step(rng.uniform(0, 30, (2, 3)))
        outs.append(out)
        for m, h in enumerate(hists):
            h.push(*out.column(m))
    for m in range(3):
        # Execute: rebuild MSP m's observation from its own entries, and from its own entries with
        # everything else in the outcome replaced by garbage
        own = History(float(sc.Rmax[m]), float(sc.lam[m]), sc.n_mu, 4, 2)
        scrambled = History(float(sc.Rmax[m]), float(sc.lam[m]), sc.n_mu, 4, 2)
        for out in outs:
            own.push(*out.column(m))
            fake = type(out)(*(torch.where(torch.arange(3) == m, x, torch.full_like(x, 1e6)) if x.dim() == 2 else x
                               for x in (out.R, out.total_iom, out.contributors, out.utility, out.residual)))
            scrambled.push(*fake.column(m))
        # Assert: identical observations; and the observation changes when the MSP's own entries do
        torch.testing.assert_close(hists[m].observation(), own.observation(), rtol=0, atol=0)
        torch.testing.assert_close(hists[m].observation(), scrambled.observation(), rtol=0, atol=0)
        assert hists[m].observation().shape == (2, 4 * len(FEATURES))
    assert not torch.equal(hists[0].observation(), hists[1].observation())


def test_the_training_loop_feeds_each_agent_its_own_column(monkeypatch):
    # Every History.push call made by the trainer must carry one MSP's own column of the outcome.
    from drl import train as train_mod
    from drl.agent import PPOConfig

    sc = preset("tiny")
    calls = []
    orig = History.push

    def spy(self, R, total, contributors, utility):
        calls.append((float(self.scale[0]), float(self.scale[3]), R.clone(), utility.clone()))
        return orig(self, R, total, contributors, utility)

    seen = []
    orig_step = Market.step

    def step_spy(self, R):
        out = orig_step(self, R)
        seen.append(out)
        return out

    monkeypatch.setattr(History, "push", spy)
    monkeypatch.setattr(Market, "step", step_spy)
    sc = sc.replace(lam=np.array([20.0, 70.0]))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        train_mod.train_pricing(sc, tmp, updates=1, seconds=60, config=PPOConfig(n_markets=4, num_steps=2, num_minibatches=2),
                                solve_reference=False)
    assert len(calls) == 2 * len(seen)
    for k, out in enumerate(seen):
        for m in range(2):
            Rmax, lam, R, V = calls[2 * k + m]
            assert lam == sc.lam[m]
            torch.testing.assert_close(R, out.R[:, m])
            torch.testing.assert_close(V, out.utility[:, m])


@pytest.mark.parametrize("dynamic", [False, True])
def test_pettingzoo_parallel_api(dynamic):
    env = PricingParallelEnv(preset("tiny"), MarketOptions(dynamic=dynamic), max_rounds=8)
    parallel_api_test(env, num_cycles=20)
    obs, _ = env.reset(seed=3)
    assert set(obs) == {"msp_0", "msp_1"} and obs["msp_0"].shape == (16,)
    obs, rew, term, trunc, info = env.step({"msp_0": np.array([10.0]), "msp_1": np.array([12.0])})
    assert rew["msp_0"] != rew["msp_1"] and not any(term.values())


def test_bad_shapes_are_refused():
    env = Market(preset("tiny"), 2)
    with pytest.raises(InputError):
        env.step(np.zeros((3, 2)))
    with pytest.raises(InputError):
        MarketOptions(history=0)
