"""Bilevel programs: one leader over the followers' Nash equilibrium, as one MPEC."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .certificate import certify_game
from .constraints import follower_helpers
from .game import Game, expand_players, finish, make_solver
from .kkt import owned_by
from .multipliers import bound_multipliers
from .options import CertificateOptions, GlobalOptions
from .reformulation import make_mode
from .results import GameResult, GameStatus, GlobalMove

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
    global_search: GlobalOptions = GlobalOptions(),
) -> GameResult:
    """Bilevel program: the leader (the model's active objective, over every unfixed Var no
    follower owns) subject to the followers' Nash equilibrium, as one MPEC (Dempe,
    *Foundations of Bilevel Programming*, 2002, ch. 5; Luo, Pang & Ralph, 1996).

    ``min_x F(x, y) s.t. G(x) <= 0, y solves the followers' KKT system``, with the
    complementarity reformulated by ``mode``. ``F`` and ``G`` may use the multiplier of a
    follower's constraint through :func:`epec.multiplier` (the shadow price of the follower's
    optimal value; its placeholder holds the value after the solve). Parameters as
    :func:`solve_nash`, plus ``certify`` / ``certificate`` (see :func:`epec.certify`, MODEL.md
    section 5). ``G(x) <= 0``: the model-level constraints over the leader's Vars, kept by the
    MPEC and by the certificate's deviation search; one that also uses a follower's variables
    (``G(x, y) <= 0``) is kept by the MPEC, and the certificate admits only deviations that
    keep it at the followers' response; a Var defined by the followers' variables through an
    equality (a price ``p == a - Q(y)``) is substituted, not a decision (see
    :mod:`epec.constraints`).

    Ipopt finds a local solution of the MPEC; the certificate scans the leader's whole range.
    ``ok`` only when it holds: when the scan finds a better decision, the MPEC is solved again
    from there (up to ``global_search.moves`` times, each recorded in ``moves``), and a point
    whose certificate still fails is ``NOT_CERTIFIED`` with the reasons in the message.
    ``certify=False`` gives ``UNCERTIFIED`` (the point is loaded, but not ok).
    """
    if not isinstance(global_search, GlobalOptions):
        raise ValueError(f"global_search: must be a GlobalOptions, got {type(global_search).__name__}")
    t0 = time.perf_counter()
    followers = expand_players(followers)
    objs = [o for o in model.component_data_objects(pyo.Objective, active=True, descend_into=True)
            if not any(owned_by(o, f) for f in followers)]
    if len(objs) != 1:
        raise ValueError(f"solve_bilevel: the leader needs exactly one active Objective outside the followers, found {len(objs)}")
    named = {id(p) for p, _ in bound_multipliers(model)}  # epec.multiplier's: bound to followers
    leader_vars = [v for v in model.component_data_objects(pyo.Var, descend_into=True, sort=True)
                   if not v.fixed and id(v) not in named and not any(owned_by(v, f) for f in followers)]
    # a Var defined by the followers' variables (a price p == a - Q(y)) is a helper, substituted
    # by the Game, not a decision of the leader
    helpers = follower_helpers(model, followers, leader_vars)
    leader_vars = [v for v in leader_vars if id(v) not in helpers]
    game = Game(model, followers, [("leader", leader_vars, objs[0])], make_mode(mode),
                make_solver(solver, options), lift, coupling=True)
    ld = game.leaders[0]
    # Start the MPEC from the followers' equilibrium at the initial leader point.
    runs = [game.respond(None, warm=False)]
    cert, cert_s, moves = None, 0.0, []
    status, message = GameStatus.CONVERGED, ""
    while True:
        for v in ld.vars:
            v.unfix()
        run = game.mode.solve(game.data, game.solver, ld.objective, warm=runs[-1].ok)
        runs.append(run)
        if not run.ok:
            status, message = GameStatus.SOLVER_FAILED, run.message
            break
        if not certify:
            status, message = GameStatus.UNCERTIFIED, "stopped, not certified (certify=False)"
            break
        tc = time.perf_counter()
        cert = certify_game(game, certificate)
        cert_s += time.perf_counter() - tc
        if cert.holds:
            status, message = GameStatus.CONVERGED, ""
            break
        status, message = GameStatus.NOT_CERTIFIED, "certificate fails: " + "; ".join(cert.reasons)
        if not cert.profitable or len(moves) >= global_search.moves:
            break
        x = ld.values()
        moves.append(GlobalMove(len(moves) + 1, (tuple(float(t) for t in x),), cert.utilities,
                                cert.deviation_gains, cert.best_deviations, 0))
        # the MPEC again, from the followers' equilibrium at the best deviation found
        runs.append(game.respond([np.clip(np.asarray(cert.best_deviations[0], dtype=float), ld.lower, ld.upper)],
                                 warm=True))
    iters = sum(r.iterations for r in runs)
    return finish(game, status, message, iters, 1, t0, runs, certificate=cert, cert_seconds=cert_s,
                  moves=tuple(moves))
