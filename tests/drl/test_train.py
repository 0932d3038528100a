"""drl/train.py, drl/agent.py, drl/policy.py: tiny training budgets, resume, deployment."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from drl import PPOConfig, load_policy, train_pricing
from models import InputError, preset

TINY = PPOConfig(n_markets=8, num_steps=4, num_minibatches=2, update_epochs=2, hidden=16)
REF = (np.array([5.0, 5.0]), np.array([1.0, 1.0]))  # a stand-in line for the plot; no EPEC solve needed


def _weights(out):
    pol = torch.load(out / "checkpoint.pt", weights_only=True)
    return [a["actor"] for a in pol["agents"]] + [a["critic"] for a in pol["agents"]]


@pytest.mark.parametrize("dynamic", [False, True])
def test_resumed_run_ends_with_the_same_weights(tmp_path, dynamic):
    # Prepare / Execute: 4 updates straight, and the same run interrupted after update 2 (checkpoint
    # after every update) then resumed
    sc = preset("tiny")
    kw = dict(seconds=600, seed=3, dynamic=dynamic, config=TINY, reference=None if dynamic else REF,
              checkpoint_every=1e-9)
    full = train_pricing(sc, tmp_path / "full", updates=4, **kw)

    def interrupt(entry):
        if entry["update"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_pricing(sc, tmp_path / "part", updates=4, progress=interrupt, **kw)
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["update"] == 2
    resumed = train_pricing(sc, tmp_path / "part", updates=4, resume=True, **kw)
    # Assert
    assert full.budget["updates"] == resumed.budget["updates"] == 4
    assert full.budget["market_rounds"] == resumed.budget["market_rounds"] == 4 * 8 * 4
    for a, b in zip(_weights(tmp_path / "full"), _weights(tmp_path / "part")):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    np.testing.assert_array_equal(full.rewards, resumed.rewards)
    # and a different seed gives different weights
    other = train_pricing(sc, tmp_path / "other", updates=4, **{**kw, "seed": 4})
    assert not np.array_equal(other.rewards, full.rewards)


def test_outputs_and_deployed_policy(tmp_path):
    sc = preset("tiny")
    res = train_pricing(sc, tmp_path, updates=3, seconds=600, config=TINY, reference=REF)
    data = json.loads((tmp_path / "training.json").read_text())
    assert len(data["updates"]) == 3 and data["budget"]["updates"] == 3
    assert [u["market_rounds"] for u in data["updates"]] == [32, 64, 96]
    assert len(data["updates"][0]["rewards"]) == 2 and len(data["updates"][0]["utilities"]) == 2
    assert (tmp_path / "training.png").stat().st_size > 1000
    pol = load_policy(tmp_path)
    assert pol.n_msp == 2 and pol.budget == res.budget
    np.testing.assert_array_equal(pol.Rmax, sc.Rmax)
    pol.reset()
    R1 = pol.act()
    assert R1.shape == (2,) and np.all((R1 >= 0) & (R1 <= sc.Rmax))
    # an agent's action depends on its own feedback only
    pol.feedback([5.0, 7.0], [0.5, 0.6], [3, 4], [10.0, 20.0])
    R2 = pol.act()
    pol.reset()
    pol.feedback([5.0, 99.0], [0.5, 9.9], [3, 1], [10.0, -50.0])
    R3 = pol.act()
    assert R2[0] == R3[0] and R2[1] != R3[1]
    with pytest.raises(InputError):
        pol.feedback([1.0], [1.0], [1.0], [1.0])


def test_learning_moves_rewards_towards_the_equilibrium(tmp_path):
    # 40 small updates on tiny: the deterministic rewards approach the certified EPEC
    sc = preset("tiny")
    res = train_pricing(sc, tmp_path, updates=40, seconds=600, seed=0,
                        config=PPOConfig(n_markets=32, num_steps=4, num_minibatches=2, hidden=32))
    gaps0 = np.abs(np.array(res.log[0]["reward_gap_pct"]))
    gaps = np.abs(np.array(res.log[-1]["reward_gap_pct"]))
    assert res.epec_rewards is not None
    assert gaps.mean() < gaps0.mean()


def test_bad_input(tmp_path):
    sc = preset("tiny")
    for kw, field in (({"seconds": 0}, "--seconds"), ({"seconds": -1}, "--seconds"), ({"updates": 0}, "--updates"),
                      ({"seed": -2}, "--seed"), ({"device": "tpu"}, "--device")):
        with pytest.raises(InputError) as err:
            train_pricing(sc, tmp_path / "x", **{"seconds": 5, **kw})
        assert err.value.field == field
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError) as err:
        load_policy(tmp_path)
    assert err.value.field == "--policy"
    (tmp_path / "policy.pt").write_bytes(b"not a policy")
    with pytest.raises(InputError):
        load_policy(tmp_path)
    torch.save({"version": 99}, tmp_path / "policy.pt")
    with pytest.raises(InputError):
        load_policy(tmp_path)
    train_pricing(sc, tmp_path / "a", updates=1, seconds=60, config=TINY, reference=REF)
    with pytest.raises(InputError) as err:  # resume with another seed
        train_pricing(sc, tmp_path / "a", updates=2, seconds=60, seed=9, config=TINY, reference=REF, resume=True)
    assert err.value.field == "--resume"
