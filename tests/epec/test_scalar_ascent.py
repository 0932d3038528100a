"""The one-decision leader step of epec/leader_steps.py (``_scalar_ascent``) on utilities with known maxima."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import epec.leader_steps as G


def _counted(V, dV, fail_above: float = math.inf):
    """``evaluate(x) -> (-V, -dV/dx)``, raising ``_StepFailed`` above ``fail_above``; counts calls."""
    calls: list[float] = []

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray]:
        calls.append(float(x[0]))
        if x[0] > fail_above:
            raise G.StepFailed("no response", np.array(x, dtype=float))
        return -V(x[0]), np.array([-dV(x[0])])

    return evaluate, calls


def _run(evaluate, x0: float, lo: float, hi: float, curvature: float | None = None):
    mv, mg = evaluate(np.array([x0]))
    return G.scalar_ascent(evaluate, np.array([x0]), mv, mg, np.array([lo]), np.array([hi]), 1e-12, curvature)


@pytest.mark.parametrize("x0, lo, hi", [(9.0, 0.0, 10.0), (0.0, 0.0, 10.0), (-40.0, -math.inf, math.inf)])
def test_smooth_concave_maximum(x0, lo, hi):
    # Prepare: V = -(x - 3)^2 + sin(x) / 10, maximum where g = -2 (x - 3) + cos(x) / 10 = 0
    ev, calls = _counted(lambda x: -(x - 3) ** 2 + math.sin(x) / 10, lambda x: -2 * (x - 3) + math.cos(x) / 10)
    # Execute
    x, mv, mg, c, kink = _run(ev, x0, lo, hi)
    # Assert
    assert abs(-2 * (x[0] - 3) + math.cos(x[0]) / 10) <= 1e-12
    assert kink is None and c is not None and c < 0
    assert len(calls) <= 12  # superlinear: a handful of evaluations, not a bisection's 40


def test_previous_curvature_gives_the_newton_step_at_once():
    # Prepare: a quadratic with the exact curvature passed in
    ev, calls = _counted(lambda x: -2.0 * (x - 1.5) ** 2, lambda x: -4.0 * (x - 1.5))
    # Execute
    x, *_ = _run(ev, 1.4, 0.0, 3.0, curvature=-4.0)
    # Assert: start and one Newton step
    assert x[0] == pytest.approx(1.5, abs=1e-14)
    assert len(calls) == 2


def test_maximum_at_a_kink_is_bracketed_and_reported():
    # Prepare: V = -|x - 2| has no root of dV/dx
    ev, calls = _counted(lambda x: -abs(x - 2.0), lambda x: -1.0 if x > 2.0 else 1.0)
    # Execute
    x, mv, mg, c, kink = _run(ev, 7.0, 0.0, 10.0)
    # Assert
    assert x[0] == pytest.approx(2.0, abs=1e-9)
    assert kink == (1.0, -1.0)  # dV/dx left and right of the bracket
    assert len(calls) <= 45


def test_bound_maximum_stops_on_the_bound():
    # Prepare: V increasing on the whole box
    ev, calls = _counted(lambda x: math.log(1 + x), lambda x: 1 / (1 + x))
    # Execute
    x, mv, mg, c, kink = _run(ev, 1.0, 0.0, 5.0)
    # Assert
    assert x[0] == 5.0 and -mg[0] > 0 and kink is None


def test_points_without_a_response_are_backed_off_from():
    # Prepare: V = x - exp(x - 3.5), nearly linear at 0 (so the first steps are long), maximum at
    # 3.5; no response above 4
    ev, calls = _counted(lambda x: x - math.exp(x - 3.5), lambda x: 1 - math.exp(x - 3.5), fail_above=4.0)
    # Execute
    x, *_ = _run(ev, 0.0, 0.0, 100.0)
    # Assert
    assert any(t > 4.0 for t in calls)  # it did try beyond the wall...
    assert x[0] == pytest.approx(3.5, abs=1e-12)  # ...and came back to the maximum


def test_box_ascent_shrinks_around_points_without_a_response():
    # Prepare: V = -(x0 - 2)^2 - (x1 - 1)^2 on [0, 10]^2, no response where x0 > 2.5 (the first
    # L-BFGS-B trial from x = (0, 0) overshoots there)
    cache: dict = {}
    failed: list = []

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.asarray(x, dtype=float)
        key = x.tobytes()
        if key not in cache:
            if x[0] > 2.5:
                failed.append(x.copy())
                raise G.StepFailed("no response", x.copy())
            v = -(x[0] - 2.0) ** 2 - (x[1] - 1.0) ** 2
            cache[key] = (v, np.array([-2.0 * (x[0] - 2.0), -2.0 * (x[1] - 1.0)]), None, None)
        v, g, _, _ = cache[key]
        return -v, -g

    # Execute
    box = SimpleNamespace(lower=np.zeros(2), upper=np.full(2, 10.0))  # the leader's own box
    x, mv, mg, _ = G.box_ascent(evaluate, cache, np.zeros(2), box.lower.copy(), box.upper.copy(), box, 1.0)
    # Assert
    assert failed  # the shrink path ran
    np.testing.assert_allclose(x, [2.0, 1.0], atol=1e-6)
    assert mv == pytest.approx(0.0, abs=1e-10)
