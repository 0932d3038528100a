"""A user's own data set (fl.data.register_dataset) and aggregation rule
(fl.aggregate.register_aggregation), registered from outside the package and used end to end:
``run_fl`` and ``metatrading --plugin ... fl``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fl.aggregate import AGGREGATIONS, FedAvg, RoundUpdates, Strategy, make_strategy, register_aggregation
from fl.data import DATASETS, RawSplits, load_dataset, register_dataset
from fl.trainer import FLConfig, build_task, run_fl
from models.errors import InputError
from models.scenario import generate

torch.set_num_threads(1)

#: written into the plugin file of the CLI test, and executed here for the in-process tests
PLUGIN = '''
import numpy as np
import torch

from fl.aggregate import Strategy, register_aggregation
from fl.data import RawSplits, register_dataset


def read_quadrants(folder, image_size):
    """4 classes: a bright 8x8 square in quadrant k of a noisy 16x16 image."""
    g = torch.Generator().manual_seed(0)
    n = 600
    y = torch.arange(n) % 4
    x = torch.randint(0, 80, (n, 1, 16, 16), dtype=torch.uint8, generator=g)
    for k in range(4):
        r, c = divmod(k, 2)
        x[y == k, :, 8 * r:8 * r + 8, 8 * c:8 * c + 8] += 150
    return RawSplits(x[:500], y[:500], x[500:], y[500:], source="generated quadrants", classes=(0, 1, 2, 3))


class SqrtData(Strategy):
    """w_n ~ sqrt(D_nm)."""

    def weights(self, r):
        return np.sqrt(r.sizes)


register_dataset("quadrants", read_quadrants, root="ignored", help="generated 4-class quadrants", replace=True)
register_aggregation("sqrt-data", SqrtData, help="w_n ~ sqrt(D_nm)", replace=True)
'''


@pytest.fixture
def plugin():
    exec(compile(PLUGIN, "plugin", "exec"), {})
    yield
    DATASETS.pop("quadrants", None)
    for name in ("sqrt-data", "fedavg-copy", "recording"):
        AGGREGATIONS.pop(name, None)


def _scenario(n=4, m=2):
    sc = generate(n, m, seed=1)  # unequal data amounts, so that the rules' weights differ
    return sc.replace(D=np.tile(np.linspace(20.0, 80.0, n)[:, None], (1, m)), L=1)


def _cfg(**kw):
    base = dict(rounds=3, msp=0, seed=3, batch_size=8, lr=0.05, momentum=0.5, path="sequential")
    base.update(kw)
    return FLConfig(**base)


def test_a_registered_data_set_loads_and_trains(plugin):
    # Prepare
    ds = load_dataset("quadrants")
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    # Execute
    res = run_fl(build_task(ds, sc, f, _cfg(rounds=3)), _cfg(rounds=3))
    # Assert: shared standardisation and checks applied; the CNN learns the quadrants
    assert (ds.name, ds.num_classes, ds.shape, ds.n_train, ds.n_test) == ("quadrants", 4, (1, 16, 16), 500, 100)
    assert abs(float(ds.train_x.mean())) < 1e-4 and float(ds.train_x.std()) == pytest.approx(1.0, abs=1e-3)
    assert ds.source == "generated quadrants"
    assert res.accuracy[-1] > 0.5  # chance is 0.25


def test_a_registered_rule_sees_the_round_and_is_used(plugin):
    # Prepare: a FedAvg under another name (same numbers), and a rule that records what it sees
    seen: list[RoundUpdates] = []

    class Recording(FedAvg):
        def weights(self, r):
            seen.append(r)
            return super().weights(r)

    register_aggregation("fedavg-copy", FedAvg)
    register_aggregation("recording", Recording)
    ds = load_dataset("quadrants")
    sc = _scenario()
    f = np.tile(sc.F[:, None] / 2, (1, 2))
    runs = {}
    # Execute
    for rule in ("fedavg", "fedavg-copy", "recording", "sqrt-data"):
        cfg = _cfg(rounds=2, aggregation=rule)
        runs[rule] = run_fl(build_task(ds, sc, f, cfg), cfg)
    # Assert
    same = [torch.equal(runs["fedavg"].params[k], runs["fedavg-copy"].params[k]) for k in runs["fedavg"].params]
    assert all(same)
    assert not all(torch.equal(runs["fedavg"].params[k], runs["sqrt-data"].params[k]) for k in runs["fedavg"].params)
    assert len(seen) == 2 and all(r.global_params is not None for r in seen)
    k = len(seen[0].sizes)
    assert all(t.shape[0] == k for t in seen[0].params.values())
    assert make_strategy("sqrt-data").name == "sqrt-data"


def test_registries_refuse_bad_entries(plugin):
    with pytest.raises(InputError, match="already registered"):
        register_dataset("quadrants", lambda folder, size: None)
    with pytest.raises(InputError, match="already registered"):
        register_aggregation("iom", FedAvg)
    with pytest.raises(InputError, match="quadrants"):  # the message lists the registered ones
        load_dataset("cifar-10")
    with pytest.raises(InputError, match="sqrt-data"):
        make_strategy("median")
    register_dataset("broken", lambda folder, size: "not raw", root="ignored")
    try:
        with pytest.raises(InputError, match="RawSplits"):
            load_dataset("broken")
    finally:
        DATASETS.pop("broken")

    class Negative(Strategy):
        def weights(self, r):
            return -r.sizes

    with pytest.raises(InputError, match="weights"):
        Negative().aggregate([{"w": torch.ones(2)}, {"w": torch.zeros(2)}], [1, 1], [1, 1])


def test_plugin_data_set_and_rule_from_the_command_line(tmp_path, capsys):
    # Prepare
    from benchmarks.cli import main

    module = tmp_path / "my_fl.py"
    module.write_text(PLUGIN)
    out = tmp_path / "run"
    try:
        # Execute
        rc_help = main(["--plugin", str(module), "fl", "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        rc = main(["--plugin", str(module), "fl", "--scenario", "tiny", "--dataset", "quadrants",
                   "--aggregation", "sqrt-data", "--rounds", "1", "--epochs", "1", "--batch-size", "8",
                   "--threads", "1", "--no-progress", "--out", str(out)])
        rc_missing = main(["--plugin", str(tmp_path / "nope.py"), "fl", "--out", str(tmp_path / "x")])
    finally:
        DATASETS.pop("quadrants", None)
        AGGREGATIONS.pop("sqrt-data", None)
    # Assert
    assert rc_help == 0
    assert "quadrants: generated 4-class quadrants" in shown and "sqrt-data: w_n ~ sqrt(D_nm)" in shown
    assert rc == 0
    report = json.loads((out / "fl.json").read_text())
    assert report["dataset"] == "quadrants" and report["aggregation"] == "sqrt-data"
    assert rc_missing == 2 and "--plugin" in capsys.readouterr().err
