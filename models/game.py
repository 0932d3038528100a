"""The MetaTrading game as Pyomo blocks (docs/model.md sections 3-5).

``model.msp[m]`` are the leaders (MSPs): Var ``R`` in ``[0, Rmax_m]``, objective
``max V_m = lambda_m ln(1 + total_m) - payment_m``. ``model.mu[n]`` are the
followers (MUs): Vars ``f[m] >= 0`` in GHz, constraint ``budget``
(``sum_m f_nm <= F_n``), local Expressions ``iom[m]``, objective
``max U_n = sum_m pay_nm - sum_m e_nm f_nm^2``. ``model.total[m] = sum_n IoM_nm``
is a model-level named Expression: the shared aggregate that :func:`epec.kkt`
lifts so each follower's stationarity rows stay sparse.

Every formula comes from :mod:`models.iom` / :mod:`models.utility` (or a
replacement passed in), so the Pyomo model, the numpy utilities and the FL
clock share one definition. With f in GHz, decisions are O(1) and utilities
O(1-100), which keeps Ipopt well scaled.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .errors import InputError
from .iom import freshness_coefficients, iom, quality
from .scenario import Scenario, clip_rewards
from .utility import energy_cost, energy_cost_coefficient, msp_payment, msp_value, payment

__all__ = ["build_game", "update_game", "same_structure", "ParamPlan", "rewards", "allocations", "set_rewards",
           "set_allocations", "AllocationIndex"]


def build_game(
    scenario: Scenario,
    *,
    iom_fn: Callable[..., Any] = iom,
    payment_fn: Callable[..., Any] = payment,
    msp_payment_fn: Callable[..., Any] = msp_payment,
    cost_fn: Callable[..., Any] = energy_cost,
    value_fn: Callable[..., Any] = msp_value,
    R0: Any = None,
    f0: Any = None,
    parametric: bool = False,
) -> Any:
    """Build the MetaTrading game of ``scenario`` as a ``pyo.ConcreteModel``.

    ``V_m = value_fn(lambda_m, total_m) - msp_payment_fn(R_m, total_m)``,
    ``U_n = sum_m payment_fn(R_m, IoM_nm, total_m) - sum_m cost_fn(e_nm, f_nm)``,
    ``IoM_nm = iom_fn(f_nm, Q_nm, alpha_nm, beta_nm)``, ``total_m = sum_n IoM_nm``
    (docs/model.md sections 3-4; arXiv 2410.19665).

    Parameters
    ----------
    scenario : Scenario
    iom_fn, payment_fn, msp_payment_fn, cost_fn, value_fn : callables
        The formulas, with the signatures of :func:`models.iom.iom`, :func:`models.utility.payment`,
        :func:`models.utility.msp_payment`, :func:`models.utility.energy_cost`,
        :func:`models.utility.msp_value` (``log=pyo.log`` is passed to ``value_fn``).
        Defaults: the docs/model.md formulas.
    R0 : array (M,), optional
        Initial rewards. Default ``Rmax / 2``.
    f0 : array (N, M), optional
        Initial allocation in GHz. Default each budget split evenly.
    parametric : bool, default False
        Hold the scenario's numbers in mutable Params (``model.Q``, ``alpha``, ``beta``, ``e``,
        ``lam``, ``F``, ``eps0``; the reward caps are the bounds of ``R``) instead of constants,
        so one model, and everything compiled from it, serves every scenario of the same
        structure (:func:`same_structure`): :func:`update_game` moves it to another one (a sweep's
        next point). The same game, value for value.

    Returns
    -------
    pyo.ConcreteModel
        Sets ``MSP`` = 0..M-1 and ``MU`` = 0..N-1; blocks ``msp[m]`` and ``mu[n]``; Expression
        ``total[m]``. A pair without data (``D_nm = 0``) has ``f[m]`` fixed at 0 and IoM 0; an MU
        without data for any MSP sits out: its block ``mu[n]`` is deactivated (no player).
        With the default ``iom_fn``, ``payment_fn`` and ``cost_fn``, every ``mu[n]`` is declared
        a convex program ("concave (docs/model.md §4)", :func:`epec.convexity.declare_convex_program`'s
        attribute ``epec_convex_program``): the certificate names that method for the MUs.
    """
    import pyomo.environ as pyo

    sc = scenario
    n_mu, n_msp = sc.n_mu, sc.n_msp
    has_data = sc.D > 0
    R0, f0 = _start_profile(sc, R0, f0)

    model = pyo.ConcreteModel(name=f"metatrading[{sc.name}]")
    model.MSP = pyo.Set(initialize=range(n_msp), ordered=True)
    model.MU = pyo.Set(initialize=range(n_mu), ordered=True)
    coef = _Coefficients.of(model, sc, parametric)
    # Followers first: their IoM expressions feed the shared totals.
    _add_followers(model, sc, f0, has_data, coef.F, lambda n, m, f: iom_fn(f, coef.Q(n, m), coef.alpha(n, m),
                                                                           coef.beta(n, m)))
    model.total = pyo.Expression(model.MSP, rule=lambda _m, m: sum(model.mu[n].iom[m] for n in model.MU))
    model.msp = pyo.Block(model.MSP)
    for m in model.MSP:
        b = model.msp[m]
        b.R = pyo.Var(bounds=(0.0, float(sc.Rmax[m])), initialize=float(R0[m]))
        b.utility = pyo.Objective(
            expr=value_fn(coef.lam(m), model.total[m], log=pyo.log)
            - msp_payment_fn(sc.mechanism, b.R, model.total[m], coef.eps0),
            sense=pyo.maximize,
        )
    convex = iom_fn is iom and payment_fn is payment and cost_fn is energy_cost
    _add_follower_objectives(model, sc, coef, has_data, payment_fn, cost_fn, convex)
    if parametric:
        model.metatrading_structure = _structure(sc)
    return model


def _structure(sc: Scenario) -> tuple:
    """What a parametric game's structure depends on: the sizes, the pairs with data, the
    mechanism."""
    return (sc.n_mu, sc.n_msp, sc.mechanism, tuple(map(bool, (sc.D > 0).ravel())))


def same_structure(model: Any, scenario: Scenario) -> bool:
    """``model`` is a parametric game (``build_game(parametric=True)``) that
    :func:`update_game` can move to ``scenario``: the same sizes, pairs with data and mechanism."""
    return getattr(model, "metatrading_structure", None) == _structure(scenario)


def update_game(model: Any, scenario: Scenario, R0: Any = None, f0: Any = None) -> None:
    """Move a parametric game (``build_game(parametric=True)``) to ``scenario``: its Params and
    reward caps set from it, and its Vars to the start ``R0`` / ``f0`` (defaults as
    :func:`build_game`). ``InputError`` naming ``scenario`` when the structure differs
    (:func:`same_structure`: build a new game then)."""
    sc = scenario
    if getattr(model, "metatrading_structure", None) is None:
        raise InputError("model", "not a parametric game (build it with build_game(..., parametric=True))")
    if not same_structure(model, sc):
        raise InputError("scenario", "its sizes, pairs with data or mechanism differ from the game's")
    R0, f0 = _start_profile(sc, R0, f0)  # checked before anything is written
    values = _param_values(sc)
    for name, idx, q in _param_data(model):
        new = float(values[name] if idx is None else values[name][idx])
        if q.value != new:  # a sweep moves a few of them: the rest are not written again
            q.set_value(new)
    for m in model.MSP:
        model.msp[m].R.setub(float(sc.Rmax[m]))
    set_rewards(model, R0)
    set_allocations(model, f0)


def _start_profile(sc: Scenario, R0: Any, f0: Any) -> tuple[np.ndarray, np.ndarray]:
    """The start ``(R0, f0)`` of a game of ``sc``: defaults ``Rmax / 2`` and even splits, shapes
    checked (``InputError`` naming ``R0`` / ``f0``), rewards clipped to their boxes, pairs
    without data at 0."""
    R0 = sc.Rmax / 2.0 if R0 is None else np.asarray(R0, dtype=float)
    f0 = np.repeat(sc.F[:, None] / sc.n_msp, sc.n_msp, axis=1) if f0 is None else np.asarray(f0, dtype=float)
    if R0.shape != (sc.n_msp,):
        raise InputError("R0", f"expected shape ({sc.n_msp},), got {R0.shape}")
    if f0.shape != (sc.n_mu, sc.n_msp):
        raise InputError("f0", f"expected shape ({sc.n_mu}, {sc.n_msp}), got {f0.shape}")
    return clip_rewards(R0, sc.Rmax), np.where(sc.D > 0, f0, 0.0)


#: the pair Params of a parametric game, over ``model.PAIRS``
_PAIR_PARAMS = ("Q", "alpha", "beta", "e")


def _param_values(sc: Scenario) -> dict[str, Any]:
    """The numbers of ``sc`` a parametric game holds as Params, by the Params' names."""
    alpha, beta = freshness_coefficients(sc)
    return {"Q": quality(sc), "alpha": alpha, "beta": beta, "e": energy_cost_coefficient(sc),
            "F": np.asarray(sc.F, dtype=float), "lam": np.asarray(sc.lam, dtype=float), "eps0": float(sc.eps0)}


def _param_data(model: Any) -> list:
    """Every Param of a parametric game as ``(name, index, ParamData)``, looked up once per model."""
    cached = getattr(model, "metatrading_param_data", None)
    if cached is None:
        cached = [(name, (n, m), getattr(model, name)[n, m]) for name in _PAIR_PARAMS for (n, m) in getattr(model, name)]
        cached += [("F", n, model.F[n]) for n in model.MU] + [("lam", m, model.lam[m]) for m in model.MSP]
        cached.append(("eps0", None, model.eps0))
        model.metatrading_param_data = cached
    return cached


class ParamPlan:
    """Where each of some Params of a parametric game (``build_game(parametric=True)``; e.g. a
    compiled system's ``params``, in its order) takes its value from a scenario:
    :meth:`values` gives the vector :func:`update_game` would set, without writing the model
    (a sweep's followers moved to ``theta -+ h`` need only the numbers). ``InputError`` naming
    ``params`` for a Param that is not one of the game's."""

    def __init__(self, params: Any) -> None:
        groups: dict[str, tuple[list[int], list]] = {}
        for k, q in enumerate(params):
            name = q.parent_component().local_name
            if name not in _PAIR_PARAMS + ("F", "lam", "eps0"):
                raise InputError("params", f"{q.name} is not a Param of a parametric MetaTrading game")
            pos, idx = groups.setdefault(name, ([], []))
            pos.append(k)
            idx.append(q.index())
        self.size = len(params)
        self.groups = {name: (np.array(pos, dtype=np.int64), idx) for name, (pos, idx) in groups.items()}

    def values(self, scenario: Scenario) -> np.ndarray:
        """The Params' values at ``scenario`` (the game's structure: :func:`same_structure`)."""
        vals, out = _param_values(scenario), np.empty(self.size)
        for name, (pos, idx) in self.groups.items():
            v = np.asarray(vals[name], dtype=float)
            if v.ndim == 0:
                out[pos] = float(v)
            elif v.ndim == 1:
                out[pos] = v[np.asarray(idx, dtype=np.int64)]
            else:
                rows, cols = np.asarray(idx, dtype=np.int64).T
                out[pos] = v[rows, cols]
        return out


class _Coefficients:
    """The scenario's numbers as the game's expressions see them: floats, or the model's mutable
    Params (``parametric``)."""

    def __init__(self, values: dict[str, Any], params: Any) -> None:
        self._values, self._params = values, params

    @classmethod
    def of(cls, model: Any, sc: Scenario, parametric: bool) -> _Coefficients:
        values = _param_values(sc)
        if not parametric:
            return cls(values, None)
        import pyomo.environ as pyo

        pairs = [(n, m) for n in range(sc.n_mu) for m in range(sc.n_msp) if sc.D[n, m] > 0]
        model.PAIRS = pyo.Set(initialize=pairs, dimen=2, ordered=True)
        for name in ("Q", "alpha", "beta", "e"):
            arr = values[name]
            model.add_component(name, pyo.Param(model.PAIRS, mutable=True,
                                                initialize={p: float(arr[p]) for p in pairs}))
        model.F = pyo.Param(model.MU, mutable=True, initialize=lambda _m, n: float(sc.F[n]))
        model.lam = pyo.Param(model.MSP, mutable=True, initialize=lambda _m, m: float(sc.lam[m]))
        model.eps0 = pyo.Param(mutable=True, initialize=float(sc.eps0))
        return cls(values, model)

    def _pair(self, name: str, n: int, m: int) -> Any:
        return getattr(self._params, name)[n, m] if self._params is not None else float(self._values[name][n, m])

    def Q(self, n: int, m: int) -> Any:
        return self._pair("Q", n, m)

    def alpha(self, n: int, m: int) -> Any:
        return self._pair("alpha", n, m)

    def beta(self, n: int, m: int) -> Any:
        return self._pair("beta", n, m)

    def e(self, n: int, m: int) -> Any:
        return self._pair("e", n, m)

    def lam(self, m: int) -> Any:
        return self._params.lam[m] if self._params is not None else float(self._values["lam"][m])

    def F(self, n: int) -> Any:
        return self._params.F[n] if self._params is not None else float(self._values["F"][n])

    @property
    def eps0(self) -> Any:
        return self._params.eps0 if self._params is not None else self._values["eps0"]


def _add_followers(model: Any, sc: Scenario, f0: np.ndarray, has_data: np.ndarray, budget: Callable[[int], Any],
                   iom_of: Callable[[int, int, Any], Any]) -> None:
    """The MUs' blocks ``mu[n]``: allocations ``f[m]`` (fixed at 0 without data), IoM
    expressions and the CPU budget; an MU without any data is deactivated (it sits out)."""
    import pyomo.environ as pyo

    model.mu = pyo.Block(model.MU)
    for n in model.MU:
        b = model.mu[n]
        b.f = pyo.Var(model.MSP, domain=pyo.NonNegativeReals, initialize=lambda _b, m, n=n: float(f0[n, m]))
        for m in model.MSP:
            if not has_data[n, m]:
                b.f[m].fix(0.0)
        b.iom = pyo.Expression(model.MSP, rule=lambda _b, m, n=n: iom_of(n, m, _b.f[m]) if has_data[n, m] else 0.0)
        b.budget = pyo.Constraint(expr=sum(b.f[m] for m in model.MSP) <= budget(n))
        if not has_data[n].any():  # nothing to sell: the MU sits out (f = 0), no player at all
            b.deactivate()


def _add_follower_objectives(model: Any, sc: Scenario, coef: _Coefficients, has_data: np.ndarray,
                             payment_fn: Callable[..., Any], cost_fn: Callable[..., Any], convex: bool) -> None:
    """Each MU's utility (payments minus energy costs), declared a convex program when the
    formulas are the model's own (``convex``)."""
    import pyomo.environ as pyo

    for n in model.MU:
        b = model.mu[n]
        b.utility = pyo.Objective(
            expr=sum(
                payment_fn(sc.mechanism, model.msp[m].R, b.iom[m], model.total[m], coef.eps0)
                - cost_fn(coef.e(n, m), b.f[m])
                for m in model.MSP
                if has_data[n, m]
            ),
            sense=pyo.maximize,
        )
        if convex:
            # the follower's problem is a convex program (docs/model.md section 4: a concave increasing
            # share of a concave increasing IoM minus a convex cost, maximised over a polytope),
            # which the disciplined-convex rules cannot prove (the share is a quotient of its
            # decisions): declared, in epec.convexity's convention (DECLARED_ATTRIBUTE), so that
            # the certificate takes its KKT point as its best reply. Not for custom formulas.
            setattr(b, "epec_convex_program", "concave (docs/model.md §4)")


def rewards(model: Any) -> np.ndarray:
    """The leaders' rewards ``R`` (M,) currently held by ``model``."""
    return np.array([float(model.msp[m].R.value) for m in model.MSP])


def _allocation_vars(model: Any) -> list:
    """Every ``mu[n].f[m]`` as ``(n, m, var)``, looked up once per model (a sweep's parametric
    game is moved at every point, and Pyomo's indexing was most of that move's time)."""
    cached = getattr(model, "metatrading_allocation_vars", None)
    if cached is None:
        cached = [(n, m, model.mu[n].f[m]) for n in model.MU for m in model.MSP]
        model.metatrading_allocation_vars = cached
    return cached


def allocations(model: Any) -> np.ndarray:
    """The followers' allocation ``f`` (N, M) in GHz currently held by ``model``."""
    out = np.empty((len(model.MU), len(model.MSP)))
    for n, m, v in _allocation_vars(model):
        out[n, m] = float(v.value)
    return out


class AllocationIndex:
    """Where each ``mu[n].f[m]`` of ``model`` sits in a vector of Vars (a compiled system's
    unknowns), so that an allocation moves between the two without the model's Vars: the pairs
    found are read from and written to the vector, the others (fixed: no data) keep their value."""

    def __init__(self, model: Any, variables: Sequence[Any]) -> None:
        where = {id(v): k for k, v in enumerate(variables)}
        found = [(n, m, where[id(v)]) for n, m, v in _allocation_vars(model) if id(v) in where]
        self.n, self.m, self.k = (np.array([t[i] for t in found], dtype=np.int64) for i in range(3))
        self.fixed = np.zeros((len(model.MU), len(model.MSP)))
        for n, m, v in _allocation_vars(model):
            if id(v) not in where:
                self.fixed[n, m] = float(v.value or 0.0)

    def read(self, z: np.ndarray) -> np.ndarray:
        """The allocation ``f`` (N, M) held by the vector ``z``."""
        f = self.fixed.copy()
        f[self.n, self.m] = z[self.k]
        return f

    def write(self, z: np.ndarray, f: np.ndarray) -> np.ndarray:
        """``z`` with the allocation ``f`` in its places (a copy)."""
        z = np.array(z, dtype=float)
        z[self.k] = np.asarray(f, dtype=float)[self.n, self.m]
        return z


def set_rewards(model: Any, R: Any) -> None:
    """Set (not fix) every ``msp[m].R`` to ``R[m]``."""
    for m in model.MSP:
        model.msp[m].R.set_value(float(R[m]))


def set_allocations(model: Any, f: Any) -> None:
    """Set every free ``mu[n].f[m]`` to ``f[n, m]``."""
    f = np.asarray(f, dtype=float)
    for n, m, v in _allocation_vars(model):
        if not v.fixed:
            v.set_value(float(f[n, m]))
