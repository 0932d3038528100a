"""fl/flower.py: a real Flower simulation (Ray backend) equals the in-process FL loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("flwr", reason="the Flower adapter needs the 'flower' extra (flwr, ray)")
pytest.importorskip("ray", reason="Flower's simulation engine needs ray")

from fl.aggregate import FedAvg, IoMFedAvg  # noqa: E402
from fl.data import load_dataset  # noqa: E402
from fl.flower import FlowerOptions, run_flower_simulation  # noqa: E402
from fl.nets import make_net  # noqa: E402
from fl.partition import dirichlet_partition  # noqa: E402
from fl.train import LocalTrainConfig, client_seed, get_params, local_update_sequential  # noqa: E402
from models.errors import InputError  # noqa: E402

SEED = 3
ROUNDS = 2
SIZES = [60, 90, 120]
TOL = 1e-5
# round 0: every client trains; round 1: client 1 allocates no CPU (IoM 0) and sits out
IOM = np.array([[0.2, 0.5, 0.3],
                [0.6, 0.0, 0.4]])


@pytest.fixture(scope="module")
def task():
    ds = load_dataset("mnist5k")
    parts = dirichlet_partition(ds.train_y.numpy(), SIZES, alpha=0.5, seed=SEED)
    cfg = LocalTrainConfig(epochs=1, batch_size=32, lr=0.05)
    torch.manual_seed(SEED)
    init = get_params(make_net(ds.shape, ds.num_classes))
    return ds, parts, cfg, init


@pytest.fixture
def one_torch_thread():
    # as in each ClientApp (FlowerOptions.torch_threads=1); small batches also run far faster
    # on one thread than on two contended ones
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def builtin_rounds(ds, parts, iom, cfg, init, rule):
    """The reference: each round, every client with IoM > 0 trains, then a weighted average."""
    net = make_net(ds.shape, ds.num_classes)
    params = {k: v.clone() for k, v in init.items()}
    sizes = np.array([len(p) for p in parts], dtype=float)
    for r in range(ROUNDS):
        active = np.flatnonzero(iom[r] > 0)
        updates = [local_update_sequential(net, params, ds.train_x[torch.from_numpy(parts[i])],
                                           ds.train_y[torch.from_numpy(parts[i])], cfg,
                                           client_seed(SEED, r, int(i))) for i in active]
        params = rule.aggregate(updates, iom=iom[r, active], sizes=sizes[active])
    return params


def max_gap(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.slow
def test_flower_simulation_equals_builtin_loop(task, one_torch_thread):
    # Prepare
    ds, parts, cfg, init = task
    expected = builtin_rounds(ds, parts, IOM, cfg, init, IoMFedAvg())
    size_weighted = builtin_rounds(ds, parts, IOM, cfg, init, FedAvg())
    # Execute: 3 SuperNodes in Flower's simulation engine on Ray, one CPU each
    result = run_flower_simulation(ds, parts, IOM, ROUNDS, cfg, SEED, initial_params=init,
                                   options=FlowerOptions(client_num_cpus=1.0,
                                                         round_timeout_s=120.0))
    # Assert: same model as the in-process loop; the IoM weighting is what made it
    assert max_gap(result.params, expected) < TOL
    assert max_gap(expected, init) > 1e-3
    assert max_gap(size_weighted, expected) > 100 * TOL
    assert [r["round"] for r in result.rounds] == list(range(ROUNDS))
    assert [r["clients"] for r in result.rounds] == [3, 2]
    assert all(0.0 <= r["test_acc"] <= 1.0 and np.isfinite(r["test_loss"])
               for r in result.rounds)


@pytest.mark.parametrize("iom, rounds, seed, field", [
    ([0.2, 0.5], 1, 0, "iom"),
    ([[0.2, 0.5, 0.3]] * 3, 2, 0, "iom"),
    ([[0.2, 0.5, 0.3], [0.0, 0.0, 0.0]], 2, 0, "iom[1]"),
    ([0.2, -0.5, 0.1], 1, 0, "iom"),
    ([0.2, float("nan"), 0.1], 1, 0, "iom"),
    ([0.2, 0.5, 0.3], 0, 0, "rounds"),
    ([0.2, 0.5, 0.3], 1, 1.5, "seed"),
])
def test_bad_input_rejected_before_ray_starts(task, iom, rounds, seed, field):
    ds, parts, cfg, init = task
    with pytest.raises(InputError) as err:
        run_flower_simulation(ds, parts, iom, rounds, cfg, seed, initial_params=init)
    assert err.value.field == field


def test_partition_outside_the_data_rejected(task):
    ds, parts, cfg, init = task
    bad = [parts[0], np.array([ds.n_train]), parts[2]]
    with pytest.raises(InputError, match=r"partitions\[1\]"):
        run_flower_simulation(ds, bad, [1.0, 1.0, 1.0], 1, cfg, SEED, initial_params=init)


@pytest.mark.parametrize("kwargs, field", [
    ({"client_num_cpus": 0}, "client_num_cpus"),
    ({"ray_num_cpus": 0}, "ray_num_cpus"),
    ({"round_timeout_s": -1}, "round_timeout_s"),
    ({"torch_threads": 0}, "torch_threads"),
])
def test_options_validated(kwargs, field):
    with pytest.raises(InputError) as err:
        FlowerOptions(**kwargs)
    assert err.value.field == field


@pytest.mark.slow
def test_client_failure_is_reported_and_ray_shut_down(tmp_path, mnist_writer):
    # Prepare: a data set whose folder vanishes before the SuperNodes reload it
    import ray

    mnist_writer(tmp_path, n_train=40, n_test=10, seed=0)
    ds = load_dataset("fashion-mnist", root=tmp_path)
    for f in tmp_path.iterdir():
        f.unlink()
    parts = [np.arange(0, 20), np.arange(20, 40)]
    # Execute / Assert: the ClientApp's InputError reaches the caller; Ray is stopped
    with pytest.raises(RuntimeError, match="failed.*root: missing .*train-images-idx3-ubyte"):
        run_flower_simulation(ds, parts, [1.0, 1.0], 1, LocalTrainConfig(epochs=1), SEED,
                              options=FlowerOptions(round_timeout_s=120.0))
    assert not ray.is_initialized()


def test_only_the_run_simulation_deprecation_is_silenced():
    # Prepare: a handler on Flower's logger records what would be printed
    import logging

    from flwr.supercore.logger import warn_deprecated_feature

    from fl.flower import _quiet_flower

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logging.getLogger("flwr").addHandler(handler)
    try:
        # Execute: the warning run_simulation logs, and any other deprecation
        with _quiet_flower(verbose=True):
            warn_deprecated_feature("The `run_simulation` function is deprecated and will be removed")
            warn_deprecated_feature("something else")
    finally:
        logging.getLogger("flwr").removeHandler(handler)
    # Assert
    assert len(seen) == 1 and "something else" in seen[0]
