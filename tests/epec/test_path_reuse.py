"""What a sweep's path reuses between its points, checked against doing each point afresh: the
parametric game (``build_game(parametric=True)`` moved by ``update_game``), the prepared game kept
by ``epec.Workspace``, points certified together in lockstep (``epec.certify_together``), the
stacked batch engine (``batch_responses``), and a path certified in blocks against one certified
point by point."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from epec import Workspace, solve_scenario
from epec.certificate import certify_game
from epec.certify_together import certify_prepared, prepare_point
from epec.options import CertificateOptions
from epec.results import GameStatus
from epec.scenario import batch_response, batch_responses
from epec.sweep import SweepOptions, apply_parameter, sweep
from models import preset
from models.errors import InputError
from models.game import ParamPlan, build_game, same_structure, update_game

GRID = 21


def _values(model) -> np.ndarray:
    """Every player's utility at the model's current point, and the reward caps."""
    out = [pyo.value(model.msp[m].utility) for m in model.MSP]
    out += [pyo.value(model.mu[n].utility) for n in model.MU if model.mu[n].active]
    out += [model.msp[m].R.ub for m in model.MSP]
    return np.array(out, dtype=float)


@pytest.mark.parametrize("name, value", [("rho", 0.7), ("lam", 35.0), ("Rmax", 9.0), ("w_acc", 0.5)])
def test_a_parametric_game_moved_to_a_scenario_is_the_game_built_for_it(name, value):
    base = preset("default")
    other = apply_parameter(base, name, value)
    rng = np.random.default_rng(3)
    R = rng.uniform(0.5, 8.0, base.n_msp)
    f = rng.uniform(0.1, 1.0, (base.n_mu, base.n_msp)) * base.F[:, None] / base.n_msp
    model = build_game(base, R0=R, f0=f, parametric=True)
    assert same_structure(model, other)
    update_game(model, other, R0=R, f0=f)
    fresh = build_game(other, R0=R, f0=f)
    np.testing.assert_allclose(_values(model), _values(fresh), rtol=1e-12, atol=1e-12)
    assert not np.allclose(_values(model), _values(build_game(base, R0=R, f0=f)))  # it did move


def test_a_param_plan_gives_the_numbers_update_game_sets():
    from epec.kkt import kkt
    from epec.response import FollowerResponse

    base, other = preset("default"), apply_parameter(preset("default"), "w_acc", 0.5)
    model = build_game(base, parametric=True)
    resp = FollowerResponse([kkt(b) for b in model.mu.values()], [[model.msp[m].R] for m in model.MSP],
                            [model.msp[m].utility for m in model.MSP])
    plan = ParamPlan(resp.system.params)
    before = resp.system.read_params()
    np.testing.assert_array_equal(plan.values(base), before)
    moved = plan.values(other)  # the model is not written
    np.testing.assert_array_equal(resp.system.read_params(), before)
    update_game(model, other)
    np.testing.assert_array_equal(moved, resp.system.read_params())
    assert not np.array_equal(moved, before)
    with pytest.raises(InputError) as err:
        ParamPlan([pyo.Param(initialize=1.0, mutable=True)])
    assert err.value.field == "params"


def test_an_allocation_index_moves_allocations_between_the_model_and_the_unknowns():
    from epec.kkt import kkt
    from epec.response import FollowerResponse
    from models.game import AllocationIndex, allocations, set_allocations

    sc = preset("default")
    D = sc.D.copy()
    D[2, 1] = 0.0  # a pair without data: its allocation is fixed at 0, not an unknown
    sc = sc.replace(D=D)
    model = build_game(sc, parametric=True)
    resp = FollowerResponse([kkt(b) for b in model.mu.values()], [[model.msp[m].R] for m in model.MSP],
                            [model.msp[m].utility for m in model.MSP])
    index = AllocationIndex(model, resp.system.unknowns)
    f = np.random.default_rng(5).uniform(0.1, 1.0, (sc.n_mu, sc.n_msp)) * (sc.D > 0)
    z = index.write(resp.read()[0], f)  # without the model's Vars...
    np.testing.assert_array_equal(index.read(z), f)
    set_allocations(model, f)  # ...where writing them puts the same numbers
    np.testing.assert_array_equal(resp.read()[0], z)
    np.testing.assert_array_equal(allocations(model), index.read(z))
    assert index.read(z)[2, 1] == 0.0 and len(index.k) == int((sc.D > 0).sum())


def test_update_game_refuses_another_structure_or_a_constant_game():
    model = build_game(preset("default"), parametric=True)
    with pytest.raises(InputError) as err:
        update_game(model, preset("tiny"))
    assert err.value.field == "scenario"
    with pytest.raises(InputError) as err:
        update_game(build_game(preset("default")), preset("default"))
    assert err.value.field == "model"


def test_a_workspace_solves_each_scenario_as_a_fresh_solve_does():
    ws = Workspace()
    for rho in (0.45, 0.5):
        sc = apply_parameter(preset("default"), "rho", rho)
        kept, fresh = solve_scenario(sc, grid=GRID, workspace=ws), solve_scenario(sc, grid=GRID)
        assert kept.ok and fresh.ok
        np.testing.assert_allclose(kept.R, fresh.R, rtol=1e-6)
        assert kept.result.certificate.holds == fresh.result.certificate.holds
    assert (ws.builds, ws.reuses) == (1, 1)


def test_points_certified_together_get_the_verdicts_of_each_certified_alone():
    ws, options, prepared = Workspace(), CertificateOptions(grid=GRID, max_failed=0.5), []
    for rho in (0.45, 0.5, 0.55):
        sol = solve_scenario(apply_parameter(preset("default"), "rho", rho), grid=GRID, certify=False, workspace=ws)
        assert sol.result.status is GameStatus.UNCERTIFIED
        prep = prepare_point(ws.game, options)
        assert prep is not None
        prepared.append(prep)
    together = certify_prepared(prepared, batch_responses)
    for prep, cert in zip(prepared, together):
        prep.activate()
        alone = certify_game(ws.game, options)
        assert cert is not None and cert.holds and alone.holds
        assert cert.follower_unique == alone.follower_unique
        np.testing.assert_allclose(cert.deviation_gains, alone.deviation_gains, atol=1e-9)
        np.testing.assert_allclose(cert.utilities, alone.utilities, rtol=1e-12)


def test_stacked_batch_responses_answer_as_the_separate_engines():
    scs = [apply_parameter(preset("default"), "rho", rho) for rho in (0.4, 0.6)] + [preset("tiny")]
    scs += [apply_parameter(preset("default"), "lam", lam) for lam in (40.0, 70.0)]  # lambda per market
    rng = np.random.default_rng(0)
    requests = [(batch_response(sc), [[np.array([r]) for r in rng.uniform(0.0, sc.Rmax)] for _ in range(4)])
                for sc in scs]
    stacked = batch_responses(requests)
    for (respond, points), (V, solved) in zip(requests, stacked):
        V1, solved1 = respond(points)
        assert solved.all() and np.array_equal(solved, solved1)
        np.testing.assert_allclose(V, V1, rtol=1e-12, atol=1e-12)


def test_a_path_certified_in_blocks_gives_the_points_certified_one_by_one():
    values = [0.42, 0.45, 0.48, 0.51]
    blocks = sweep(preset("default"), "rho", values, options=SweepOptions(grid=GRID, together=10))
    single = sweep(preset("default"), "rho", values, options=SweepOptions(grid=GRID, together=1))
    assert all(r["ok"] for r in blocks + single)
    assert any(r.get("certified_together", 0) > 1 for r in blocks)
    assert not any("certified_together" in r for r in single)
    for a, b in zip(blocks, single):
        np.testing.assert_allclose(a["rewards"], b["rewards"], rtol=1e-6)
        assert a["max_deviation_gain"] <= 1e-6 and b["max_deviation_gain"] <= 1e-6
