"""fl/flower/simulation.py: Flower's simulation engine (Ray) runs the App with a run config and
ends with the built-in trainer's weights (``metatrading fl``, ``fl.trainer.run_fl``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("flwr", reason="the Flower App needs the 'flower' extra (flwr, ray)")
pytest.importorskip("ray", reason="Flower's simulation engine needs ray")

from fl.data import load_dataset  # noqa: E402
from fl.flower.simulation import FlowerOptions, quiet_flower, run_flower_simulation  # noqa: E402
from fl.nets import make_net  # noqa: E402
from fl.train import get_params  # noqa: E402
from fl.trainer import FLConfig, build_task, run_fl  # noqa: E402
from models.errors import InputError  # noqa: E402
from models.io import atomic_write_json  # noqa: E402
from models.scenario import generate  # noqa: E402

SEED = 3
ROUNDS = 2
TOL = 1e-5


@pytest.fixture(scope="module")
def allocation(tmp_path_factory):
    """3 MUs x 1 MSP; MU 1 allocates no CPU to the MSP, so it sits the rounds out."""
    sc = generate(3, 1, seed=SEED)
    f = sc.F[:, None].copy()
    f[1, 0] = 0.0
    path = tmp_path_factory.mktemp("alloc") / "equilibrium.json"
    atomic_write_json(path, {"allocations": f.tolist(), "scenario": sc.to_dict()})
    return path, sc, f


@pytest.fixture
def one_torch_thread():
    # as in each ClientApp; small batches also run far faster on one thread than on two contended ones
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def max_gap(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.slow
def test_flower_simulation_of_the_app_equals_the_builtin_trainer(allocation, one_torch_thread, tmp_path):
    # Prepare: the task metatrading fl trains, and its result
    path, sc, f = allocation
    cfg = FLConfig(rounds=ROUNDS, seed=SEED, epochs=1, path="sequential")
    task = build_task(load_dataset("mnist5k"), sc, f, cfg)
    expected = run_fl(task, cfg)
    # Execute: the App (fl.flower.app) in Flower's simulation engine, one virtual SuperNode per participant
    result = run_flower_simulation({"allocation": str(path), "rounds": ROUNDS, "seed": SEED, "epochs": 1,
                                    "round-timeout": 120.0, "out-dir": str(tmp_path / "out")},
                                   options=FlowerOptions(client_num_cpus=1.0))
    # Assert: same model and accuracy as the in-process trainer; it did train; fl.json as metatrading fl's
    assert max_gap(result.params, expected.params) < TOL
    torch.manual_seed(SEED)
    init = get_params(make_net(task.dataset.shape, task.dataset.num_classes))
    assert max_gap(result.params, init) > 1e-3
    assert np.allclose(result.report["accuracy"], expected.accuracy, atol=1e-9)
    assert result.report["path"] == "flower-simulation" and result.report["participant_ids"] == [0, 2]
    assert [r["clients"] for r in result.rounds] == [2, 2]
    assert (tmp_path / "out" / "fl.json").is_file() and (tmp_path / "out" / "fl_params.pt").is_file()


@pytest.mark.parametrize("overrides, field", [
    ({"rounds": 0}, "run-config.rounds"),
    ({"seed": 1.5}, "run-config.seed"),
    ({"aggregation": "median"}, "run-config.aggregation"),
    ({"nope": 1}, "run-config.nope"),
    ({"allocation": "/nonexistent/eq.json"}, "run-config.allocation"),
])
def test_bad_run_config_rejected_before_ray_starts(overrides, field):
    import ray

    with pytest.raises(InputError) as err:
        run_flower_simulation(overrides)
    assert err.value.field == field
    assert not ray.is_initialized()


@pytest.mark.parametrize("kwargs, field", [
    ({"client_num_cpus": 0}, "client_num_cpus"),
    ({"ray_num_cpus": 0}, "ray_num_cpus"),
])
def test_options_validated(kwargs, field):
    with pytest.raises(InputError) as err:
        FlowerOptions(**kwargs)
    assert err.value.field == field


@pytest.mark.slow
def test_client_failure_is_reported_and_ray_shut_down(tmp_path, mnist_writer, allocation):
    # Prepare: a data set folder the ServerApp reads, then emptied before the ClientApps load it
    import ray

    import fl.data

    mnist_writer(tmp_path / "data", n_train=400, n_test=10, seed=0)
    fl.data.load_dataset("fashion-mnist", root=tmp_path / "data")
    real = fl.flower.runconfig.task_from_run_config

    def then_remove(rc):
        out = real(rc)
        for f in (tmp_path / "data").iterdir():
            f.unlink()
        return out

    import fl.flower.simulation as simulation

    simulation.task_from_run_config, restore = then_remove, simulation.task_from_run_config
    try:
        # Execute / Assert: the ClientApp's InputError reaches the caller; Ray is stopped
        with pytest.raises(RuntimeError, match="failed.*missing .*train-images-idx3-ubyte"):
            run_flower_simulation({"allocation": str(allocation[0]), "dataset": "fashion-mnist",
                                   "data-root": str(tmp_path / "data"), "rounds": 1, "epochs": 1,
                                   "round-timeout": 120.0})
    finally:
        simulation.task_from_run_config = restore
    assert not ray.is_initialized()


def test_only_the_run_simulation_deprecation_is_silenced():
    # Prepare: a handler on Flower's logger records what would be printed
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("flwr")
    logger.addHandler(handler)
    try:
        # Execute: the warning run_simulation logs, and any other deprecation
        with quiet_flower(verbose=True):
            logger.warning("DEPRECATED FEATURE: The `run_simulation` function is deprecated and will be removed")
            logger.warning("DEPRECATED FEATURE: something else")
    finally:
        logger.removeHandler(handler)
    # Assert
    assert len(seen) == 1 and "something else" in seen[0]
