"""What a game solve returns: its status, the diagonalisation history and the result."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from .kkt import KKTResidual
from .reformulation import HomotopyResult

__all__ = ["GameStatus", "Sweep", "GameResult"]


class GameStatus(enum.Enum):
    """How a game solve ended; only ``CONVERGED`` is ``ok``."""

    CONVERGED = "converged"
    SOLVER_FAILED = "solver_failed"  #: an Ipopt solve failed or left the pairs non-complementary
    MAX_ITER = "max_iter"  #: diagonalisation stopped at max_iter without meeting tol
    CYCLING = "cycling"  #: diagonalisation revisited an earlier iterate without converging


@dataclass(frozen=True)
class Sweep:
    """One diagonalisation sweep: leader decisions after it, each leader's utility at its own
    solve, the step ``max |x_k - x_{k-1}|`` and the solver iterations it took.

    ``relative_step`` is the step of each decision over its range (``max_i |dx_i| / (hi_i - lo_i)``,
    the range taken as ``max(1, |x_i|)`` when unbounded); ``stationarity`` the largest projected
    gradient of a leader's utility at its own step's answer, ``max_i |P(dV_i/dx_i)|`` (NaN for a
    full-space step; 0 for a one-decision maximum at a kink of ``V_i``, where ``dV_i/dx_i`` changes
    sign within a bracket of relative width ``2e-12``: stationary in Clarke's sense);
    ``accelerated`` whether the sweep started from an Anderson extrapolation.
    """

    index: int
    decisions: tuple[tuple[float, ...], ...]
    utilities: tuple[float, ...]
    step: float
    iterations: int
    relative_step: float = math.nan
    stationarity: float = math.nan
    accelerated: bool = False


@dataclass(frozen=True)
class GameResult:
    """Outcome of a game solve (the solution is loaded into the user's Vars when ``ok``).

    Attributes
    ----------
    ok : bool
        ``status is GameStatus.CONVERGED``.
    status : GameStatus
    message : str
        Why not ok ("" when ok).
    iterations : int
        Ipopt iterations in all (the solve only; the certificate's are not counted).
    sweeps : int
        Diagonalisation sweeps (1 for Nash and bilevel).
    seconds : float
        Wall-clock time of the solve (certificate excluded: see ``timings``).
    complementarity : float
        Final ``max |min(a, b)|`` over the followers' complementarity pairs.
    kkt_residual : KKTResidual
        Followers' KKT residual at the loaded point.
    certificate : Certificate or None
        For bilevel and EPEC solves with ``certify=True``.
    history : tuple of Sweep
        Diagonalisation history (EPEC only).
    homotopy : tuple of HomotopyResult
        Every homotopy run of the solve, in order.
    timings : dict
        Seconds per stage: ``build`` (clone + KKT + reformulation), ``solve``, ``certificate``.
    """

    ok: bool
    status: GameStatus
    message: str
    iterations: int
    sweeps: int
    seconds: float
    complementarity: float
    kkt_residual: KKTResidual
    certificate: Any = None
    history: tuple[Sweep, ...] = ()
    homotopy: tuple[HomotopyResult, ...] = ()
    timings: dict = field(default_factory=dict)
