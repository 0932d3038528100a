"""Certified equilibrium paths (epec/sweep.py): continuation finds the points cold solves find, the
sensitivities of the implicit function theorem agree with finite differences of re-solved
equilibria, kinks are reported instead of derivatives, and a path resumed from its records goes
on exactly as it would have."""
from __future__ import annotations

import numpy as np
import pytest

from epec.sweep import SweepOptions, apply_parameter, path_tasks, sensitivities, sweep, sweep_path
from epec.sweep import _outcome, _solve
from models import preset
from models.errors import InputError

#: a coarse certificate grid keeps every solve of the tiny game well under a second
OPTS = SweepOptions(grid=11)


# ------------------------------------------------------------------------ the parameter
def test_apply_parameter_broadcasts_rescales_and_redraws():
    sc = preset("tiny")
    assert np.all(apply_parameter(sc, "rho", 0.5).rho == 0.5)
    assert np.all(apply_parameter(sc, "Rmax", 12).Rmax == 12.0)
    assert apply_parameter(sc, "A0", 60).A0 == 60.0
    w = apply_parameter(sc, "w_acc", 0.7)
    assert w.w_acc == 0.7 and w.w_acc + w.w_amt + w.w_val == 1.0
    assert w.w_amt / w.w_val == pytest.approx(sc.w_amt / sc.w_val)
    big = apply_parameter(sc.replace(A0=45.0), "n_mu", 7)
    assert (big.n_mu, big.n_msp, big.A0) == (7, 2, 45.0)
    assert np.array_equal(big.F, apply_parameter(sc, "n_mu", 7).F)  # redrawn from the same seed


@pytest.mark.parametrize("name, value, field", [("rho", -1.0, "rho"), ("w_acc", 1.5, "w_acc"),
                                                ("n_msp", 2.5, "n_msp"), ("nope", 1.0, "param"),
                                                ("L", 2.5, "L")])
def test_apply_parameter_rejects_bad_values_naming_the_field(name, value, field):
    with pytest.raises(InputError) as err:
        apply_parameter(preset("tiny"), name, value)
    assert err.value.field.startswith(field)


# ------------------------------------------------------------------------ continuation
@pytest.fixture(scope="module")
def paths():
    """A short smooth path of rho on tiny, by continuation and by cold solves."""
    values = [0.4, 0.45, 0.5]
    warm = sweep(preset("tiny"), "rho", values, options=OPTS)
    cold = sweep(preset("tiny"), "rho", values, options=SweepOptions(grid=11, continuation=False,
                                                                     sensitivities=False))
    return values, warm, cold


def test_continuation_finds_the_points_of_cold_solves(paths):
    values, warm, cold = paths
    assert [r["value"] for r in warm] == values
    assert all(r["ok"] for r in warm + cold)
    assert [r["start"] for r in warm] == ["cold", "corrected", "corrected"]
    assert [r["start"] for r in cold] == ["cold"] * 3
    for a, b in zip(warm, cold):
        np.testing.assert_allclose(a["rewards"], b["rewards"], atol=1e-5)
        np.testing.assert_allclose(a["msp_utility"], b["msp_utility"], rtol=1e-6)


def test_the_corrected_start_is_the_next_equilibrium(paths):
    # chord Newton on the equilibrium conditions from the predicted start: the diagonalisation
    # only confirms it (one sweep), where the cold solves need several
    _, warm, cold = paths
    assert [r["sweeps"] for r in warm[1:]] == [1, 1]
    assert all(r["sweeps"] > 1 for r in cold)


def test_the_predictor_lands_near_the_next_point(paths):
    _, warm, _ = paths
    for prev, rec in zip(warm, warm[1:]):
        step = rec["value"] - prev["value"]
        predicted = np.add(prev["rewards"], step * np.asarray(prev["sensitivity"]["dR"]))
        # first order: the error is O(step^2), far below the zero-order guess
        assert np.max(np.abs(predicted - rec["rewards"])) < 0.1 * np.max(np.abs(np.subtract(prev["rewards"],
                                                                                             rec["rewards"])))


def test_a_resumed_path_goes_on_as_it_would_have(paths):
    values, warm, _ = paths
    task = path_tasks(preset("tiny"), "rho", values, options=OPTS, done=warm[:2])[0]
    records = sweep_path(task)
    assert records[:2] == warm[:2]
    assert records[2]["start"] == "corrected"
    # the same start, the same equilibrium: a resumed path compiles its game afresh, so the
    # solver's internal warm state (multipliers) differs and the last digits may too
    np.testing.assert_allclose(records[2]["rewards"], warm[2]["rewards"], rtol=1e-8, atol=1e-10)


def test_two_parameters_give_one_path_per_outer_value_in_grid_order():
    recs = sweep(preset("tiny"), "rho", [0.4, 0.45], param2="lam", values2=[40.0, 50.0],
                 options=SweepOptions(grid=11, sensitivities=False))
    assert [r["index"] for r in recs] == [0, 1, 2, 3]
    assert [(r["params"]["rho"], r["params"]["lam"]) for r in recs] == [(0.4, 40.0), (0.45, 40.0), (0.4, 50.0),
                                                                        (0.45, 50.0)]
    assert [r["start"] for r in recs] == ["cold", "previous", "cold", "previous"]
    assert all(r["ok"] for r in recs)


def test_a_sweep_rejects_bad_values_before_any_solve():
    with pytest.raises(InputError) as err:
        sweep(preset("tiny"), "rho", [0.4, -0.1], options=OPTS)
    assert err.value.field.startswith("rho")
    with pytest.raises(InputError):
        sweep(preset("tiny"), "rho", [0.4], param2="rho", values2=[0.5], options=OPTS)


# ------------------------------------------------------------------------ sensitivities
def _finite_difference(base, name: str, value: float, rel: float = 3e-3) -> dict:
    """Central differences of equilibria re-solved cold at value -+ d."""
    d = rel * abs(value)
    out = []
    for v in (value + d, value - d):
        sc = apply_parameter(base, name, v)
        sol = _solve(sc, OPTS)
        assert sol.ok, sol.result.message
        out.append(_outcome(sc, sol.R, sol.f))
    return {"dR": (np.subtract(out[0]["rewards"], out[1]["rewards"])) / (2 * d),
            "dV": (np.subtract(out[0]["msp_utility"], out[1]["msp_utility"])) / (2 * d),
            "dU": (out[0]["mu_utility"]["mean"] - out[1]["mu_utility"]["mean"]) / (2 * d),
            "dIoM": (np.subtract(out[0]["iom"], out[1]["iom"])) / (2 * d)}


@pytest.mark.parametrize("name, value, rmax", [
    ("rho", 0.45, None),      # interior rewards, energy price
    ("lam", 40.0, None),      # interior rewards, the MSPs' value scale
    ("Rmax", 2.0, 2.0),       # both rewards at their cap: they move with it, dR = 1
])
def test_sensitivities_match_finite_differences(name, value, rmax):
    base = preset("tiny") if rmax is None else preset("tiny").replace(Rmax=np.array([rmax, rmax]))
    sc = apply_parameter(base, name, value)
    sol = _solve(sc, OPTS)
    assert sol.ok
    s = sensitivities(sc, name, value, sol.R, sol.f, OPTS)
    assert s["status"] == "ok", s
    fd = _finite_difference(base, name, value)
    scale = max(1.0, np.max(np.abs(fd["dR"])))
    np.testing.assert_allclose(s["dR"], fd["dR"], atol=1e-3 * scale)
    np.testing.assert_allclose(s["dV"], fd["dV"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(s["dU"]["mean"], fd["dU"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(s["dIoM"], fd["dIoM"], rtol=1e-3, atol=1e-5)
    if name == "Rmax":
        np.testing.assert_allclose(s["dR"], [1.0, 1.0], atol=1e-9)  # exact: the bound moves


def test_a_kink_is_reported_not_differentiated():
    # at w_acc = 0.5 on tiny an MSP's reward sits where MU 2's budget starts to bind (a maximum at
    # a kink of its utility): no derivative there
    sc = apply_parameter(preset("tiny"), "w_acc", 0.5)
    sol = _solve(sc, OPTS)
    assert sol.ok
    s = sensitivities(sc, "w_acc", 0.5, sol.R, sol.f, OPTS)
    assert s["status"] == "kink"
    assert "dR" not in s and any("budget binds" in k for k in s["kinks"])


def test_discrete_parameters_have_no_derivative_and_change_the_size():
    recs = sweep(preset("tiny"), "n_mu", [3, 4], options=OPTS)
    assert [len(r["allocations"]) for r in recs] == [3, 4]
    assert [r["sensitivity"]["status"] for r in recs] == ["discrete", "discrete"]
    assert [r["start"] for r in recs] == ["cold", "cold"]  # another size: nothing to continue from
