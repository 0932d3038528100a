"""Scenario validation, file round trips and preset reproducibility (models/scenario.py)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from models import InputError, Scenario, load_scenario, preset, scenario_from_dict
from models.scenario import MSP_FIELDS, MU_FIELDS, PAIR_FIELDS, SCALAR_FIELDS, generate


def _toml_value(v):
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(float(v)) if isinstance(v, float) else str(v)


def dump_toml(d: dict) -> str:
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in d.items() if v is not None)


def write(path, data):
    if path.suffix == ".toml":
        path.write_text(dump_toml(data))
    elif path.suffix == ".yaml":
        path.write_text(yaml.safe_dump(data))
    else:
        path.write_text(json.dumps(data))
    return path


def assert_same(a: Scenario, b: Scenario) -> None:
    for name in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in SCALAR_FIELDS + ("mechanism", "name", "seed"):
        assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_file_round_trip_reproduces_every_parameter(tmp_path, suffix):
    # Prepare
    sc = preset("tiny", seed=3)
    path = write(tmp_path / f"sc{suffix}", sc.to_dict())
    # Execute
    back = load_scenario(path)
    # Assert
    assert_same(sc, back)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_presets_are_reproducible_from_seed(name):
    a, b, c = preset(name, seed=7), preset(name, seed=7), preset(name, seed=8)
    assert_same(a, b)
    assert not np.array_equal(a.D, c.D)


def test_preset_base_with_override_broadcasts_scalar(tmp_path):
    path = write(tmp_path / "s.toml", {"preset": "tiny", "seed": 1, "Rmax": 12.5, "mechanism": "unit_price"})
    sc = load_scenario(path)
    np.testing.assert_array_equal(sc.Rmax, np.full(2, 12.5))
    np.testing.assert_array_equal(sc.D, preset("tiny", seed=1).D)
    assert sc.mechanism.value == "unit_price"


BAD = [
    ({"Rmax": -1.0}, "Rmax[0]"),
    ({"F": [1.0, float("nan"), 1.0, 1.0]}, "F[1]"),
    ({"D": [[1.0, 2.0]]}, "D"),
    ({"tau": [[0.0] * 3] * 4}, "tau"),
    ({"zeta": 1.5}, "zeta[0, 0]"),
    ({"kappa": 0.0}, "kappa[0]"),
    ({"A0": -3.0}, "A0"),
    ({"eps0": float("nan")}, "eps0"),
    ({"L": 2.5}, "L"),
    ({"w_acc": 0.9}, "w_acc"),
    ({"mechanism": "auction"}, "mechanism"),
    ({"bogus": 1}, "bogus"),
    ({"S": [1e6, -2e6]}, "S[1]"),
]


@pytest.mark.parametrize("override,field", BAD)
def test_bad_input_names_its_field(override, field):
    with pytest.raises(InputError) as err:
        scenario_from_dict({"preset": "tiny", **override})
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_missing_field_without_base_is_named():
    d = preset("tiny").to_dict()
    del d["h"]
    with pytest.raises(InputError) as err:
        scenario_from_dict(d)
    assert err.value.field == "h"


def test_unknown_preset_and_missing_file():
    with pytest.raises(InputError, match="scenario"):
        load_scenario("nosuch")
    with pytest.raises(InputError, match="file not found"):
        load_scenario("/nonexistent/x.toml")


def test_default_preset_is_well_scaled():
    sc = preset("default")
    assert sc.F.min() >= 0.3 and sc.F.max() <= 1.5
    assert np.all(sc.D >= 20) and np.all(sc.D <= 400)
    assert math.isclose(sc.w_acc + sc.w_amt + sc.w_val, 1.0)


def test_generate_rejects_bad_sizes():
    with pytest.raises(InputError) as err:
        generate(0, 2)
    assert err.value.field == "n_mu"


# ---------------------------------------------------------------- issue 11 defects
@pytest.mark.parametrize("field,value", [("D", 100), ("F", 1.0), ("D", 100.0), ("Rmax", 25.0)])
def test_a_scalar_for_any_array_field_is_broadcast(field, value):
    # Prepare / Execute: issue 11 defect 4 (D and F were refused with "expected shape ... got ()")
    sc = scenario_from_dict({"preset": "tiny", field: value})
    # Assert
    arr = getattr(sc, field)
    assert arr.shape == getattr(preset("tiny"), field).shape
    assert np.all(arr == float(value))


def test_scenario_without_any_array_shaped_field_names_the_missing_size():
    base = {k: 1.0 for k in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS}
    with pytest.raises(InputError) as err:
        scenario_from_dict(base)
    assert err.value.field == "F"


@pytest.mark.parametrize("value,field", [("30", "Rmax"), (True, "Rmax"), ([30.0, "40"], "Rmax[1]"),
                                         ([30.0, False], "Rmax[1]"), ([[1, 2], [3, "4"], [5, 6], [7, 8]], "D[1, 1]")])
def test_array_fields_refuse_strings_and_booleans_as_scalar_fields_do(value, field):
    # Prepare / Execute: issue 11 defect 5 (Rmax = "30" and Rmax = true became numbers)
    key = field.split("[")[0]
    with pytest.raises(InputError) as err:
        scenario_from_dict({"preset": "tiny", key: value})
    # Assert
    assert err.value.field == field
    assert "expected a number" in err.value.reason


@pytest.mark.parametrize("text,kind", [("", "empty"), ("- 1\n- 2\n", "list"), ("null\n", "empty")])
@pytest.mark.parametrize("seed", [None, 3])
def test_empty_or_list_yaml_file_is_an_input_error_with_or_without_seed(tmp_path, text, kind, seed):
    # Prepare: issue 11 defect 2 (with --seed: TypeError traceback)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    # Execute
    with pytest.raises(InputError) as err:
        load_scenario(path, seed=seed)
    # Assert
    assert err.value.field == "scenario"
    assert ("empty" in err.value.reason) if kind == "empty" else ("list" in err.value.reason)


def test_a_result_file_reruns_its_stored_scenario(tmp_path):
    # Prepare: an equilibrium.json-like file holding a resolved (modified) scenario
    sc = preset("tiny", seed=5).replace(rho=np.full(4, 0.25), name="mine")
    path = tmp_path / "equilibrium.json"
    path.write_text(json.dumps({"status": "converged", "allocations": [[0.0] * 2] * 4, "scenario": sc.to_dict()}))
    # Execute
    back = load_scenario(path)
    # Assert
    assert back.name == "mine" and back.seed == 5
    for name in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS:
        np.testing.assert_array_equal(getattr(back, name), getattr(sc, name))
    with pytest.raises(InputError) as err:  # its parameters are drawn already: no new seed
        load_scenario(path, seed=1)
    assert err.value.field == "seed"


def test_an_error_inside_a_result_file_scenario_says_so(tmp_path):
    data = preset("tiny").to_dict()
    data["Rmax"] = [30.0, -1.0]
    path = tmp_path / "equilibrium.json"
    path.write_text(json.dumps({"allocations": [], "scenario": data}))
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert err.value.field == "scenario.Rmax[1]"


def test_a_scenario_file_is_named_after_the_file(tmp_path):
    path = tmp_path / "highway_peak.toml"
    path.write_text('preset = "tiny"\n')
    assert load_scenario(path).name == "highway_peak"
    path.write_text('preset = "tiny"\nname = "given"\n')
    assert load_scenario(path).name == "given"


def test_clip_rewards_is_one_clip_for_numpy_and_torch():
    import math

    import torch

    from models.scenario import clip_rewards

    # Prepare: two leaders' boxes, rewards below, inside and above them, and a NaN
    Rmax = np.array([10.0, 2.0])
    R = np.array([[-1.0, 1.0], [12.0, 3.0], [math.nan, 2.0]])
    # Execute
    got = clip_rewards(R, Rmax)
    t = clip_rewards(torch.as_tensor(R), torch.as_tensor(Rmax))
    # Assert: the same numbers either way, the tensor stays a tensor, the NaN stays
    want = [[0.0, 1.0], [10.0, 2.0], [math.nan, 2.0]]
    np.testing.assert_array_equal(got, want)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), want)
    assert clip_rewards(5.0, 2.0) == 2.0
