"""Penalty reformulation of complementarity constraints.

``a >= 0, b >= 0`` kept as constraints and ``rho sum a b`` added to the (minimised) objective,
``rho`` increased until ``max |min(a, b)| <= comp_tol`` (Hu & Ralph, JOTA 123(2), 2004;
exact for a finite ``rho`` under MPEC-LICQ). ``rho`` is a mutable Param.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo
from pyomo.common.modeling import unique_component_name
from pyomo.core.base.block import BlockData

from .checks import check_int, check_positive
from .modes import register_mode
from .reformulation import InverseData, Reformulation, implied_nonneg, geometric

__all__ = ["PenaltyMode"]


@register_mode("penalty", help="penalty rho sum a b added to the objective, rho increased")
@dataclass(frozen=True)
class PenaltyMode(Reformulation):
    """Objective ``f + rho sum_i a_i b_i`` (minimisation sense), ``rho`` from ``rho_start`` up.

    Parameters
    ----------
    rho_start : float
        First penalty weight, > 0. Default 1.0.
    rho_end : float
        Largest penalty weight, >= rho_start. Default 1e8.
    factor : float
        Ratio between consecutive weights, > 1. Default 10.
    warm_steps : int
        Unused (kept for a uniform signature): a warm start also climbs from ``rho_start``,
        because a huge weight at once swamps the objective's scaling; the loop stops as soon
        as the pairs are complementary, so a warm start costs one or two solves. Default 1.
    comp_tol : float
        ``max |min(a, b)|`` accepted; reaching it ends the homotopy early. Default 1e-6.
    """

    rho_start: float = 1.0
    rho_end: float = 1e8
    factor: float = 10.0
    warm_steps: int = 1
    comp_tol: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("rho_start", "rho_end", "factor", "comp_tol"):
            check_positive(name, getattr(self, name))
        if not self.factor > 1:
            raise ValueError(f"factor: must be > 1, got {self.factor!r}")
        if self.rho_end < self.rho_start:
            raise ValueError("rho_end: must be >= rho_start")
        check_int("warm_steps", self.warm_steps, 1)

    def schedule(self, warm: bool) -> list[float]:
        return geometric(self.rho_start, self.rho_end, self.factor)

    def _transform(self, block: BlockData, param: Any, a: Any, b: Any) -> None:
        for side in (a, b):
            if not implied_nonneg(side):
                block.cons.add(side >= 0)

    def _finish(self, data: InverseData) -> None:
        block = data.block
        block.products = pyo.Expression(expr=sum(a * b for _, a, b in data.pairs) if data.pairs else 0.0)
        block.feasibility.set_value(data.param * block.products)

    def objective(self, data: InverseData, objective: Any | None) -> Any:
        """A penalised copy of ``objective`` (created once, kept deactivated)."""
        if objective is None:
            return data.block.feasibility
        if objective not in data.objectives:
            sign = 1.0 if objective.sense == pyo.minimize else -1.0
            pen = pyo.Objective(expr=objective.expr + sign * data.param * data.block.products,
                                sense=objective.sense)
            data.block.add_component(unique_component_name(data.block, "penalised"), pen)
            pen.deactivate()
            data.objectives[objective] = pen
        return data.objectives[objective]

    def _stop_early(self, k: int, values: list[float], res: Any, comp: float) -> bool:
        return bool(res.ok) and comp <= self.comp_tol
