"""Smoothed Fischer-Burmeister reformulation of complementarity constraints.

``phi_mu(a, b) = a + b - sqrt(a^2 + b^2 + 2 mu^2) = 0``, equivalent to ``a, b > 0, a b = mu^2``
(Kanzow, SIAM J. Matrix Anal. Appl. 17(4), 1996), with ``mu -> 0``; ``mu`` is a mutable Param.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .checks import check_int, check_positive
from .modes import register_mode
from .reformulation import Reformulation, geometric

__all__ = ["FischerBurmeisterSmoothing"]


@register_mode("smoothing", help="smoothed Fischer-Burmeister a + b - sqrt(a^2 + b^2 + 2 mu^2) = 0, mu -> 0")
@dataclass(frozen=True)
class FischerBurmeisterSmoothing(Reformulation):
    """``a + b - sqrt(a^2 + b^2 + 2 mu^2) = 0``, ``mu`` from ``mu_start`` down to ``mu_end``.

    Parameters
    ----------
    mu_start : float
        First smoothing, > 0. Default 1e-1.
    mu_end : float
        Last smoothing, > 0; the pairs then satisfy ``a b = mu_end^2``. Default 1e-6.
    factor : float
        Ratio between consecutive values, in (0, 1). Default 0.1.
    warm_steps : int
        Final schedule values solved when warm-started. Default 1.
    comp_tol : float
        ``max |min(a, b)|`` accepted at the end. Default 1e-4.
    """

    mu_start: float = 1e-1
    mu_end: float = 1e-6
    factor: float = 0.1
    warm_steps: int = 1
    comp_tol: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("mu_start", "mu_end", "factor", "comp_tol"):
            check_positive(name, getattr(self, name))
        if not self.factor < 1:
            raise ValueError(f"factor: must be in (0, 1), got {self.factor!r}")
        if self.mu_end > self.mu_start:
            raise ValueError("mu_end: must be <= mu_start")
        check_int("warm_steps", self.warm_steps, 1)

    def schedule(self, warm: bool) -> list[float]:
        values = geometric(self.mu_start, self.mu_end, self.factor)
        return values[-self.warm_steps:] if warm else values

    def _transform(self, block: BlockData, param: Any, a: Any, b: Any) -> None:
        block.cons.add(a + b - pyo.sqrt(a * a + b * b + 2 * param * param) == 0)
