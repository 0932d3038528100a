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
