"""The certificate's uniqueness check (c) with batched random starts (``solve_epec(batch_starts=...)``,
:func:`epec.scenario.batch_starts`): the MUs' equilibria from all random starts in one call of the
batched follower solver, each polished by Newton, a missing one left to Newton's own random
starts. The certified points and verdicts are those without the hook."""
from __future__ import annotations

import numpy as np
import pytest

from epec import CertificateOptions, Workspace, certify, solve_epec, solve_scenario
from epec.scenario import batch_starts
from models import preset
from models.equilibrium import follower_kkt_residual
from models.game import build_game

STARTS = CertificateOptions().starts


def _verdict(sol):
    c = sol.result.certificate
    return sol.ok, c.holds, c.reasons, c.follower_unique, c.starts


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_same_certified_point_and_verdict_with_and_without(name):
    # Prepare
    sc = preset(name)
    # Execute: with the batched starts (solve_scenario's default) and without them
    on = solve_scenario(sc)
    off = solve_scenario(sc, batch_starts=None)
    # Assert: both certified, the same rewards and verdict, every uniqueness start solved
    assert on.ok and off.ok
    assert np.max(np.abs(on.R - off.R)) <= 1e-8
    assert _verdict(on) == _verdict(off)
    assert on.result.certificate.starts == STARTS and off.result.certificate.starts == STARTS
    assert on.result.certificate.follower_spread <= CertificateOptions().unique_tol


def test_batch_starts_are_follower_equilibria():
    # Prepare: the game's free allocation Vars, rewards of the default scenario's equilibrium
    sc = preset("default")
    model = build_game(sc)
    free = [(n, m, model.mu[n].f[m]) for n in model.MU for m in model.MSP if not model.mu[n].f[m].fixed]
    R = np.array([13.137, 9.204, 12.810])
    starts = batch_starts(sc, free)
    # Execute
    hints = starts([np.array([r]) for r in R], np.random.default_rng(0), 5)
    # Assert: five hints, each over the model's free Vars, each an equilibrium of the MUs' game
    assert len(hints) == 5
    for hint in hints:
        assert hint is not None
        assert [id(v) for v, _ in hint] == [id(v) for _, _, v in free]
        f = np.zeros((sc.n_mu, sc.n_msp))
        for (n, m, _), (_, value) in zip(free, hint):
            f[n, m] = value
        assert np.all(f >= 0) and np.all(f.sum(axis=1) <= sc.F * (1 + 1e-12))
        assert follower_kkt_residual(sc, R, f).max <= 1e-9


def test_missing_hints_fall_back_to_newton_starts():
    # Prepare: a hook that reaches no equilibrium for any start, and counts its calls
    sc = preset("default")
    calls = []

    def none_starts(decisions, rng, count):
        calls.append(count)
        return [None] * count

    # Execute
    sol = solve_scenario(sc, batch_starts=none_starts)
    ref = solve_scenario(sc, batch_starts=None)
    # Assert: the hook was asked for every start at once, and Newton's own starts gave the verdict
    assert calls and all(c == STARTS for c in calls)
    assert sol.ok
    assert np.max(np.abs(sol.R - ref.R)) <= 1e-8
    assert _verdict(sol) == _verdict(ref)


def test_hints_follow_a_workspace_model():
    # Prepare: one workspace, two scenarios of one structure (the second with dearer energy)
    sc = preset("tiny")
    ws = Workspace()
    first = solve_scenario(sc, workspace=ws)
    # Execute: the second solve reuses the model; its hints are over that model's Vars
    second = solve_scenario(sc.replace(kappa=sc.kappa * 1.5), workspace=ws)
    # Assert: both certified with every start solved, the game built once
    assert first.ok and second.ok
    assert ws.builds == 1 and ws.reuses == 1
    assert first.result.certificate.starts == STARTS and second.result.certificate.starts == STARTS
    assert not np.allclose(first.R, second.R)


def test_bad_batch_starts_is_refused():
    # Prepare
    sc = preset("tiny")
    model = build_game(sc)
    # Execute / Assert: not callable, in each entry that takes it
    with pytest.raises(ValueError, match="batch_starts: must be callable"):
        solve_epec(model, [model.msp], [model.mu], batch_starts=1)
    with pytest.raises(ValueError, match="batch_starts: must be callable"):
        solve_scenario(sc, batch_starts="starts")
    with pytest.raises(ValueError, match="batch_starts: must be callable"):
        certify(model, [model.msp], [model.mu], batch_starts=3)


def test_wrong_number_of_starts_is_refused():
    # Prepare: a hook that answers one start fewer than asked
    sc = preset("tiny")
    # Execute / Assert
    with pytest.raises(ValueError, match="batch_starts: returned 2 starts, expected 3"):
        solve_scenario(sc, batch_starts=lambda decisions, rng, count: [None] * (count - 1))
