"""Tests of epec/sensitivity.py: the second-order adjoint's ``dG/dR`` and ``dG/dtheta`` against
central differences of the exact reduced gradient ``G`` (the previous way of computing them)."""
from __future__ import annotations

import numpy as np
import pytest

import epec
from epec.sensitivity import CompiledFollowers, sensitivities
from epec.sweep_params import SweepOptions, apply_parameter
from models import preset


def _central_differences(fl, sc, name, value, R, f, step=1e-4):
    """``dG/dR`` and ``dG/dtheta`` by central differences of the exact gradient (2 responses each)."""
    h = step * abs(value)
    plus, minus = fl.at(apply_parameter(sc, name, value + h), R, f), fl.at(apply_parameter(sc, name, value - h), R, f)
    b = (plus.gradient(R) - minus.gradient(R)) / (2 * h)
    center = fl.at(sc, R, f)
    A = np.zeros((R.size, R.size))
    for k in range(R.size):
        e = np.zeros_like(R)
        e[k] = step * max(1.0, abs(R[k]))
        A[:, k] = (center.gradient(R + e) - center.gradient(R - e)) / (2 * e[k])
    return A, b, (plus, minus, center, h)


@pytest.mark.parametrize("name_, name, value", [("tiny", "rho", 0.45), ("default", "rho", 0.5),
                                               ("default", "lam", 40.0)])
def test_exact_second_order_terms_match_central_differences_of_the_gradient(name_, name, value):
    # Prepare: a certified equilibrium with interior rewards
    sc = apply_parameter(preset(name_), name, value)
    sol = epec.solve_scenario(sc)
    R, f = np.asarray(sol.R, dtype=float), np.asarray(sol.f, dtype=float)
    fl = CompiledFollowers.compiled(sc, R, f)
    A_fd, b_fd, (plus, minus, center, h) = _central_differences(fl, sc, name, value, R, f)
    rewards = [np.array([r]) for r in R]
    dy = (fl.resp.inputs_at(plus.y, rewards) - fl.resp.inputs_at(minus.y, rewards)) / (2 * h)
    # Execute
    G, A, b = center.second_order(R, dy, (plus.p - minus.p) / (2 * h))
    s = sensitivities(sc, name, value, R, f, SweepOptions())
    # Assert: equal to the differences' own error; the record's dG_dR is the exact matrix
    np.testing.assert_allclose(G, center.gradient(R), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(A, A_fd, rtol=0, atol=1e-6 * np.abs(A_fd).max())
    np.testing.assert_allclose(b, b_fd, rtol=0, atol=1e-6 * np.abs(b_fd).max())
    assert s["status"] == "ok", s
    np.testing.assert_allclose(s["dG_dR"], A, rtol=1e-9, atol=1e-12 * np.abs(A).max())
    dR_fd = np.linalg.solve(A_fd, -b_fd)  # every reward interior here
    np.testing.assert_allclose(s["dR"], dR_fd, rtol=0, atol=1e-6 * np.abs(dR_fd).max())
