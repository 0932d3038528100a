"""Nash equilibrium of players written as Pyomo blocks (their KKT systems joined)."""
from __future__ import annotations

import time
from typing import Any, Sequence

from pyomo.core.base.block import BlockData

from .game import Game, expand_players, finish, make_solver
from .modes import make_mode
from .results import GameResult, GameStatus

__all__ = ["solve_nash"]


def solve_nash(
    model: BlockData,
    players: Sequence[Any],
    mode: Any = "scholtes",
    *,
    lift: bool = True,
    solver: Any = None,
    options: Any = None,
) -> GameResult:
    """Nash equilibrium of ``players``: their KKT systems joined, complementarity via ``mode``.

    Find x with x_i in argmin_i f_i(x_i, x_-i) for every player i (Facchinei & Kanzow, 4OR 5,
    2007): the joint KKT system ``F(x, lambda) = 0, 0 <= a _|_ b >= 0`` under a zero (or the
    mode's penalty) objective. Vars outside every player's block are held fixed.

    Parameters
    ----------
    model : BlockData
        The user's model (not modified except for the loaded solution).
    players : sequence of blocks
        The players (BlockData or indexed Blocks, expanded).
    mode : str or Reformulation, default "scholtes"
        A name registered in :mod:`epec.modes` or an instance.
    lift : bool, default True
        Lift shared aggregates (see :func:`epec.kkt`).
    solver : solvers.IpoptSolver, optional
        Reuse a solver (and its compiled-model cache); default a new one with ``options``.
    options : solvers.IpoptOptions, optional

    Returns
    -------
    GameResult
    """
    t0 = time.perf_counter()
    game = Game(model, expand_players(players), [], make_mode(mode), make_solver(solver, options), lift)
    run = game.mode.solve(game.data, game.solver, None)
    status = GameStatus.CONVERGED if run.ok else GameStatus.SOLVER_FAILED
    return finish(game, status, run.message, run.iterations, 1, t0, [run])
