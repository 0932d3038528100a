"""fl.trainer: simulated clock, resume == uninterrupted, input checks."""
import numpy as np
import pytest
import torch

from fl.data import load_dataset
from fl.allocation import check_allocation
from fl.trainer import FLConfig, build_task, run_fl
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


# ---------------------------------------------------------------- issue 11 defects 3 and 6
def _one_round_checkpoint(ds, tmp_path):
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    ckpt = tmp_path / "c.pt"
    run_fl(build_task(ds, sc, f, _cfg(rounds=2)), _cfg(rounds=2), checkpoint=ckpt, stop_after=2)
    return sc, f, ckpt


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated", "missing"])
def test_resume_from_a_bad_or_missing_checkpoint_is_an_input_error(ds, tmp_path, damage):
    # Prepare: defect 3 (ValueError / EOFError tracebacks; a missing one silently started over)
    sc, f, ckpt = _one_round_checkpoint(ds, tmp_path)
    if damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    else:
        ckpt.unlink()
    # Execute
    with pytest.raises(InputError) as err:
        run_fl(build_task(ds, sc, f, _cfg()), _cfg(), checkpoint=ckpt, resume=True)
    # Assert
    assert err.value.field == "checkpoint"


def test_resume_with_fewer_rounds_than_the_checkpoint_is_refused(ds, tmp_path):
    sc, f, ckpt = _one_round_checkpoint(ds, tmp_path)
    with pytest.raises(InputError) as err:
        run_fl(build_task(ds, sc, f, _cfg(rounds=1)), _cfg(rounds=1), checkpoint=ckpt, resume=True)
    assert err.value.field == "rounds" and "holds 2 rounds" in err.value.reason


@pytest.mark.parametrize("change,field", [({"seed": 4}, "checkpoint.seed"), ({"lr": 0.1}, "checkpoint.local.lr"),
                                          ({"aggregation": "fedavg"}, "checkpoint.aggregation"),
                                          ({"alpha": 2.0}, "checkpoint.alpha")])
def test_resume_mismatch_names_the_setting(ds, tmp_path, change, field):
    sc, f, ckpt = _one_round_checkpoint(ds, tmp_path)
    cfg = _cfg(**change)
    with pytest.raises(InputError) as err:
        run_fl(build_task(ds, sc, f, cfg), cfg, checkpoint=ckpt, resume=True)
    assert err.value.field == field


def test_resumed_run_says_where_it_continues(ds, tmp_path):
    sc, f, ckpt = _one_round_checkpoint(ds, tmp_path)
    seen = []
    res = run_fl(build_task(ds, sc, f, _cfg()), _cfg(), checkpoint=ckpt, resume=True, on_resume=seen.append)
    assert seen == [2] and res.resumed_from == 2 and res.rounds == 3


def test_allocation_beyond_a_cpu_budget_is_refused_naming_the_mu(ds):
    # Prepare: defect 6 (100 GHz against a budget of about 1 GHz was accepted)
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    f[2, 0] = 100.0
    # Execute
    with pytest.raises(InputError) as err:
        build_task(ds, sc, f, _cfg())
    # Assert
    assert err.value.field == "allocations[2]" and "CPU budget" in err.value.reason
    check_allocation(np.tile(sc.F[:, None] / 2, (1, 2)), sc)  # the whole budget, split: feasible


def test_checkpoint_round_trip_restores_weights_and_history(tmp_path):
    from fl.trainer import HISTORY_KEYS, FLResult, load_checkpoint, save_checkpoint

    saved = FLResult(params={"w": torch.arange(3.0)}, accuracy=[0.5, 0.6], sim_time=[1.0, 2.0],
                     participants=[3, 2], wall_time=[0.1, 0.2])
    fp = {"version": 1, "seed": 3}
    save_checkpoint(tmp_path / "ck.pt", saved, fp)
    res = FLResult(params={"w": torch.zeros(3)})
    assert res.restore(load_checkpoint(tmp_path / "ck.pt", torch.device("cpu"), fp)) == 2
    assert res.resumed_from == 2 and torch.equal(res.params["w"], saved.params["w"])
    assert all(getattr(res, k) == getattr(saved, k) for k in HISTORY_KEYS)


def test_a_straggler_no_longer_sets_the_round_time(ds):
    # Prepare: MU 2 gives MSP 1 almost no CPU, so its Tcmp + Tup dwarfs the others'
    from models.iom import median_deadline, participant_times

    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    f[2, 1] = 1e-3
    times = participant_times(sc, f, 1)
    # Execute
    task = build_task(ds, sc, f, _cfg(rounds=2, deadline="auto"))
    res = run_fl(task, _cfg(rounds=2, deadline="auto"))
    # Assert: T_m = 2 x median; the straggler misses both rounds, the others are on time, and the
    # round lasts T_m, far less than the straggler's time
    assert task.deadline == pytest.approx(2 * np.median(times), rel=1e-12)
    assert task.deadline == pytest.approx(median_deadline(sc, f, 1), rel=1e-12)
    assert task.on_time.tolist() == [True, True, False, True]
    assert round_time(sc, f, 1) == pytest.approx(times.max()) and times.max() > 10 * task.deadline
    np.testing.assert_allclose(res.sim_time, [task.deadline, 2 * task.deadline], rtol=1e-12)
    assert res.missed == [1, 1] and res.participants == [4, 4]


def test_late_updates_are_not_aggregated(ds):
    # Prepare: the same task with and without the straggler in the allocation
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    f[2, 1] = 1e-3
    late = run_fl(build_task(ds, sc, f, _cfg(rounds=1, deadline="auto")), _cfg(rounds=1, deadline="auto"))
    waited = run_fl(build_task(ds, sc, f, _cfg(rounds=1)), _cfg(rounds=1))
    # Execute: the aggregate of the on-time participants alone, by the shared rule
    from fl.aggregate import make_strategy
    from fl.round import aggregate_on_time

    task = build_task(ds, sc, f, _cfg(rounds=1))
    a = {"w": torch.ones(2)}
    b = {"w": torch.full((2,), 3.0)}
    agg = aggregate_on_time(make_strategy("fedavg"), [a, b], [1.0, 1.0], [1.0, 1.0], [True, False])
    # Assert: a deadline changes the model (the straggler's update is dropped); the rule keeps on-time updates only
    assert not all(torch.equal(late.params[n], waited.params[n]) for n in late.params)
    assert waited.missed == [0] and task.deadline == np.inf
    assert torch.equal(agg["w"], a["w"])
    assert aggregate_on_time(make_strategy("fedavg"), [a, b], [1.0, 1.0], [1.0, 1.0], [False, False]) is None


@pytest.mark.parametrize("deadline", [0.0, -1.0, "soon", True])
def test_bad_deadline_is_refused(deadline):
    with pytest.raises(InputError, match="deadline"):
        _cfg(deadline=deadline)
