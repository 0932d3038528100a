"""The uniqueness starts (c) of points certified together (``epec.certify_together``) solved in one
stacked call: each point's starts drawn at the point (the deferred form of
:func:`epec.scenario.batch_starts`'s hook, ``draw`` and ``solve_many``), those of all points solved
by one :func:`epec.scenario.solve_start_requests`, each point's hints polished at the point, with
the fallback of one point certified alone. Real solves throughout; the calls of the batched
follower solver are counted by wrapping it."""
from __future__ import annotations

import numpy as np
import pytest

import models.batch_followers as batch_followers
from epec import Workspace, solve_scenario
from epec.certificate import certify_game
from epec.certify_together import certify_prepared, prepare_point
from epec.options import CertificateOptions
from epec.results import GameStatus
from epec.scenario import batch_starts, batch_responses, solve_start_requests
from epec.sweep import apply_parameter
from models import preset
from models.game import build_game

GRID = 21
RHOS = (0.45, 0.5, 0.55)


@pytest.fixture
def start_calls(monkeypatch):
    """Every call of the batched follower solver from random starts (``f0`` given: the
    uniqueness starts; the deviation scan's engine starts from even splits), counted."""
    calls: list[int] = []
    solve = batch_followers.solve_followers

    def counted(cf, R, f0=None, **kw):
        if f0 is not None:
            calls.append(len(R))
        return solve(cf, R, f0=f0, **kw)

    monkeypatch.setattr(batch_followers, "solve_followers", counted)
    return calls


def _prepared(options, spoil=None):
    """Three consecutive rho points of the default scenario, solved in one workspace and
    prepared (their hooks wrapped by ``spoil`` first, when given)."""
    ws, prepared = Workspace(), []
    for rho in RHOS:
        sol = solve_scenario(apply_parameter(preset("default"), "rho", rho), grid=GRID, certify=False, workspace=ws)
        assert sol.result.status is GameStatus.UNCERTIFIED
        if spoil is not None:
            ws.game.batch_starts = spoil(ws.game.batch_starts)
        prep = prepare_point(ws.game, options)
        assert prep is not None
        prepared.append(prep)
    return ws, prepared


def _same_as_alone(ws, prepared, together, options):
    for prep, cert in zip(prepared, together):
        prep.activate()
        alone = certify_game(ws.game, options)
        assert cert is not None
        assert (cert.holds, cert.follower_unique, cert.starts) == (alone.holds, alone.follower_unique, alone.starts)
        assert cert.reasons == alone.reasons
        assert abs(cert.follower_spread - alone.follower_spread) <= 1e-9
        np.testing.assert_allclose(cert.deviation_gains, alone.deviation_gains, atol=1e-9)


def test_the_uniqueness_starts_of_a_block_are_solved_in_one_call(start_calls):
    # Prepare: three points; their starts are drawn but not solved
    options = CertificateOptions(grid=GRID, max_failed=0.5)
    start_calls.clear()
    ws, prepared = _prepared(options)
    assert start_calls == []
    assert all(p.scan.pending_starts is not None and p.scan.starts is None for p in prepared)
    # Execute
    together = certify_prepared(prepared, batch_responses)
    # Assert: one stacked call for the starts of all points; each certificate is its own alone
    assert start_calls == [len(RHOS) * options.starts]
    assert all(c.starts == options.starts and c.follower_unique and c.holds for c in together)
    start_calls.clear()
    _same_as_alone(ws, prepared, together, options)
    assert start_calls == [options.starts] * len(RHOS)  # alone: one call per point


def test_a_hook_without_the_deferred_form_solves_its_starts_at_once(start_calls):
    # Prepare: the hook as a plain function (no draw / solve_many)
    options = CertificateOptions(grid=GRID, max_failed=0.5)
    plain = lambda hook: (lambda decisions, rng, count: hook(decisions, rng, count))  # noqa: E731
    start_calls.clear()
    ws, prepared = _prepared(options, plain)
    # Assert: each point's starts solved when it was prepared, none by certify_prepared
    assert start_calls == [options.starts] * len(RHOS)
    assert all(p.scan.pending_starts is None for p in prepared)
    start_calls.clear()
    together = certify_prepared(prepared, batch_responses)
    assert start_calls == []
    _same_as_alone(ws, prepared, together, options)


class _FirstHintSpoiled:
    """A deferred hook whose first start's hint is an infeasible allocation (every free ``f_nm``
    at -1: Newton's polish fails there), the real starts otherwise."""

    def __init__(self, hook):
        self.draw = hook.draw

    def solve_many(self, requests):
        out = solve_start_requests(requests)
        for hints in out:
            hints[0] = [(v, -1.0) for v, _ in hints[0]]
        return out

    def __call__(self, decisions, rng, count):
        return self.solve_many([self.draw(decisions, rng, count)])[0]


def test_a_hint_that_fails_its_polish_falls_back_as_alone():
    # Prepare
    options = CertificateOptions(grid=GRID, max_failed=0.5)
    ws, prepared = _prepared(options, _FirstHintSpoiled)
    game, resp = ws.game, ws.game.response
    prepared[0].activate()
    z0, y0 = resp.read()
    x = [ld.values() for ld in game.leaders]
    bad = game.hinted_starts(z0, game.batch_starts(x, np.random.default_rng(0), 1), 1)[0]
    assert not resp.solve(bad, resp.inputs_at(y0, x), resp.system.read_params(), retry_cold=False).ok
    # Execute
    together = certify_prepared(prepared, batch_responses)
    # Assert: the spoiled start still reached the equilibrium by the fallback, as alone
    assert all(c.starts == options.starts and c.follower_unique for c in together)
    _same_as_alone(ws, prepared, together, options)


def test_stacked_start_requests_give_each_hook_s_own_hints():
    # Prepare: starts of scenarios of other numbers (rho, lambda) and another size (tiny)
    scs = [apply_parameter(preset("default"), "rho", r) for r in (0.4, 0.6)] + [preset("tiny")]
    scs += [apply_parameter(preset("default"), "lam", 40.0)]
    requests, alone = [], []
    for k, sc in enumerate(scs):
        model = build_game(sc)
        free = [(n, m, model.mu[n].f[m]) for n in model.MU for m in model.MSP if not model.mu[n].f[m].fixed]
        hook = batch_starts(sc, free)
        R = [np.array([0.4 * r]) for r in np.broadcast_to(sc.Rmax, (sc.n_msp,))]
        requests.append(hook.draw(R, np.random.default_rng(k), 3))
        alone.append(hook(R, np.random.default_rng(k), 3))
    # Execute
    stacked = solve_start_requests(requests)
    # Assert: the same hints, over the same Vars
    for got, ref in zip(stacked, alone):
        assert len(got) == len(ref) == 3
        for a, b in zip(got, ref):
            assert a is not None and b is not None
            assert [id(v) for v, _ in a] == [id(v) for v, _ in b]
            np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=1e-9, atol=1e-12)
