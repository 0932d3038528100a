"""models.results: the result files read back as typed, validated objects."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import InputError, preset
from models.results import EquilibriumResult, FailureResult, FLRunResult, load_equilibrium, load_failure, load_fl, load_result


def _equilibrium(sc):
    n, m = sc.n_mu, sc.n_msp
    return {
        "status": "converged", "rewards": [1.5] * m, "allocations": [[0.1] * m] * n, "iom": [[0.2] * m] * n,
        "msp_utility": [3.0] * m, "mu_utility": [0.5] * n,
        "certificate": {"max_deviation_gain": 1e-12, "deviation_gains": [1e-12] * m, "kkt_residual": 1e-10,
                        "follower_unique": True, "follower_spread": 0.0, "numpy_kkt_residual": 1e-11},
        "iterations": 12, "sweeps": 3, "seconds": 0.1, "timings": {"build": 0.01},
        "history": [{"sweep": 1, "rewards": [1.5] * m, "utilities": [3.0] * m, "step": 0.5, "relative_step": 0.1,
                     "stationarity": 1e-3, "iterations": 4}],
        "options": {"method": "gauss-seidel"}, "scenario": sc.to_dict(),
    }


def test_equilibrium_reads_back_typed(tmp_path):
    # Prepare
    sc = preset("tiny")
    path = tmp_path / "equilibrium.json"
    path.write_text(json.dumps(_equilibrium(sc)))
    # Execute
    eq = load_equilibrium(path)
    # Assert
    assert isinstance(eq, EquilibriumResult) and eq.status == "converged"
    assert eq.rewards_array.shape == (2,) and eq.allocations_array.shape == (4, 2)
    assert eq.certificate.follower_unique is True and eq.history[0].sweep == 1
    np.testing.assert_array_equal(eq.to_scenario().D, sc.D)
    assert isinstance(load_result(path), EquilibriumResult)


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("rewards"), "rewards"),
    (lambda d: d.__setitem__("sweeps", "many"), "sweeps"),
    (lambda d: d["certificate"].__setitem__("kkt_residual", "small"), "certificate.kkt_residual"),
    (lambda d: d["history"][0].__setitem__("step", None), "history[0].step"),
])
def test_malformed_equilibrium_names_the_field(tmp_path, mutate, field):
    data = _equilibrium(preset("tiny"))
    mutate(data)
    path = tmp_path / "equilibrium.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_equilibrium(path)
    assert err.value.field == f"equilibrium: {field}"


def test_fl_run_reads_back_and_checks_lengths(tmp_path):
    data = {"dataset": "mnist5k", "msp": 0, "aggregation": "iom", "seed": 0, "rounds": 2, "accuracy": [0.5, 0.7],
            "sim_time": [10.0, 20.0], "target": 0.9, "final_accuracy": 0.7}
    path = tmp_path / "fl.json"
    path.write_text(json.dumps(data))
    run = load_fl(path)
    assert isinstance(run, FLRunResult) and run.accuracy == [0.5, 0.7] and run.time_to_target is None
    data["sim_time"] = [10.0]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_fl(path)
    assert "one value per round" in str(err.value)


@pytest.mark.parametrize("text", ["", "[1, 2]", "{\"x\": 1}"])
def test_not_a_result_file(tmp_path, text):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(InputError):
        load_result(path)


@pytest.mark.parametrize("loader, data", [
    (load_equilibrium, _equilibrium(preset("tiny"))),
    (load_failure, {"status": "max_iter", "message": "no convergence", "scenario": preset("tiny").to_dict()}),
])
def test_to_scenario_of_both_solve_records(tmp_path, loader, data):
    # Prepare
    sc = preset("tiny")
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    # Execute
    record = loader(path)
    # Assert
    np.testing.assert_array_equal(record.to_scenario().F, sc.F)
    assert list(type(record).model_fields)[-1] == "scenario"
    data["scenario"]["F"] = [-1.0] * sc.n_mu
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        loader(path).to_scenario()
    assert err.value.field.startswith("scenario.F")
    assert isinstance(load_result(path), FailureResult) is (loader is load_failure)
