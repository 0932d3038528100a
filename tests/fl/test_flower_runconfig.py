"""fl/flower/runconfig.py and fl/flower/app.py: the App's configuration (fast checks, no processes)."""
from __future__ import annotations

import io
import tomllib
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the Flower App needs the 'flower' extra")

from fl.flower.runconfig import AppRunConfig, run_config_defaults, node_identity  # noqa: E402
from models.errors import InputError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_declares_the_app_and_its_run_config():
    app = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "fl.flower.app:server_app", "clientapp": "fl.flower.app:client_app"}
    # the one place of the run config's keys and defaults: the App reads them there
    assert run_config_defaults() == app["config"] and run_config_defaults(REPO)["rounds"] == app["config"]["rounds"]
    import fl.flower.app as module

    for name in ("server_app", "client_app"):  # the entry points resolve to Flower's objects
        assert type(getattr(module, name)).__name__ == {"server_app": "ServerApp", "client_app": "ClientApp"}[name]


# flwr 1.42's FAB builder calls pathspec's deprecated 'gitwildmatch' patterns (not ours to fix)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fab_ships_the_app_and_the_packages_it_imports():
    from flwr.cli.build import build_fab_from_disk

    names = set(zipfile.ZipFile(io.BytesIO(build_fab_from_disk(REPO))).namelist())
    assert {"pyproject.toml", "fl/flower/app.py", "fl/flower/records.py", "fl/flower/gate.py", "models/io.py"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "results/")) for n in names)


def test_run_config_defaults_and_overrides():
    rc = AppRunConfig.from_run_config({"rounds": 7, "seed": 3, "epochs": 2, "aggregation": "fedavg"})
    assert (rc.fl.rounds, rc.fl.seed, rc.fl.epochs, rc.fl.aggregation) == (7, 3, 2, "fedavg")
    assert AppRunConfig.from_run_config({}).fl.epochs is None  # 0 = the scenario's L


@pytest.mark.parametrize("overrides, field", [
    ({"rounds": 0}, "run-config.rounds"),
    ({"rounds": 1.5}, "run-config.rounds"),
    ({"alpha": -1.0}, "run-config.alpha"),
    ({"aggregation": "median"}, "run-config.aggregation"),
    ({"round-timeout": 0.0}, "run-config.round-timeout"),
    ({"epochs": -1}, "run-config.epochs"),
    ({"batch-size": 0}, "run-config.batch-size"),
    ({"nope": 1}, "run-config.nope"),
])
def test_bad_run_config_names_the_key(overrides, field):
    with pytest.raises(InputError) as err:
        AppRunConfig.from_run_config(overrides)
    assert err.value.field == field


@pytest.mark.parametrize("node_config, field", [
    ({"num-partitions": 3, "mu-id": 0}, "node-config.partition-id"),
    ({"partition-id": 3, "num-partitions": 3, "mu-id": 0}, "node-config.partition-id"),
    ({"partition-id": 0, "num-partitions": 3, "mu-id": -1}, "node-config.mu-id"),
    ({"partition-id": "0", "num-partitions": 3, "mu-id": 0}, "node-config.partition-id"),
])
def test_bad_node_config_names_the_key(node_config, field):
    with pytest.raises(InputError) as err:
        node_identity(node_config)
    assert err.value.field == field


def test_node_identity():
    assert node_identity({"partition-id": 2, "num-partitions": 3, "mu-id": 17}) == (2, 3, 17)
    # the simulation engine's nodes know only their partition
    assert node_identity({"partition-id": 1, "num-partitions": 3}) == (1, 3, None)


def test_client_partition_is_kept_for_the_next_message_and_recomputed_for_another_recipe():
    from fl.flower.app import _client_partition

    _client_partition.cache_clear()
    net, x, y = _client_partition("mnist5k", None, (30, 20), 0.5, 0, 1)
    assert x.shape[0] == y.shape[0] == 20
    again = _client_partition("mnist5k", None, (30, 20), 0.5, 0, 1)
    assert again[0] is net and again[1] is x  # the next round's message: no reload, no re-split
    other = _client_partition("mnist5k", None, (30, 20), 0.5, 0, 0)
    assert other[1].shape[0] == 30 and other[0] is not net
    _client_partition.cache_clear()


@pytest.mark.parametrize("value, expect", [("inf", float("inf")), ("auto", "auto"), ("12.5", 12.5), (30.0, 30.0)])
def test_run_config_deadline(value, expect):
    assert AppRunConfig.from_run_config({"deadline": value}).fl.deadline == expect


@pytest.mark.parametrize("value", ["soon", "0", -3.0])
def test_bad_run_config_deadline_names_the_key(value):
    with pytest.raises(InputError) as err:
        AppRunConfig.from_run_config({"deadline": value})
    assert err.value.field == "run-config.deadline"


def test_the_flower_strategy_drops_late_updates():
    # Prepare: two clients, client 1 misses the deadline; replies as the ServerApp receives them
    import numpy as np
    import torch

    from fl.aggregate import make_strategy
    from fl.flower.records import ARRAYS_KEY, CLIENT_ID, METRICS_KEY
    from fl.flower.strategy import WeightedFedAvg

    class Reply:
        def __init__(self, cid, value):
            self.content = {METRICS_KEY: {CLIENT_ID: cid}, ARRAYS_KEY: {"w": torch.full((2,), value)}}

        def has_error(self):
            return False

    identity = type("Layout", (), {"pack": staticmethod(lambda p: p), "unpack": staticmethod(lambda p: p)})
    strategy = WeightedFedAvg(np.ones((1, 2)), np.ones(2), make_strategy("fedavg"), 10.0, identity,
                                         on_time=np.array([True, False]))
    strategy.round_clients[1], strategy.round_t0[1] = [0, 1], 0.0
    # Execute
    agg, metrics = strategy.aggregate_train(1, [Reply(0, 1.0), Reply(1, 5.0)])
    # Assert: the late client's update is not in the global model
    assert torch.equal(agg["w"], torch.ones(2)) and metrics["clients"] == 1
