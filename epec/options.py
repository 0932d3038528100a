"""Options of the game solves: the diagonalisation order, the leader step and the certificate
(MODEL.md section 5), declared, typed and defaulted in one place."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .reformulation import check_int

__all__ = ["Method", "LeaderStep", "CertificateOptions"]


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
    Qi, Math. Program. 85, 1999). Falls back to ``FULL_SPACE`` for a step it cannot take.
    ``FULL_SPACE``: Ipopt on the whole reformulated MPEC (the ``mode``'s homotopy).
    """

    IMPLICIT = "implicit"
    FULL_SPACE = "full-space"


@dataclass(frozen=True)
class CertificateOptions:
    """How :func:`solve_bilevel` / :func:`solve_epec` certify their point (MODEL.md section 5).

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
    """

    grid: int = 41
    refine: bool = True
    refine_iter: int = 12
    directions: int = 8
    starts: int = 3
    unique_tol: float = 1e-4
    seed: int = 0
    fallbacks: int = 0

    def __post_init__(self) -> None:
        for name, low in (("grid", 2), ("refine_iter", 1), ("directions", 1), ("starts", 0),
                          ("fallbacks", 0)):
            check_int(name, getattr(self, name), low)
        if not (isinstance(self.unique_tol, (int, float)) and self.unique_tol > 0):
            raise ValueError(f"unique_tol: must be > 0, got {self.unique_tol!r}")
