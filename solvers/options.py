"""Ipopt options and return statuses.

The options are a frozen dataclass validated at construction; the statuses are an Enum covering
every ``ApplicationReturnStatus`` of Ipopt 3.11 (Wächter & Biegler, Math. Program. 106, 2006,
and ``IpReturnCodes_inc.h``).
"""
from __future__ import annotations

import enum
import math
import types
from dataclasses import dataclass, field
from typing import Mapping, Union

from models.errors import InputError

OptionValue = Union[str, int, float]


class SolverStatus(enum.Enum):
    """What an Ipopt run ended with; ``ok`` only for ``OPTIMAL`` and ``ACCEPTABLE``."""

    OPTIMAL = "optimal"
    ACCEPTABLE = "acceptable"
    INFEASIBLE = "infeasible"
    SEARCH_DIRECTION_TOO_SMALL = "search_direction_too_small"
    DIVERGING = "diverging"
    USER_STOP = "user_stop"
    FEASIBLE_POINT_FOUND = "feasible_point_found"
    MAX_ITER = "max_iter"
    #: Newton (:func:`solvers.solve_newton`): the merit stopped decreasing (``NewtonOptions.stall_window``)
    STALLED = "stalled"
    RESTORATION_FAILED = "restoration_failed"
    ERROR_IN_STEP_COMPUTATION = "error_in_step_computation"
    MAX_TIME = "max_time"
    MAX_WALL_TIME = "max_wall_time"
    NOT_ENOUGH_DEGREES_OF_FREEDOM = "not_enough_degrees_of_freedom"
    INVALID_PROBLEM = "invalid_problem"
    INVALID_OPTION = "invalid_option"
    INVALID_NUMBER = "invalid_number"
    UNRECOVERABLE_EXCEPTION = "unrecoverable_exception"
    NON_IPOPT_EXCEPTION = "non_ipopt_exception"
    INSUFFICIENT_MEMORY = "insufficient_memory"
    INTERNAL_ERROR = "internal_error"
    #: a return code this table does not know (a newer Ipopt) or a failure outside Ipopt
    ERROR = "error"

    @property
    def ok(self) -> bool:
        """True when the point returned is a (possibly acceptable-level) local solution."""
        return self in (SolverStatus.OPTIMAL, SolverStatus.ACCEPTABLE)

    @classmethod
    def from_ipopt(cls, code: int) -> "SolverStatus":
        """Map Ipopt's integer ``ApplicationReturnStatus`` to a status; unknown codes -> ``ERROR``."""
        return _IPOPT_CODES.get(int(code), cls.ERROR)


_IPOPT_CODES: dict[int, SolverStatus] = {
    0: SolverStatus.OPTIMAL,
    1: SolverStatus.ACCEPTABLE,
    2: SolverStatus.INFEASIBLE,
    3: SolverStatus.SEARCH_DIRECTION_TOO_SMALL,
    4: SolverStatus.DIVERGING,
    5: SolverStatus.USER_STOP,
    6: SolverStatus.FEASIBLE_POINT_FOUND,
    -1: SolverStatus.MAX_ITER,
    -2: SolverStatus.RESTORATION_FAILED,
    -3: SolverStatus.ERROR_IN_STEP_COMPUTATION,
    -4: SolverStatus.MAX_TIME,
    -5: SolverStatus.MAX_WALL_TIME,
    -10: SolverStatus.NOT_ENOUGH_DEGREES_OF_FREEDOM,
    -11: SolverStatus.INVALID_PROBLEM,
    -12: SolverStatus.INVALID_OPTION,
    -13: SolverStatus.INVALID_NUMBER,
    -100: SolverStatus.UNRECOVERABLE_EXCEPTION,
    -101: SolverStatus.NON_IPOPT_EXCEPTION,
    -102: SolverStatus.INSUFFICIENT_MEMORY,
    -199: SolverStatus.INTERNAL_ERROR,
}

#: Ipopt options that the typed fields own; ``extra`` may not set them a second time.
_TYPED_IPOPT_OPTIONS = frozenset({
    "tol", "max_iter", "print_level", "acceptable_tol", "acceptable_iter", "max_cpu_time",
    "constr_viol_tol", "warm_start_init_point", "warm_start_bound_push",
    "warm_start_mult_bound_push", "hessian_approximation", "jacobian_approximation",
    "fixed_variable_treatment",
})


@dataclass(frozen=True)
class IpoptOptions:
    """Options of :class:`solvers.IpoptSolver`, validated at construction.

    Parameters
    ----------
    tol : float
        Ipopt's scaled NLP error tolerance (``tol``), > 0. Default 1e-8.
    max_iter : int
        Iteration limit (``max_iter``), >= 0. Default 3000.
    print_level : int
        Ipopt's verbosity 0..12 (``print_level``); 0 also hides Ipopt's banner. Default 0.
    acceptable_tol : float
        ``acceptable_tol``, > 0: the looser level reported as ``SolverStatus.ACCEPTABLE``. Default 1e-6.
    acceptable_iter : int
        ``acceptable_iter``, >= 0: consecutive acceptable iterates before stopping there. Default 15.
    max_cpu_time : float
        CPU-second limit (``max_cpu_time``), > 0. Default 1e6.
    constr_viol_tol : float
        Absolute constraint-violation tolerance (``constr_viol_tol``), > 0. Default 1e-4 (Ipopt's).
    warm_start_init_point : bool
        When ``solve(warm_start=True)`` has the multipliers of an earlier solve of the same compiled
        NLP, pass them and set Ipopt's ``warm_start_init_point=yes``. Default True.
    warm_start_bound_push, warm_start_mult_bound_push : float
        How far a warm-started primal point / bound multiplier is pushed off its bound, > 0.
        Default 1e-9 each (Ipopt's 1e-3 throws away most of a warm start).
    warm_start_mu_init : float
        Ipopt's initial barrier parameter ``mu_init`` on warm-started solves only, > 0. Default 1e-4:
        the cold default 0.1 would first pull the warm iterate back into the interior (measured on
        the 2000-variable chain of ``benchmarks/bench_derivatives.py``: ~12 -> ~9 iterations).
    load_on_failure : bool
        Write the last iterate into the model even when the solve failed. Default False: a failed
        solve is never presented as a solution.
    extra : Mapping[str, str | int | float]
        Any other Ipopt option, passed straight through (``{"mu_strategy": "adaptive"}``).
        Ipopt checks the names and types when the solve starts (an unknown one raises InputError).
        An ``extra`` value wins over the warm-start settings above (``mu_init`` included).
    """

    tol: float = 1e-8
    max_iter: int = 3000
    print_level: int = 0
    acceptable_tol: float = 1e-6
    acceptable_iter: int = 15
    max_cpu_time: float = 1e6
    constr_viol_tol: float = 1e-4
    warm_start_init_point: bool = True
    warm_start_bound_push: float = 1e-9
    warm_start_mult_bound_push: float = 1e-9
    warm_start_mu_init: float = 1e-4
    load_on_failure: bool = False
    extra: Mapping[str, OptionValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tol", "acceptable_tol", "max_cpu_time", "constr_viol_tol",
                     "warm_start_bound_push", "warm_start_mult_bound_push", "warm_start_mu_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(name, f"must be a number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise InputError(name, f"must be finite and > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name, low, high in (("max_iter", 0, None), ("print_level", 0, 12), ("acceptable_iter", 0, None)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(name, f"must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise InputError(name, f"must be {bound}, got {value}")
        for name in ("warm_start_init_point", "load_on_failure"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(name, f"must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.extra, Mapping):
            raise InputError("extra", f"must be a mapping of Ipopt option names to values, got {type(self.extra).__name__}")
        for key, value in self.extra.items():
            if not isinstance(key, str) or not key:
                raise InputError("extra", f"option names must be non-empty strings, got {key!r}")
            if key in _TYPED_IPOPT_OPTIONS:
                raise InputError(f"extra.{key}", "is managed by the solver or a typed field of IpoptOptions")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise InputError(f"extra.{key}", f"must be a str, int or float, got {value!r}")
        object.__setattr__(self, "extra", types.MappingProxyType(dict(self.extra)))

    def ipopt_options(self, warm: bool) -> dict[str, OptionValue]:
        """The options handed to Ipopt for one solve; ``warm`` adds the warm-start settings."""
        opts: dict[str, OptionValue] = {
            "tol": self.tol,
            "max_iter": self.max_iter,
            "print_level": self.print_level,
            "acceptable_tol": self.acceptable_tol,
            "acceptable_iter": self.acceptable_iter,
            "max_cpu_time": self.max_cpu_time,
            "constr_viol_tol": self.constr_viol_tol,
            # fixed Vars are passed with lb == ub; Ipopt then removes them from the iteration
            "fixed_variable_treatment": "make_parameter",
        }
        if self.print_level == 0:
            opts["sb"] = "yes"  # suppress the banner Ipopt prints even at print_level 0
        if warm:
            opts["warm_start_init_point"] = "yes"
            opts["warm_start_bound_push"] = self.warm_start_bound_push
            opts["warm_start_mult_bound_push"] = self.warm_start_mult_bound_push
            opts["mu_init"] = self.warm_start_mu_init
        opts.update(self.extra)
        return opts
