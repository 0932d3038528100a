"""models/batch_followers.py (was drl/followers.py, still re-exported there): the batched follower equilibrium against the numpy solver, the KKT checker
and the Pyomo/Ipopt reference."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import epec
from models.batch_followers import Coefficients, SolverOptions, scenario_arrays, solve_followers
from models import (EquilibriumOptions, Mechanism, build_game, follower_equilibrium, follower_kkt_residual,
                    generate, preset, set_rewards, allocations, trajectory)
from solvers import IpoptOptions

TIGHT = EquilibriumOptions(tol=1e-11)


def _random_rewards(sc, B, seed):
    rng = np.random.default_rng(seed)
    R = rng.uniform(0.0, 1.0, (B, sc.n_msp)) * sc.Rmax
    R[0] = 0.0  # nobody pays: nobody works
    R[1, 0] = 0.0  # one MSP pays nothing
    R[2] = sc.Rmax  # everyone at the cap: many budgets bind
    R[3] = 0.02 * sc.Rmax  # small rewards: slack budgets
    R[4] = sc.Rmax  # one MSP pays next to nothing beside the others: MUs skip it
    R[4, -1] = 0.01 * sc.Rmax[-1]
    return R


@pytest.mark.parametrize("mechanism", list(Mechanism))
@pytest.mark.parametrize("n, m, seed", [(20, 3, 0), (7, 2, 1), (12, 4, 2), (30, 5, 3)])
def test_batched_equilibrium_matches_numpy_and_kkt(n, m, seed, mechanism):
    # Prepare: a random scenario (one pair without data) and random rewards, edge cases included
    sc = generate(n, m, seed=seed)
    D = sc.D.copy()
    D[0, 0] = 0.0
    sc = sc.replace(D=D, mechanism=mechanism)
    R = _random_rewards(sc, 8, seed)
    # Execute
    eq = solve_followers(Coefficients.of(sc), R)
    # Assert
    assert bool(eq.converged.all())
    f = eq.f.numpy()
    regimes = {"zero": False, "binding": False, "slack": False}
    for b in range(R.shape[0]):
        ref = follower_equilibrium(sc, R[b], options=TIGHT).f
        np.testing.assert_allclose(f[b], ref, rtol=0, atol=1e-8)
        assert follower_kkt_residual(sc, R[b], f[b]).max <= 1e-8
        regimes["zero"] |= bool(((f[b] == 0) & (R[b] > 0)[None, :] & (sc.D > 0)).any())
        regimes["binding"] |= bool((f[b].sum(1) > sc.F - 1e-9).any())
        regimes["slack"] |= bool((f[b].sum(1) < sc.F - 1e-3).any())
    assert f[0].max() == 0 and f[1][:, 0].max() == 0 and f[:, 0, 0].max() == 0
    assert regimes["binding"] and regimes["slack"]


@pytest.mark.parametrize("mechanism", list(Mechanism))
def test_batched_equilibrium_matches_the_ipopt_reference(mechanism):
    # Prepare: the followers' Nash game through Pyomo/Ipopt, smoothed complementarity a b = 1e-20
    sc = preset("default").replace(mechanism=mechanism)
    R = np.array([[13.0, 9.0, 3.0], [30.0, 0.0, 17.5]])
    _check_against_ipopt(sc, R)
    # every regime: an MU skipping a paying MSP, binding and slack budgets
    f = solve_followers(Coefficients.of(sc), R).f.numpy()
    if mechanism is Mechanism.UNIT_PRICE:
        return  # prices of 3-30 per unit IoM make every budget bind
    assert ((f == 0) & (R[:, None, :] > 0)).any()
    assert (f.sum(-1) > sc.F - 1e-9).any() and (f.sum(-1) < sc.F - 1e-3).any()


@pytest.mark.parametrize("n, m, seed", [(9, 2, 11), (14, 4, 12)])
def test_batched_equilibrium_matches_the_ipopt_reference_on_random_scenarios(n, m, seed):
    sc = generate(n, m, seed=seed)
    _check_against_ipopt(sc, _random_rewards(sc, 5, seed)[2:])


def _check_against_ipopt(sc, R):
    eq = solve_followers(Coefficients.of(sc), R)
    for b in range(R.shape[0]):
        model = build_game(sc)
        set_rewards(model, R[b])
        for m in model.MSP:
            model.msp[m].R.fix()
        # Execute
        res = epec.solve_nash(model, players=[model.mu], mode=epec.FischerBurmeisterSmoothing(mu_end=1e-10, comp_tol=1e-8),
                              options=IpoptOptions(tol=1e-12, constr_viol_tol=1e-12))
        # Assert
        assert res.ok, res.message
        np.testing.assert_allclose(eq.f[b].numpy(), allocations(model), rtol=0, atol=1e-8)


def test_a_batch_of_different_scenarios_in_one_call():
    # Prepare: 6 rounds of the dynamic market (MUs joining and leaving) as one batch
    base = preset("default")
    tr = trajectory(base, 40, seed=5)
    ts = [0, 7, 15, 22, 31, 39]
    view = scenario_arrays(base, **{k: getattr(tr, k)[ts] for k in ("D", "tau", "zeta", "v", "h")})
    R = _random_rewards(base, len(ts), 9)
    R[0] = 11.0
    # Execute
    eq = solve_followers(Coefficients.of(view), R)
    # Assert
    assert (~tr.active[ts]).any()
    for i, t in enumerate(ts):
        ref = follower_equilibrium(tr.scenario(t), R[i], options=TIGHT).f
        np.testing.assert_allclose(eq.f[i].numpy(), ref, rtol=0, atol=1e-8)
        assert np.all(eq.f[i].numpy()[~tr.active[t]] == 0)


def test_a_batch_of_a_partial_metric_game_keeps_its_metric():
    # the accuracy-only game (Q = zeta): the batched view must value what its base values
    from models import Metric

    base = dataclasses.replace(preset("default"), metric=Metric.ACCURACY)
    view = scenario_arrays(base, D=np.stack([base.D] * 6))
    R = _random_rewards(base, 6, 3)
    eq = solve_followers(Coefficients.of(view), R)
    for i in range(6):
        ref = follower_equilibrium(base, R[i], options=TIGHT).f
        np.testing.assert_allclose(eq.f[i].numpy(), ref, rtol=0, atol=1e-8)


def test_warm_start_and_float32_options():
    sc = preset("default")
    R = _random_rewards(sc, 8, 4)
    cold = solve_followers(Coefficients.of(sc), R)
    warm = solve_followers(Coefficients.of(sc), R * 1.01, f0=cold.f)
    again = solve_followers(Coefficients.of(sc), R * 1.01)
    assert warm.iterations <= again.iterations
    np.testing.assert_allclose(warm.f.numpy(), again.f.numpy(), atol=1e-10)
    with pytest.raises(ValueError):
        SolverOptions(max_iter=0)
    with pytest.raises(ValueError):
        solve_followers(Coefficients.of(sc), np.zeros((2, 5)))


def test_drl_keeps_its_imports():
    """The engine moved down to models (epec's certificate uses it); drl's names are the same objects."""
    import drl
    import drl.followers
    import drl.taylor
    import models.batch_followers as mb
    import models.taylor as mt

    assert drl.solve_followers is mb.solve_followers and drl.followers.Coefficients is mb.Coefficients
    assert drl.taylor.variables is mt.variables


@pytest.mark.parametrize("per_market", [False, True])
def test_compact_batches_agree_with_stepping_every_market(per_market, monkeypatch):
    # Prepare: 400 markets (over the compaction's threshold), rewards from nobody paying to every
    # cap, so markets converge after different numbers of steps; per market: the coefficients of
    # two scenarios interleaved, as a sweep's block stacks them
    import torch

    import models.batch_followers as bf

    sc = generate(12, 3, seed=4)
    R = _random_rewards(sc, 400, 7)
    assert len(R) >= bf._COMPACT_FROM
    cf = Coefficients.of(sc)
    if per_market:
        other = Coefficients.of(sc.replace(rho=sc.rho * 1.7))
        even = torch.arange(400) % 2 == 0

        def mix(a, b):
            return torch.where(even.view(-1, *[1] * (a.dim() - 1)), a.expand(400, *a.shape[1:]),
                               b.expand(400, *b.shape[1:]))

        cf = Coefficients(Q=mix(cf.Q, other.Q), alpha=mix(cf.alpha, other.alpha), beta=mix(cf.beta, other.beta),
                          e=mix(cf.e, other.e), F=mix(cf.F, other.F), lam=cf.lam, eps0=cf.eps0,
                          mechanism=cf.mechanism)
    gathered = []
    take = Coefficients.take
    monkeypatch.setattr(Coefficients, "take", lambda c, keep: gathered.append(len(keep)) or take(c, keep))
    # Execute
    full = solve_followers(cf, R)
    compact = solve_followers(cf, R, options=SolverOptions(compact=True))
    # Assert: the markets were gathered, and the equilibria are the same, each within tol
    assert gathered and gathered[0] < 200
    assert bool(full.converged.all()) and bool(compact.converged.all())
    assert float(compact.residual.max()) <= 1e-12
    np.testing.assert_allclose(compact.f.numpy(), full.f.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(compact.mu.numpy(), full.mu.numpy(), rtol=0, atol=1e-8)
    assert compact.iterations == full.iterations


def test_compact_option_is_checked():
    with pytest.raises(Exception, match="compact"):
        SolverOptions(compact=1)
