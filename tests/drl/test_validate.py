"""drl/validate.py: confidence intervals, reward checks, dynamic validation with fixed rewards."""
from __future__ import annotations

import numpy as np
import pytest

from drl import check_rewards, confidence_interval, validate_dynamic
from models import InputError, preset


def test_confidence_interval_is_the_student_t_interval():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    ci = confidence_interval(x)
    hw = 3.182446305284263 * x.std(ddof=1) / 2.0  # t_{0.975, 3}
    assert ci["mean"] == pytest.approx(3.5) and ci["half_width"] == pytest.approx(hw, rel=1e-9)
    assert ci["low"] == pytest.approx(3.5 - hw) and ci["n"] == 4
    assert confidence_interval([2.0])["half_width"] is None
    assert confidence_interval([])["n"] == 0


def test_check_rewards_names_the_entry():
    sc = preset("tiny")
    np.testing.assert_array_equal(check_rewards(sc, [1.0, 2.0]), [1.0, 2.0])
    for bad, field in (([1.0], "--rewards"), ([1.0, 31.0], "--rewards[1]"), ([np.nan, 1.0], "--rewards[0]")):
        with pytest.raises(InputError) as err:
            check_rewards(sc, bad)
        assert err.value.field == field


def test_dynamic_validation_of_fixed_rewards_uses_common_rounds():
    # the same seeds give the same rounds, so two runs agree exactly; half the EPEC rewards lose utility
    sc = preset("tiny")
    a = validate_dynamic(sc, [5.0, 5.0], rounds=3, seeds=[0, 1], grid=9)
    b = validate_dynamic(sc, [5.0, 5.0], rounds=3, seeds=[0, 1], grid=9)
    assert [r["mean_gap_pct"] for r in a["per_round"]] == [r["mean_gap_pct"] for r in b["per_round"]]
    assert a["oracle_failed_rounds"] == 0 and len(a["per_round"]) == 6
    assert np.all(np.isfinite(a["utility_gap_pct"]))
    half = validate_dynamic(sc, 0.5 * a["epec_rewards"], rounds=2, seeds=[0], grid=9)
    assert np.all(half["reward_gap_pct"] < -40) and half["max_deviation_gain_pct"] > 0
