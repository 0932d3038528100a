"""fl.trainer: simulated clock, resume == uninterrupted, input checks."""
import numpy as np
import pytest
import torch

from fl.data import load_dataset
from fl.trainer import FLConfig, build_task, check_allocation, run_fl
from models.errors import InputError
from models.iom import round_time
from models.scenario import generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ds():
    return load_dataset("mnist5k")


def _scenario(n=4, m=2, d=24):
    sc = generate(n, m, seed=1)
    return sc.replace(D=np.full((n, m), float(d)), L=1)


def _cfg(**kw):
    base = dict(rounds=3, msp=1, seed=3, batch_size=8, lr=0.05, momentum=0.5)
    base.update(kw)
    return FLConfig(**base)


def test_clock_is_models_round_time(ds):
    # Prepare: MU 2 gives MSP 1 nothing and so does not participate
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    f[2, 1] = 0.0
    # Execute
    task = build_task(ds, sc, f, _cfg(rounds=2))
    res = run_fl(task, _cfg(rounds=2))
    # Assert
    assert task.participants.tolist() == [0, 1, 3]
    assert task.round_time == pytest.approx(round_time(sc, f, 1), rel=1e-12)
    np.testing.assert_allclose(res.sim_time, [round_time(sc, f, 1), 2 * round_time(sc, f, 1)], rtol=1e-12)
    assert res.participants == [3, 3]
    assert all(0.0 <= a <= 1.0 for a in res.accuracy)


@pytest.mark.parametrize("path", ["vectorised", "sequential"])
def test_resume_equals_uninterrupted(ds, tmp_path, path):
    # Prepare
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    cfg = _cfg(path=path)
    task = build_task(ds, sc, f, cfg)
    # Execute: uninterrupted; then interrupted after 1 round and resumed from the checkpoint
    full = run_fl(task, cfg, checkpoint=tmp_path / "a.pt")
    run_fl(task, cfg, checkpoint=tmp_path / "b.pt", stop_after=1)
    resumed = run_fl(task, cfg, checkpoint=tmp_path / "b.pt", resume=True)
    # Assert
    assert resumed.rounds == full.rounds == 3
    assert all(torch.equal(full.params[n], resumed.params[n]) for n in full.params)
    assert resumed.accuracy == full.accuracy


def test_vectorised_and_sequential_trainers_agree(ds):
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    task = build_task(ds, sc, f, _cfg(rounds=2))
    a = run_fl(task, _cfg(rounds=2, path="vectorised"))
    b = run_fl(task, _cfg(rounds=2, path="sequential"))
    assert max(float((a.params[n] - b.params[n]).abs().max()) for n in a.params) <= 1e-5


def test_resume_with_other_settings_refused(ds, tmp_path):
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    run_fl(build_task(ds, sc, f, _cfg(rounds=1)), _cfg(rounds=1), checkpoint=tmp_path / "c.pt")
    with pytest.raises(InputError):
        run_fl(build_task(ds, sc, f, _cfg(rounds=2, lr=0.1)), _cfg(rounds=2, lr=0.1), checkpoint=tmp_path / "c.pt",
               resume=True)


def test_time_to_target(ds):
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    res = run_fl(build_task(ds, sc, f, _cfg(rounds=2, target=0.01)), _cfg(rounds=2, target=0.01))
    assert res.rounds_to_target == 1
    assert res.time_to_target == res.sim_time[0]


@pytest.mark.parametrize("mutate,field", [
    (lambda f: f.__setitem__((0, 0), -1.0), "allocations[0][0]"),
    (lambda f: f.__setitem__((1, 1), np.nan), "allocations[1][1]"),
    (lambda f: f.__setitem__((slice(None), 1), 0.0), "allocations[:, 1]"),
])
def test_bad_allocation(ds, mutate, field):
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    mutate(f)
    with pytest.raises(InputError) as err:
        build_task(ds, sc, f, _cfg())
    assert err.value.field == field


def test_allocation_shape_checked():
    with pytest.raises(InputError):
        check_allocation(np.ones((3, 2)), _scenario())


def test_scaled_to_fit_small_dataset(ds):
    # Prepare: 4 MUs asking for 1500 samples each from a 4000-sample training split
    sc = _scenario(d=1500)
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    # Execute
    task = build_task(ds, sc, f, _cfg())
    # Assert
    assert task.data_scale == pytest.approx(4000 / 6000)
    assert task.sizes.tolist() == [1000] * 4
    assert task.round_time == pytest.approx(round_time(sc, f, 1))
    with pytest.raises(InputError):
        build_task(ds, sc, f, _cfg(), scale_to_fit=False)
