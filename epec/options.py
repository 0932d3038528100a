"""Options of the game solves: the diagonalisation order, the leader step and the certificate
(docs/model.md section 5), declared, typed and defaulted in one place."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .checks import check_int

__all__ = ["Method", "LeaderStep", "CertificateOptions", "GlobalOptions"]


class Method(str, enum.Enum):
    """Diagonalisation order: each leader against the latest (Gauss-Seidel) or the previous
    sweep's (Jacobi) decisions of the others."""

    GAUSS_SEIDEL = "gauss-seidel"
    JACOBI = "jacobi"


class LeaderStep(str, enum.Enum):
    """How one leader's MPEC is solved inside the diagonalisation.

    ``IMPLICIT`` (default): in the leader's own decisions only, the followers' response ``z(x)``
    solved by Newton on their smoothed KKT system (:mod:`epec.response`) and the gradient of the
    leader's utility from the implicit function theorem; one decision by bracketing and
    safeguarded secant steps on ``dV/dx`` (:func:`scalar_ascent`), several by L-BFGS-B over the
    leader's box (implicit programming, Outrata, Kocvara & Zowe 1998, ch. 4; smoothing as Facchinei, Jiang &
    Qi, Math. Program. 85, 1999), a leader with general constraints of its own by SLSQP
    (:func:`epec.leader_steps.constrained_ascent`). Falls back to ``FULL_SPACE`` for a step it cannot take.
    ``FULL_SPACE``: Ipopt on the whole reformulated MPEC (the ``mode``'s homotopy).
    """

    IMPLICIT = "implicit"
    FULL_SPACE = "full-space"


@dataclass(frozen=True)
class CertificateOptions:
    """How :func:`solve_bilevel` / :func:`solve_epec` certify their point (docs/model.md section 5).

    Parameters
    ----------
    grid : int
        Points of the deviation grid per leader (per direction when multi-dimensional), >= 2.
        Default 41.
    refine : bool
        Bounded golden-section search around the best grid point. Default True.
    refine_iter : int
        Function evaluations of that search. Default 12.
    directions : int
        Random directions for a leader with several decision variables. Default 8.
    starts : int
        Random follower starts for the uniqueness check (0 skips it). Default 3.
    unique_tol : float
        Largest follower spread (max abs difference) still called unique. Default 1e-4.
    seed : int
        Seed of the random starts and directions. Default 0.
    fallbacks : int
        Ipopt solves (iteration-capped) the deviation check may spend, on the Newton path, on
        points where Newton and its continuation found no follower response; further such points
        count as failed evaluations (reported, and skipped in the maximum). Default 0: at 500x10
        one capped Ipopt homotopy on a point without an equilibrium (a reward of 0, where the
        proportional payment is 0/0) ran for minutes, and such points kept the certificate from
        finishing.
    gain_rtol, gain_atol : float
        The certificate *holds* only if every leader's deviation gain is at most
        ``max(gain_atol, gain_rtol |V_i|)``, ``V_i`` its utility at the point. Defaults 1e-6 and
        1e-8: the gains are differences of utilities at responses solved to ``max |F| <= 1e-10``, so
        an equilibrium shows gains of 1e-14 to 1e-9 relative; a trapped leader gains percent.
    kkt_tol : float
        ... and the followers' KKT residual is at most this, and no leader breaks one of its own
        constraints by more than this times ``max(1, |bound|)``. Default 1e-6.
    max_failed : float
        ... and at most this fraction of each leader's deviation evaluations found no follower
        response. Default 1 (no limit): in a general game a decision where the followers have no
        equilibrium is an infeasible one (Bard's example 5.1.1 has them on 70% of the leader's
        range), not a gap in the check. Where the followers always have an equilibrium (the
        MetaTrading game: a concave game, Rosen 1965) a failed evaluation is a solver's failure,
        and :func:`epec.solve_scenario` sets 0.5: a leader whose scan mostly failed has not
        been checked.
    best_reply : bool
        ... and every follower is at its best reply: its best-response gain (the most it gains by
        changing its own decisions alone, everything else fixed at the point) is at most
        ``max(reply_atol, reply_rtol |U_j|)``, ``U_j`` its utility. Each gain is proven (a convex
        program, declared or proven by the rules of :mod:`epec.convexity`; SCIP's global solve
        with its gap closed) or searched (Ipopt from ``reply_starts`` random starts), and the
        certificate names the method (:mod:`epec.best_reply`). Default True; False skips the
        check (the KKT point is then taken for the best reply, as before).
    reply_rtol, reply_atol : float
        Defaults 1e-6 and 1e-8, as the leaders' gains.
    reply_starts : int
        Random starts of the multistart search, >= 1. Default 8.
    reply_seconds : float
        Time limit of one follower's SCIP solve, > 0; a solve stopped by it without closing its
        gap falls back to the multistart. Default 10.
    reply_scip : bool
        Use SCIP (``pyscipopt``) for a follower the rules do not prove convex. Default True.
    reply_univariate : bool
        Before SCIP, solve a follower with one bounded decision and a polynomial objective
        exactly (its bounds and the derivative's real roots; :mod:`epec.best_reply`, method
        3a). Default True.
    batched : bool
        On the Newton path, solve the deviation responses of (b) as batches with the game's batch
        engine when it has one (``solve_epec(batch_response=...)``; :func:`epec.solve_scenario`
        passes the MetaTrading one, :mod:`models.batch_followers`), each response the engine
        does not solve falling back to Newton; False: one after another, as before. The lines,
        points and verdict are the same (tests/epec/test_batched_certificate.py). Default True.
    """

    grid: int = 41
    refine: bool = True
    refine_iter: int = 12
    directions: int = 8
    starts: int = 3
    unique_tol: float = 1e-4
    seed: int = 0
    fallbacks: int = 0
    gain_rtol: float = 1e-6
    gain_atol: float = 1e-8
    kkt_tol: float = 1e-6
    max_failed: float = 1.0
    best_reply: bool = True
    reply_rtol: float = 1e-6
    reply_atol: float = 1e-8
    reply_starts: int = 8
    reply_seconds: float = 10.0
    reply_scip: bool = True
    reply_univariate: bool = True
    batched: bool = True

    def __post_init__(self) -> None:
        for name, low in (("grid", 2), ("refine_iter", 1), ("directions", 1), ("starts", 0),
                          ("fallbacks", 0), ("reply_starts", 1)):
            check_int(name, getattr(self, name), low)
        for name in ("unique_tol", "gain_rtol", "gain_atol", "kkt_tol", "reply_rtol", "reply_atol", "reply_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: must be > 0, got {value!r}")
        if isinstance(self.max_failed, bool) or not isinstance(self.max_failed, (int, float)) \
                or not 0 <= self.max_failed <= 1:
            raise ValueError(f"max_failed: must be in [0, 1], got {self.max_failed!r}")
        for name in ("best_reply", "reply_scip", "reply_univariate", "batched"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be a bool, got {getattr(self, name)!r}")

    def gain_tolerance(self, utility: float) -> float:
        """The largest deviation gain still called no gain for a leader of utility ``utility``."""
        return max(self.gain_atol, self.gain_rtol * abs(utility))

    def reply_tolerance(self, utility: float) -> float:
        """The largest best-response gain still called none for a follower of utility ``utility``."""
        return max(self.reply_atol, self.reply_rtol * abs(utility))


@dataclass(frozen=True)
class GlobalOptions:
    """How :func:`epec.solve_epec` and :func:`epec.solve_bilevel` get out of a leader's local
    maximum (the leader steps are local; the certificate's scan of each leader's whole range is
    global).

    When the sweeps stop at a point whose certificate shows a leader with a profitable deviation,
    that leader (the one with the largest gain relative to its utility) is moved to its best
    deviation and the sweeps go on from there (a *global move*). A run ends certified, cycling,
    or with no pure equilibrium found once ``moves`` global moves did not reach a certified
    point or the sweeps came back to a profile that was refuted before; then the next start
    profile is tried.

    Parameters
    ----------
    moves : int
        Global moves per start, >= 0 (0: stop at the first refuted point, ``not_certified``).
        Default 8.
    starts : int
        Further start profiles tried when a start ends without a certified point, drawn uniformly
        in the leaders' boxes (:func:`epec.solve_bilevel`: none). Default 2.
    seed : int
        Seed of those start profiles. Default 0.
    """

    moves: int = 8
    starts: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("moves", "starts", "seed"):
            check_int(name, getattr(self, name), 0)
