"""Bilevel programs: one leader over the followers' Nash equilibrium, as one MPEC."""
from __future__ import annotations

import time
from typing import Any, Sequence

import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .certificate import certify_game
from .game import Game, expand_players, finish, make_solver
from .kkt import owned_by
from .options import CertificateOptions
from .reformulation import make_mode
from .results import GameResult, GameStatus

__all__ = ["solve_bilevel"]


def solve_bilevel(
    model: BlockData,
    followers: Sequence[Any],
    mode: Any = "scholtes",
    *,
    lift: bool = True,
    certify: bool = True,
    certificate: CertificateOptions = CertificateOptions(),
    solver: Any = None,
    options: Any = None,
) -> GameResult:
    """Bilevel program: the leader (the model's active objective, over every unfixed Var no
    follower owns) subject to the followers' Nash equilibrium, as one MPEC (Dempe,
    *Foundations of Bilevel Programming*, 2002, ch. 5; Luo, Pang & Ralph, 1996).

    ``min_x F(x, y) s.t. G(x) <= 0, y solves the followers' KKT system``, with the
    complementarity reformulated by ``mode``. Parameters as :func:`solve_nash`, plus
    ``certify`` / ``certificate`` (see :func:`epec.certify`, MODEL.md section 5).
    """
    t0 = time.perf_counter()
    followers = expand_players(followers)
    objs = [o for o in model.component_data_objects(pyo.Objective, active=True, descend_into=True)
            if not any(owned_by(o, f) for f in followers)]
    if len(objs) != 1:
        raise ValueError(f"solve_bilevel: the leader needs exactly one active Objective outside the followers, found {len(objs)}")
    leader_vars = [v for v in model.component_data_objects(pyo.Var, descend_into=True, sort=True)
                   if not v.fixed and not any(owned_by(v, f) for f in followers)]
    game = Game(model, followers, [("leader", leader_vars, objs[0])], make_mode(mode),
                make_solver(solver, options), lift)
    # Start the MPEC from the followers' equilibrium at the initial leader point.
    runs = [game.respond(None, warm=False)]
    for v in game.leaders[0].vars:
        v.unfix()
    ld = game.leaders[0]
    run = game.mode.solve(game.data, game.solver, ld.objective, warm=runs[0].ok)
    runs.append(run)
    iters = sum(r.iterations for r in runs)
    if not run.ok:
        return finish(game, GameStatus.SOLVER_FAILED, run.message, iters, 1, t0, runs)
    cert, cert_s = None, 0.0
    if certify:
        tc = time.perf_counter()
        cert = certify_game(game, certificate)
        cert_s = time.perf_counter() - tc
    return finish(game, GameStatus.CONVERGED, "", iters, 1, t0, runs, certificate=cert, cert_seconds=cert_s)
