"""Solve a compiled Pyomo NLP with Ipopt through cyipopt.

Ipopt (Wächter & Biegler, "On the implementation of an interior-point filter line-search algorithm",
Math. Program. 106, 2006) solves  min_x f(x)  s.t.  g_L <= g(x) <= g_U,  x_L <= x <= x_U.
A maximisation is passed as  min -f; fixed Vars as x_L = x_U (``fixed_variable_treatment =
make_parameter``), so fixing, unfixing and re-valuing Vars never recompiles.

Multiplier conventions
----------------------
``SolveResult.constraint_multipliers`` are Ipopt's own ``lambda`` for the minimisation it solved,
  grad(s f) + J^T lambda - z_L + z_U = 0,  s = +1 (minimise) or -1 (maximise).
``SolveResult.duals`` (and a ``dual`` Suffix) hold the sensitivities of the *user's* objective to
the constraint's bound, ``d f* / d rhs = -s * lambda`` -- the AMPL/Pyomo convention: >= 0 on an
active ``>=`` constraint of a minimisation.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from models.errors import InputError

from .casadi_nlp import CompiledNLP, compile_nlp
from .options import IpoptOptions, SolverStatus

INSTALL_HINT = (
    "install Ipopt and cyipopt: `apt-get install coinor-libipopt-dev libmumps-seq-dev liblapack-dev "
    "libblas-dev gfortran pkg-config` then `pip install cyipopt`, or run `make setup`"
)


class IpoptNotAvailable(RuntimeError):
    """cyipopt (or the Ipopt library behind it) cannot be imported."""


def _cyipopt():
    try:
        import cyipopt
    except ImportError as err:  # also raised when libipopt.so is missing
        raise IpoptNotAvailable(f"cannot import cyipopt ({err}); {INSTALL_HINT}") from err
    return cyipopt


@dataclass(frozen=True)
class SolveResult:
    """The outcome of one Ipopt solve.

    Attributes
    ----------
    status : SolverStatus
    ok : bool
        True only for ``OPTIMAL`` and ``ACCEPTABLE``.
    ipopt_status : int
        Ipopt's ``ApplicationReturnStatus``.
    message : str
        Ipopt's text for it.
    iterations : int
    seconds : float
        Wall time of the whole call (state read, Ipopt, write-back).
    objective : float
        The user's objective at ``x`` (in its own sense, not negated for maximise).
    x : np.ndarray
        Final point in the order of ``CompiledNLP.variables`` (fixed Vars at their values).
    constraint_multipliers : np.ndarray
        Ipopt's ``lambda`` in the order of ``CompiledNLP.constraints`` (see module docstring).
    bound_multipliers_lower, bound_multipliers_upper : np.ndarray
        Ipopt's ``z_L``, ``z_U`` >= 0.
    duals : Mapping[ConstraintData, float]
        ``d f* / d rhs`` per Constraint; filled whether or not the solution was loaded.
    loaded : bool
        Whether ``x`` was written into the Vars.
    """

    status: SolverStatus
    ipopt_status: int
    message: str
    iterations: int
    seconds: float
    objective: float
    x: np.ndarray
    constraint_multipliers: np.ndarray
    bound_multipliers_lower: np.ndarray
    bound_multipliers_upper: np.ndarray
    ipopt_seconds: float = 0.0
    eval_seconds: float = 0.0
    duals: Mapping[Any, float] = field(default_factory=dict, repr=False)
    loaded: bool = False

    @property
    def ok(self) -> bool:
        return self.status.ok


class _Callbacks:
    """cyipopt's problem object: thin forwarding to the CompiledNLP with ``p`` and ``w`` bound;
    ``eval_seconds`` accumulates the time spent in the callbacks (CasADi plus the crossing)."""

    def __init__(self, nlp: CompiledNLP, p: np.ndarray, w: np.ndarray) -> None:
        self.nlp, self.p, self.w = nlp, p, w
        self.iterations = 0
        self.eval_seconds = 0.0
        self._jac_struct = (nlp.jac_rows, nlp.jac_cols)
        self._hess_struct = (nlp.hess_rows, nlp.hess_cols)

    def objective(self, x):
        t = time.perf_counter()
        out = self.nlp.objective(x, self.p, self.w)
        self.eval_seconds += time.perf_counter() - t
        return out

    def gradient(self, x):
        t = time.perf_counter()
        out = self.nlp.gradient(x, self.p, self.w)
        self.eval_seconds += time.perf_counter() - t
        return out

    def constraints(self, x):
        t = time.perf_counter()
        out = self.nlp.constraints_value(x, self.p)
        self.eval_seconds += time.perf_counter() - t
        return out

    def jacobian(self, x):
        t = time.perf_counter()
        out = self.nlp.jacobian(x, self.p)
        self.eval_seconds += time.perf_counter() - t
        return out

    def jacobianstructure(self):
        return self._jac_struct

    def hessian(self, x, lagrange, obj_factor):
        t = time.perf_counter()
        out = self.nlp.hessian(x, self.p, obj_factor * self.w, lagrange)
        self.eval_seconds += time.perf_counter() - t
        return out

    def hessianstructure(self):
        return self._hess_struct

    def intermediate(self, alg_mod, iter_count, *args):
        self.iterations = iter_count
        return True


@dataclass
class _Warm:
    x: np.ndarray
    lam: np.ndarray
    zl: np.ndarray
    zu: np.ndarray


class IpoptSolver:
    """Ipopt on Pyomo models, compiled once per model structure and re-solved cheaply.

    Parameters
    ----------
    options : IpoptOptions, optional
        Defaults to ``IpoptOptions()``.

    Attributes
    ----------
    compile_count : int
        How many times this solver compiled a model (tests assert re-solves do not add to it).

    Notes
    -----
    The compiled NLP of each model is cached in a WeakKeyDictionary keyed by the model and reused
    while :meth:`CompiledNLP.is_current` holds: same active Constraints, same Objectives, and the
    same expression objects in them and in the named Expressions they use (``set_value`` on any
    of these, activating or deactivating a Constraint, adding one, recompile). Mutating an
    expression object in place is not detected: call :meth:`forget` after such an edit.

    Warm start: the initial point is always the Vars' current values. Passing the previous
    multipliers as well (``warm_start_init_point=yes``, with small bound pushes and
    ``mu_init = options.warm_start_mu_init``) is what makes a re-solve after a small change of
    fixed values or Params cheaper; it is only done with multipliers of the same compiled NLP,
    whose dimensions and ordering are then guaranteed to match.
    """

    def __init__(self, options: IpoptOptions | None = None) -> None:
        if options is None:
            options = IpoptOptions()
        if not isinstance(options, IpoptOptions):
            raise InputError("options", f"must be an IpoptOptions, got {type(options).__name__}")
        self.options = options
        self.compile_count = 0
        self._cache: "weakref.WeakKeyDictionary[Any, CompiledNLP]" = weakref.WeakKeyDictionary()
        self._warm: "weakref.WeakKeyDictionary[CompiledNLP, _Warm]" = weakref.WeakKeyDictionary()

    def compiled(self, model) -> CompiledNLP:
        """The cached CompiledNLP of ``model``, compiled anew if its structure changed."""
        nlp = self._cache.get(model)
        if nlp is None or not nlp.is_current(model):
            nlp = compile_nlp(model)
            self.compile_count += 1
            self._cache[model] = nlp
        return nlp

    def forget(self, model) -> None:
        """Drop the cached compilation (and with it the warm start) of ``model``."""
        nlp = self._cache.pop(model, None)
        if nlp is not None:
            self._warm.pop(nlp, None)

    def solve(self, model, objective=None, warm_start: bool = True,
              load_solution: bool = True) -> SolveResult:
        """Solve ``model`` with Ipopt.

        Parameters
        ----------
        model : ConcreteModel or CompiledNLP
            The NLP: its active Constraints and one Objective.
        objective : Objective component, optional
            The Objective to optimise (active or not); None (default) means the unique active one.
        warm_start : bool
            Start from the Vars' current values (always) and, when this solver has the multipliers
            of an earlier solve of the same compiled NLP and ``options.warm_start_init_point``,
            from those multipliers with Ipopt's ``warm_start_init_point=yes``. Default True.
        load_solution : bool
            Write ``x`` into the (unfixed) Vars and the duals into a ``dual`` Suffix when the model
            has one -- only when ``ok`` unless ``options.load_on_failure``. Default True.
        """
        t0 = time.perf_counter()
        cyipopt = _cyipopt()
        nlp = model if isinstance(model, CompiledNLP) else self.compiled(model)
        w, sign = nlp.objective_weights(objective)
        p = nlp.param_values()
        x0, lb, ub = nlp.variable_state()
        cl, cu = nlp.constraint_bounds(p)

        warm = self._warm.get(nlp) if (warm_start and self.options.warm_start_init_point) else None
        cb = _Callbacks(nlp, p, w)
        problem = cyipopt.Problem(n=nlp.n, m=nlp.m, problem_obj=cb, lb=lb, ub=ub, cl=cl, cu=cu)
        for key, val in self.options.ipopt_options(warm=warm is not None).items():
            try:
                problem.add_option(key, val)
            except TypeError as err:
                raise InputError(f"extra.{key}" if key in self.options.extra else key,
                                 f"Ipopt rejected the value {val!r} ({err})") from None
        t_ipopt = time.perf_counter()
        if warm is not None:
            x, info = problem.solve(x0, lagrange=warm.lam, zl=warm.zl, zu=warm.zu)
        else:
            x, info = problem.solve(x0)
        t_ipopt = time.perf_counter() - t_ipopt
        code = int(info["status"])
        status = SolverStatus.from_ipopt(code)
        if status is SolverStatus.INVALID_OPTION:
            raise InputError("extra", f"Ipopt rejected an option: {_text(info['status_msg'])}")
        x = np.array(x, dtype=float)
        lam = np.array(info["mult_g"], dtype=float)
        zl = np.array(info["mult_x_L"], dtype=float)
        zu = np.array(info["mult_x_U"], dtype=float)
        if status.ok:
            self._warm[nlp] = _Warm(x, lam, zl, zu)

        duals = dict(zip(nlp.constraints, (-sign * lam).tolist()))
        loaded = load_solution and (status.ok or self.options.load_on_failure)
        if loaded:
            _load(nlp, x, duals)
        return SolveResult(
            status=status, ipopt_status=code, message=_text(info["status_msg"]),
            iterations=int(cb.iterations), seconds=time.perf_counter() - t0,
            # evaluated at x, not Ipopt's obj_val, so that it matches the loaded point exactly
            objective=float(sign * nlp.objective(x, p, w)), x=x, constraint_multipliers=lam,
            bound_multipliers_lower=zl, bound_multipliers_upper=zu, ipopt_seconds=t_ipopt,
            eval_seconds=cb.eval_seconds, duals=duals, loaded=loaded,
        )


def _text(msg) -> str:
    return msg.decode() if isinstance(msg, bytes) else str(msg)


def _load(nlp: CompiledNLP, x: np.ndarray, duals: dict) -> None:
    for v, val in zip(nlp.variables, x.tolist()):
        if not v.fixed:
            v.set_value(val, skip_validation=True)
    suffixes = _dual_suffixes(nlp)
    for suffix in suffixes:
        for con, d in duals.items():
            suffix[con] = d


def _dual_suffixes(nlp: CompiledNLP) -> list:
    from pyomo.core.base.suffix import Suffix

    model = nlp.model()
    sfx = model.component("dual") if model is not None else None
    return [sfx] if isinstance(sfx, Suffix) and sfx.import_enabled() else []
