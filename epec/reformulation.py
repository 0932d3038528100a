"""The common contract of the MPEC reformulations (one file per mode beside this one).

A reformulation turns every active ``pyomo.mpec`` Complementarity ``a >= 0 _|_ b >= 0`` of a
model into ordinary NLP constraints (and/or objective terms) driven by one homotopy parameter
held in a mutable Param, so that the compiled NLP is re-solved along the homotopy without
recompiling. Contract (after cvxpy's ``Reduction``): :meth:`Reformulation.apply` returns the
transformed model (a clone unless ``clone=False``) and the :class:`InverseData` that maps a
solution back; :meth:`Reformulation.solve` owns the homotopy loop (template method; a mode
overrides :meth:`Reformulation._transform` and its schedule); :meth:`InverseData.load` writes
the solution into the user's variables. The modes are named in the registry of
:mod:`epec.modes` (each mode registers itself there; this module imports none of them).
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap
from pyomo.common.modeling import unique_component_name
from pyomo.core.base.block import BlockData
from pyomo.core.expr.relational_expr import InequalityExpression
from pyomo.mpec import Complementarity

__all__ = [
    "ReformulationError",
    "Reformulation",
    "InverseData",
    "HomotopyStep",
    "HomotopyResult",
    "complementarity_pairs",
    "clone_with_map",
    "implied_nonneg",
    "geometric",
]


class ReformulationError(ValueError):
    """A complementarity that a reformulation mode cannot express."""


def _nonneg_side(e: Any, cname: str, side: int, mode: str) -> Any:
    """``e`` written as ``lo <= expr`` or ``expr <= up`` -> the expression that must be >= 0."""
    if e.__class__ is not InequalityExpression or e.strict:
        raise ReformulationError(
            f"{mode}: complementarity {cname!r} side {side} must be a single non-strict inequality "
            f"'expr >= bound' or 'expr <= bound', got {e!r}"
        )
    lo, hi = e.args
    return hi if type(lo) in (int, float) and lo == 0 else hi - lo


def complementarity_pairs(model: BlockData, mode: str = "reformulation") -> list[tuple[str, Any, Any]]:
    """``(name, a, b)`` with ``a >= 0 _|_ b >= 0`` for every active complementarity of ``model``.

    Raises
    ------
    ReformulationError
        A side that is an equality, a ranged or a bound-free expression (``mode`` names the caller).
    """
    out = []
    for cc in model.component_data_objects(Complementarity, active=True, descend_into=True):
        a = _nonneg_side(cc._args[0], cc.name, 1, mode)
        b = _nonneg_side(cc._args[1], cc.name, 2, mode)
        out.append((cc.name, a, b))
    return out


def implied_nonneg(e: Any) -> bool:
    """True if ``e >= 0`` is already a variable bound (no constraint needed).

    Parameters
    ----------
    e : Pyomo expression
        One side of a complementarity pair.

    Returns
    -------
    bool
    """
    return e.is_variable_type() and e.lb is not None and e.lb >= 0


def clone_with_map(model: BlockData) -> tuple[BlockData, dict[int, Any]]:
    """Clone ``model``; return the clone and the memo (``id(original component) -> clone``)."""
    memo: dict[int, Any] = {"__block_scope__": {id(model): True, id(None): False}}
    clone = model.clone(memo)
    return clone, memo


@dataclass
class InverseData:
    """What maps a reformulated model's solution back, and drives its homotopy.

    Attributes
    ----------
    model : BlockData
        The transformed model.
    param : ParamData
        The mutable homotopy parameter (eps, mu or rho).
    pairs : list
        ``(name, a, b)`` complementarity pairs in the transformed model.
    block : BlockData
        The block holding the mode's constraints and objectives.
    var_map : list
        ``(user VarData, transformed VarData)`` when ``apply`` cloned, else empty.
    """

    model: BlockData
    param: Any
    pairs: list
    block: BlockData
    var_map: list = field(default_factory=list)
    objectives: ComponentMap = field(default_factory=ComponentMap)

    def complementarity(self) -> float:
        """``max |min(a, b)|`` over the pairs at the current values (0 when there are none)."""
        return max((abs(min(pyo.value(a), pyo.value(b))) for _, a, b in self.pairs), default=0.0)

    def load(self) -> None:
        """Copy the transformed model's values onto the user's variables."""
        for orig, new in self.var_map:
            if not orig.fixed:
                orig.set_value(new.value, skip_validation=True)


@dataclass(frozen=True)
class HomotopyStep:
    """One solve of a homotopy: parameter value, solver status, iterations, seconds, max |min(a,b)|."""

    param: float
    status: Any
    ok: bool
    iterations: int
    seconds: float
    complementarity: float


@dataclass(frozen=True)
class HomotopyResult:
    """Outcome of :meth:`Reformulation.solve`: ``ok`` iff the last step solved and the final
    complementarity ``max |min(a,b)|`` is within the mode's tolerance."""

    ok: bool
    status: Any
    iterations: int
    seconds: float
    complementarity: float
    objective: float | None
    steps: tuple[HomotopyStep, ...]
    message: str = ""


class Reformulation(abc.ABC):
    """Base of the MPEC reformulation modes (a frozen dataclass each).

    Subclasses implement :meth:`_transform` (add constraints for one pair) and
    :meth:`schedule` (parameter values of a cold and of a warm homotopy), and are named with
    :func:`epec.modes.register_mode`, which sets :attr:`kind` to the registered name.
    """

    #: the registered name of the mode (set by :func:`epec.modes.register_mode`)
    kind: str = "reformulation"
    comp_tol: float

    @abc.abstractmethod
    def schedule(self, warm: bool) -> list[float]:
        """Homotopy parameter values, solved in order (warm: start near the end)."""

    @abc.abstractmethod
    def _transform(self, block: BlockData, param: Any, a: Any, b: Any) -> None:
        """Add the mode's constraints for ``a >= 0 _|_ b >= 0`` to ``block``."""

    def _finish(self, data: InverseData) -> None:  # hook: penalty builds its objective term here
        return None

    def objective(self, data: InverseData, objective: Any | None) -> Any:
        """The Objective to hand the solver for user objective ``objective`` (None: feasibility)."""
        if objective is None:
            return data.block.feasibility
        return objective

    def apply(self, model: BlockData, *, clone: bool = True) -> tuple[BlockData, InverseData]:
        """Reformulate every active complementarity of ``model``.

        Returns the transformed model (a clone of ``model`` unless ``clone=False``) and the
        inverse data. The complementarity components are deactivated in the result.
        """
        var_map: list = []
        if clone:
            work, memo = clone_with_map(model)
            var_map = [(v, memo[id(v)]) for v in model.component_data_objects(pyo.Var, descend_into=True)]
        else:
            work = model
        pairs = complementarity_pairs(work, type(self).__name__)
        block = pyo.Block(concrete=True)
        work.add_component(unique_component_name(work, f"_epec_{self.kind}"), block)
        block.param = pyo.Param(mutable=True, initialize=self.schedule(False)[0])
        block.cons = pyo.ConstraintList()
        for _, a, b in pairs:
            self._transform(block, block.param, a, b)
        for cc in list(work.component_data_objects(Complementarity, active=True, descend_into=True)):
            cc.deactivate()
        block.feasibility = pyo.Objective(expr=0.0)
        block.feasibility.deactivate()
        data = InverseData(work, block.param, pairs, block, var_map)
        self._finish(data)
        return work, data

    def solve(
        self,
        data: InverseData,
        solver: Any,
        objective: Any | None = None,
        *,
        warm: bool = False,
        schedule: Sequence[float] | None = None,
    ) -> HomotopyResult:
        """Drive the homotopy: solve at each parameter value, warm-starting from the last.

        ``objective`` is an Objective of the transformed model (None: feasibility, i.e. a Nash
        system). Intermediate failures are recorded and the homotopy goes on (except after a
        locally infeasible one: the feasible set only shrinks along it; a warm run stops at its
        first failure); the result is
        ``ok`` only if the last solve succeeded and ``max |min(a,b)| <= comp_tol``.
        """
        obj = self.objective(data, objective)
        t0 = time.perf_counter()
        steps: list[HomotopyStep] = []
        iters = 0
        last = None
        values = list(schedule) if schedule is not None else self.schedule(warm)
        for k, value in enumerate(values):
            data.param.set_value(value)
            res = solver.solve(data.model, objective=obj, warm_start=True, load_solution=True)
            iters += int(res.iterations or 0)
            comp = data.complementarity()
            steps.append(HomotopyStep(value, res.status, bool(res.ok), int(res.iterations or 0),
                                      float(res.seconds or 0.0), comp))
            last = res
            # The feasible set only shrinks along the homotopy: infeasible now, infeasible after.
            if res.status.name == "INFEASIBLE" or self._stop_early(k, values, res, comp):
                break
            # A warm run starts next to a solution: a failure there is not a bad homotopy start.
            if warm and not res.ok:
                break
        comp = steps[-1].complementarity
        ok = bool(last.ok) and comp <= self.comp_tol
        msg = "" if ok else (
            f"{self.kind}: last solve {last.status.name}" if not last.ok
            else f"{self.kind}: complementarity {comp:.3g} > comp_tol {self.comp_tol:.3g}"
        )
        objective_value = None
        if objective is not None and last.ok:
            objective_value = float(pyo.value(objective))
        return HomotopyResult(ok, last.status, iters, time.perf_counter() - t0, comp,
                              objective_value, tuple(steps), msg)

    def _stop_early(self, k: int, values: list[float], res: Any, comp: float) -> bool:
        return False


def geometric(start: float, stop: float, factor: float) -> list[float]:
    """``start, start*factor, ...`` down (or up) to ``stop`` inclusive: a homotopy schedule.

    Parameters
    ----------
    start, stop : float
        First and last values (> 0).
    factor : float
        Ratio between consecutive values (< 1 going down, > 1 going up).

    Returns
    -------
    list of float
    """
    out = [start]
    grow = factor > 1
    while (out[-1] * factor <= stop * (1 + 1e-12)) if grow else (out[-1] * factor >= stop * (1 - 1e-12)):
        out.append(out[-1] * factor)
    if out[-1] != stop:
        out.append(stop)
    return out
