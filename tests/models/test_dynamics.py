"""Tests of models/dynamics.py: the dynamic market of docs/model.md section 6."""
import numpy as np
import pytest

from models import DynamicsOptions, InputError, base_distances, iom_matrix, preset, trajectory
from models.dynamics import MarketState


@pytest.fixture(scope="module")
def base():
    return preset("default")


def test_round_zero_is_the_base_and_runs_are_reproducible(base):
    a = trajectory(base, 30, seed=3)
    b = trajectory(base, 30, seed=3)
    c = trajectory(base, 30, seed=4)
    assert a.rounds == 30 and a.active.shape == (30, base.n_mu)
    np.testing.assert_array_equal(a.scenario(0).D, base.D)
    np.testing.assert_allclose(a.scenario(0).h, base.h, rtol=1e-12)
    assert a.active[0].all()
    for k in ("D", "tau", "zeta", "v", "h"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    np.testing.assert_array_equal(a.active, b.active)
    assert not np.array_equal(a.h, c.h)
    # round t does not depend on the run's length
    np.testing.assert_array_equal(trajectory(base, 10, seed=3).h, a.h[:10])


def test_distances_walk_inside_bounds_and_everything_is_refreshed(base):
    opt = DynamicsOptions()
    tr = trajectory(base, 200, seed=0, options=opt)
    d = (opt.gain / tr.h) ** (1 / opt.exponent)
    d0 = base_distances(base, opt)
    assert np.all(d >= np.minimum(opt.d_min, d0) - 1e-9) and np.all(d <= np.maximum(opt.d_max, d0) + 1e-9)
    steps = np.abs(np.diff(d, axis=0))
    assert 0 < np.median(steps) < 4 * opt.step  # a walk, not a redraw
    for k in ("tau", "zeta", "v"):
        assert np.all(np.std(getattr(tr, k), axis=0) > 0), k
    act = tr.active
    assert act.sum(1).min() >= opt.min_active
    joins = (~act[:-1] & act[1:]).sum()
    leaves = (act[:-1] & ~act[1:]).sum()
    assert joins > 0 and leaves > 0


def test_inactive_mus_hold_no_data_and_the_active_scenario_drops_them(base):
    tr = trajectory(base, 60, seed=1)
    t = int(np.argmax((~tr.active).any(1)))
    assert (~tr.active[t]).any()
    sc = tr.scenario(t)
    off = ~tr.active[t]
    assert np.all(sc.D[off] == 0)
    assert np.all(iom_matrix(sc, np.ones(sc.D.shape))[off] == 0)
    sub = tr.active_scenario(t)
    assert sub.n_mu == tr.active[t].sum() and sub.n_msp == base.n_msp
    np.testing.assert_array_equal(sub.h, sc.h[tr.active[t]])


def test_batched_state_matches_shapes(base):
    st = MarketState.start(base, 4)
    st.advance(np.random.default_rng(0))
    assert st.D.shape == (4,) + base.D.shape and st.active.shape == (4, base.n_mu)
    assert not np.array_equal(st.h[0], st.h[1])


@pytest.mark.parametrize("kwargs, field", [
    ({"rounds": 0, "seed": 0}, "rounds"),
    ({"rounds": 3, "seed": -1}, "seed"),
])
def test_bad_input_names_the_field(base, kwargs, field):
    with pytest.raises(InputError) as err:
        trajectory(base, **kwargs)
    assert err.value.field == field
    with pytest.raises(InputError):
        DynamicsOptions(spread=1.5)
