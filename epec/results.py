"""What a game solve returns: its status, the diagonalisation history and the result."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from .kkt import KKTResidual
from .reformulation import HomotopyResult

__all__ = ["GameStatus", "GlobalMove", "Sweep", "GameResult"]


class GameStatus(enum.Enum):
    """How a game solve ended; only ``CONVERGED`` is ``ok``, and it means *certified*."""

    #: stopped, and the point's check holds: for bilevel and EPEC solves its certificate
    #: (:attr:`epec.Certificate.holds`), for a Nash solve the players' KKT residual
    CONVERGED = "converged"
    #: stopped at a point whose check fails, for a reason a global move cannot mend (followers'
    #: KKT residual or uniqueness, too many failed evaluations) or with global moves switched off
    NOT_CERTIFIED = "not_certified"
    #: stopped at a point that was not checked (``certify=False``)
    UNCERTIFIED = "uncertified"
    #: the global moves did not reach a certified point (see ``GameResult.moves``)
    NO_EQUILIBRIUM = "no_equilibrium"
    SOLVER_FAILED = "solver_failed"  #: an Ipopt solve failed or left the pairs non-complementary
    MAX_ITER = "max_iter"  #: diagonalisation stopped at max_iter without meeting tol
    CYCLING = "cycling"  #: diagonalisation revisited an earlier iterate without converging

    @property
    def stopped(self) -> bool:
        """The solve stopped at a point (loaded into the user's Vars): converged, not certified,
        or uncertified."""
        return self in (GameStatus.CONVERGED, GameStatus.NOT_CERTIFIED, GameStatus.UNCERTIFIED)


@dataclass(frozen=True)
class GlobalMove:
    """A point where the sweeps stopped but a leader could still gain by deviating, and the move
    that followed: the evidence of a run that found no pure equilibrium.

    ``decisions`` and ``utilities`` per leader at the refuted point; ``gains`` and
    ``best_deviations`` per leader from its certificate; ``leader`` the index of the leader
    moved (to its best deviation); ``sweep`` the sweep after which the point was reached.
    """

    sweep: int
    decisions: tuple[tuple[float, ...], ...]
    utilities: tuple[float, ...]
    gains: tuple[float, ...]
    best_deviations: tuple[tuple[float, ...], ...]
    leader: int


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
    """Outcome of a game solve.

    ``ok`` means certified: the solve stopped and its check holds (for bilevel and EPEC solves
    the certificate of docs/model.md section 5, :attr:`epec.Certificate.holds`). The point is loaded
    into the user's Vars whenever the solve stopped at one (``status.stopped``: converged, not
    certified, uncertified); otherwise they are untouched.

    Attributes
    ----------
    ok : bool
        ``status is GameStatus.CONVERGED``.
    status : GameStatus
    message : str
        Why not ok ("" when ok): for a refuted point the leaders that gain by deviating, their
        gains and best deviations; for no equilibrium the last refuted profiles.
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
        For bilevel and EPEC solves with ``certify=True``: the certificate of the last point the
        solve stopped at (also when it does not hold).
    history : tuple of Sweep
        Diagonalisation history (EPEC only).
    homotopy : tuple of HomotopyResult
        Every homotopy run of the solve, in order.
    timings : dict
        Seconds per stage: ``build`` (clone + KKT + reformulation), ``solve``, ``certificate``.
    moves : tuple of GlobalMove
        The global moves out of refuted points (:class:`epec.GlobalOptions`), in order.
    cycle : tuple
        For ``CYCLING``: the leader decisions of the sweeps that form the cycle.
    starts : int
        Start profiles tried.
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
    moves: tuple[GlobalMove, ...] = ()
    cycle: tuple[tuple[tuple[float, ...], ...], ...] = ()
    starts: int = 1
