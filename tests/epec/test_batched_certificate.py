"""The batched certificate (epec/certificate.py, ``CertificateOptions.batched``): the deviation
responses solved as batches give the same verdict, reasons, gains and best deviations as the
sequential scan, on the test games (with a batch engine that is Newton point by point) and on
MetaTrading scenarios (with the batched follower solver of models/batch_followers.py)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from epec import CertificateOptions, certify, solve_scenario
from epec.deviation_scan import batched_deviation_gains, deviation_gains
from epec.game import leaders_game
from epec.response import ResponseOptions
from epec.scenario import batch_response
from models import preset, set_rewards
from models.sampling import random_scenario

from .problems import MULTI_LEADER

#: leaders' gains of the two scans agree to this (relative to max(1, |V_i|)): each response is
#: solved to a natural KKT residual far below it, by two different solvers
GAIN_TOL = 1e-6


def _masked(reasons):
    """The reasons with their numbers masked (the two scans agree on them only to GAIN_TOL)."""
    return [re.sub(r"-?\d[\d.e+-]*", "#", r) for r in reasons]


def _assert_same(seq, bat):
    assert bat.holds == seq.holds
    assert _masked(bat.reasons) == _masked(seq.reasons)
    assert bat.profitable == seq.profitable
    assert bat.evaluations == seq.evaluations
    assert bat.failed_by_leader == seq.failed_by_leader
    scale = np.maximum(1.0, np.abs(np.array(seq.utilities)))
    assert np.all(np.abs(np.array(bat.deviation_gains) - np.array(seq.deviation_gains)) <= GAIN_TOL * scale)
    # where a leader gains, both scans name (nearly) the same best deviation
    for i in seq.profitable:
        assert np.allclose(bat.best_deviations[i], seq.best_deviations[i], rtol=1e-3, atol=1e-3)


def _both(model, leaders, followers, engine, options=None, **kw):
    """The sequential and the batched certificate of the model's point."""
    return [certify(model, leaders, followers, certificate=CertificateOptions(batched=batched, **(options or {})),
                    batch_response=engine, **kw) for batched in (False, True)]


def newton_engine(model, leaders, followers, mode):
    """A batch engine for any game: each point's followers solved by Newton (from the model's
    point) on a game of its own; it exercises the batched scan's bookkeeping, not its speed."""
    game = leaders_game(model, leaders, followers, mode, None, None, True, ResponseOptions())
    resp = game.response
    z0, y0 = resp.read()
    p = resp.system.read_params()

    def respond(points):
        V, ok = [], []
        for pt in points:
            y = resp.inputs_at(y0, pt)
            r = resp.solve(z0, y, p)
            ok.append(r.ok)
            V.append(resp.utilities(r.z, y, p) if r.ok else np.full(len(pt), np.nan))
        return np.array(V), np.array(ok)

    return respond


@pytest.mark.parametrize("at", ["equilibrium", "off"])
def test_test_game_same_verdict(at):
    # Prepare: the multi-leader Cournot game at its equilibrium, or with leader 0 off it
    m = MULTI_LEADER.build()
    x = {"equilibrium": (30.0, 30.0), "off": (20.0, 30.0)}[at]
    for i, v in enumerate(x):
        m.leader[i].x.set_value(v)
    engine = newton_engine(m, [m.leader], [m.follower], "smoothing")
    # Execute
    seq, bat = _both(m, [m.leader], [m.follower], engine, mode="smoothing")
    # Assert
    _assert_same(seq, bat)
    assert seq.holds == (at == "equilibrium")
    if at == "off":
        assert 0 in seq.profitable and seq.deviation_gains[0] > 1.0


def test_engine_failures_fall_back_to_newton():
    # Prepare: an engine that solves nothing but the point itself
    m = MULTI_LEADER.build()
    for i in range(2):
        m.leader[i].x.set_value(30.0)
    inner = newton_engine(m, [m.leader], [m.follower], "smoothing")
    calls = []

    def engine(points):
        V, ok = inner(points)
        calls.append(len(points))
        return V, ok & (len(calls) == 1)

    # Execute
    seq, bat = _both(m, [m.leader], [m.follower], engine, mode="smoothing")
    # Assert: every deviation went to Newton, and the verdict is the same
    assert len(calls) > 1 and sum(calls[1:]) == bat.evaluations
    _assert_same(seq, bat)


def test_lines_and_answers_are_the_sequential_ones():
    # Prepare: a two-variable leader (random directions) on a known concave gain
    class Leader:
        lower, upper, constraints = np.zeros(2), np.ones(2), None

        @staticmethod
        def admissible(x):
            return bool(x[0] <= 0.9)  # a constraint that removes part of every line

    x_star = [np.array([0.3, 0.6])]
    options = CertificateOptions(grid=9, directions=3)

    def gain(i, pt):
        y = pt[i]
        return float(-(y[0] - 0.7) ** 2 - (y[1] - 0.2) ** 2 + 0.2) if y[1] < 0.95 else float("nan")

    ticks = []
    # Execute
    seq = deviation_gains([Leader], x_star, np.random.default_rng(5), options, gain, lambda: None,
                           lambda: ticks.append(1))
    bat = batched_deviation_gains([Leader], x_star, np.random.default_rng(5), options,
                                   lambda items: [gain(i, pt) for i, pt in items], lambda: ticks.append(1))
    # Assert: the same numbers exactly (the same lines, points and values)
    assert seq == bat and ticks == [1, 1]
    assert seq[0][0] > 0 and seq[3][0] > 0  # a gain found, and the nan points counted as failed


def _scenario_certificates(sc, calls=None):
    sol = solve_scenario(sc, certify=False, max_iter=30)
    m = sol.model
    if sol.R is None:  # the stopped point (certify=False leaves R unset): the model holds it
        set_rewards(m, [m.msp[j].R.value for j in m.MSP])
    inner = batch_response(sc)

    def engine(points):
        V, ok = inner(points)
        if calls is not None:
            calls.append((len(points), int(np.sum(ok))))
        return V, ok

    return _both(m, [m.msp], [m.mu], engine, options={"grid": 41, "max_failed": 0.5})


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_presets_same_verdict(name):
    calls = []
    seq, bat = _scenario_certificates(preset(name), calls)
    _assert_same(seq, bat)
    assert seq.holds
    # the batched scan ran on the engine: the point, the grid in two calls (t >= 0, t < 0), one call per
    # refinement step, and the engine solved every point
    assert len(calls) == 1 + 2 + 11 and calls[1][0] > 1 and all(n == k for n, k in calls)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_random_scenarios_same_verdict(seed):
    seq, bat = _scenario_certificates(random_scenario(seed))
    _assert_same(seq, bat)
