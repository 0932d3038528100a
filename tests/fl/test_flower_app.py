"""fl/flower_app.py: the packaged App's configuration (fast checks, no processes)."""
from __future__ import annotations

import io
import tomllib
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the Flower App needs the 'flower' extra")

from fl.flower_app import RUN_CONFIG_DEFAULTS, DeployRunConfig, node_identity  # noqa: E402
from models.errors import InputError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_declares_the_app_and_its_run_config():
    app = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "fl.flower_app:server_app", "clientapp": "fl.flower_app:client_app"}
    assert app["config"] == RUN_CONFIG_DEFAULTS  # Flower only accepts overrides of declared keys


# flwr 1.42's FAB builder calls pathspec's deprecated 'gitwildmatch' patterns (not ours to fix)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fab_ships_the_app_and_the_packages_it_imports():
    from flwr.cli.build import build_fab_from_disk

    names = set(zipfile.ZipFile(io.BytesIO(build_fab_from_disk(REPO))).namelist())
    assert {"pyproject.toml", "fl/flower_app.py", "fl/flower.py", "models/io.py"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "results/")) for n in names)


def test_run_config_defaults_and_overrides():
    rc = DeployRunConfig.from_run_config({"rounds": 7, "seed": 3, "epochs": 2, "aggregation": "fedavg"})
    assert (rc.fl.rounds, rc.fl.seed, rc.fl.epochs, rc.fl.aggregation.value) == (7, 3, 2, "fedavg")
    assert DeployRunConfig.from_run_config({}).fl.epochs is None  # 0 = the scenario's L


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
        DeployRunConfig.from_run_config(overrides)
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


def test_client_partition_is_kept_for_the_next_message_and_recomputed_for_another_recipe():
    from fl.flower_app import _client_partition

    _client_partition.cache_clear()
    net, x, y = _client_partition("mnist5k", None, (30, 20), 0.5, 0, 1)
    assert x.shape[0] == y.shape[0] == 20
    again = _client_partition("mnist5k", None, (30, 20), 0.5, 0, 1)
    assert again[0] is net and again[1] is x  # the next round's message: no reload, no re-split
    other = _client_partition("mnist5k", None, (30, 20), 0.5, 0, 0)
    assert other[1].shape[0] == 30 and other[0] is not net
    _client_partition.cache_clear()
