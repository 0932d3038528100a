"""Scholtes relaxation homotopy of complementarity constraints.

``a >= 0, b >= 0, a b <= eps`` with ``eps -> 0`` (Scholtes, SIAM J. Optim. 11(4), 2001);
``eps`` is a mutable Param, so each homotopy step re-solves the same compiled NLP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyomo.core.base.block import BlockData

from .checks import check_int, check_positive
from .modes import register_mode
from .reformulation import Reformulation, implied_nonneg, geometric

__all__ = ["ScholtesRelaxation"]


@register_mode("scholtes", help="Scholtes relaxation a b <= eps, eps -> 0")
@dataclass(frozen=True)
class ScholtesRelaxation(Reformulation):
    """Relaxation ``a b <= eps``, ``eps`` from ``eps_start`` down to ``eps_end`` by ``factor``.

    Parameters
    ----------
    eps_start : float
        First relaxation, > 0. Default 1e-2.
    eps_end : float
        Last relaxation, > 0: the complementarity gap ``min(a, b) <= sqrt(eps_end)``. Default 1e-9.
    factor : float
        Ratio between consecutive values, in (0, 1). Default 0.01.
    warm_steps : int
        Number of final schedule values solved when warm-started from a nearby solution
        (diagonalisation sweeps, certificate grids). Default 1.
    comp_tol : float
        ``max |min(a, b)|`` accepted at the end. Default 1e-4.
    """

    eps_start: float = 1e-2
    eps_end: float = 1e-9
    factor: float = 0.01
    warm_steps: int = 1
    comp_tol: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("eps_start", "eps_end", "factor", "comp_tol"):
            check_positive(name, getattr(self, name))
        if not self.factor < 1:
            raise ValueError(f"factor: must be in (0, 1), got {self.factor!r}")
        if self.eps_end > self.eps_start:
            raise ValueError("eps_end: must be <= eps_start")
        check_int("warm_steps", self.warm_steps, 1)

    def schedule(self, warm: bool) -> list[float]:
        values = geometric(self.eps_start, self.eps_end, self.factor)
        return values[-self.warm_steps:] if warm else values

    def _transform(self, block: BlockData, param: Any, a: Any, b: Any) -> None:
        for side in (a, b):
            if not implied_nonneg(side):
                block.cons.add(side >= 0)
        block.cons.add(a * b <= param)
