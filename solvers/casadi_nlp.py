"""Compile a smooth Pyomo NLP into CasADi functions with exact sparse derivatives.

Every active Constraint body and every Objective (active or not) is converted once into a CasADi
SX graph in the symbols ``x`` (all Vars the model uses, fixed ones included) and ``p`` (all mutable
Params). From those graphs CasADi builds, by algorithmic differentiation (Andersson et al., "CasADi",
Math. Prog. Comp. 11, 2019), the functions Ipopt needs:

    f(x, p, w) = w^T F(x, p),  grad_x f,  g(x, p),  J = dg/dx (sparse),
    H = tril(d^2/dx^2 [w^T F(x, p) + lambda^T g(x, p)])   (sparse, lower triangle),

where ``F`` stacks the objectives and ``w`` selects one (and carries the sense and Ipopt's
``obj_factor``). Values that may change between solves -- fixed flags, Var values and bounds, Param
values, the objective chosen -- are inputs, so none of them forces a recompilation.

The conversion runs in two phases because one CasADi operation called from Python costs ~30 us
whatever its size (argument dispatch in the bindings), against ~0.5 us per element of a vector
operation: (1) a Pyomo walker records every node on a flat tape (pure Python, a few us per node);
(2) the tape is replayed level by level (a node's level = 1 + its deepest child's), one vectorised
CasADi call per operation kind and level, n-ary sums as one sparse matrix product. The cost then
grows with the number of nodes times ~1 us plus the depth times ~30 us per kind.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import casadi as ca
import numpy as np
import scipy.sparse as sp
from pyomo.core.base.constraint import Constraint
from pyomo.core.base.objective import Objective, minimize
from pyomo.core.expr import numeric_expr as ne
from pyomo.core.expr.numvalue import native_numeric_types, value as pyo_value
from pyomo.core.expr.visitor import StreamBasedExpressionVisitor

from models.errors import InputError

__all__ = ["CompiledNLP", "UnsupportedExpressionError", "compile_nlp"]


class UnsupportedExpressionError(InputError):
    """A model component uses an expression node the smooth NLP bridge cannot differentiate."""


class _Unsupported(Exception):
    """Raised inside the walker; re-raised with the component's name by :func:`compile_nlp`."""


_UNARY: dict[str, Callable[[Any], Any]] = {
    "log": ca.log, "log10": ca.log10, "exp": ca.exp, "sqrt": ca.sqrt,
    "sin": ca.sin, "cos": ca.cos, "tan": ca.tan, "asin": ca.asin, "acos": ca.acos, "atan": ca.atan,
    "sinh": ca.sinh, "cosh": ca.cosh, "tanh": ca.tanh,
    "asinh": ca.asinh, "acosh": ca.acosh, "atanh": ca.atanh,
    "abs": ca.fabs,
}

# tape operation kinds
_VAR, _PAR, _CONST, _SUM, _MUL, _DIV, _POW, _CONSTPOW, _NEG, _FN = range(10)
_BINARY = {_MUL: lambda a, b: a * b, _DIV: lambda a, b: a / b,
           # a Param/constant exponent uses constpow: its derivative has no log(base) term, so a
           # negative base with an integer exponent stays finite
           _POW: ca.power, _CONSTPOW: ca.constpow}


def _refuse(reason: str):
    def kind(node):
        raise _Unsupported(reason)
    kind.refuses = True  # checked before descending, so the error names this node, not a child
    return kind


def _unary_kind(node):
    name = node.getname()
    if name not in _UNARY:
        raise _Unsupported(f"function {name}() is not smooth or not supported")
    return _FN


# Rules are looked up along the node class's MRO, so the NPV_* and Linear/Monomial variants reuse
# their base class's rule; the non-smooth nodes are listed so they are refused by name.
_RULES: dict[type, Callable[[Any], int]] = {
    ne.SumExpression: lambda node: _SUM,
    ne.ProductExpression: lambda node: _MUL,
    ne.MonomialTermExpression: lambda node: _MUL,
    ne.DivisionExpression: lambda node: _DIV,
    ne.PowExpression: lambda node: _POW,
    ne.NegationExpression: lambda node: _NEG,
    ne.UnaryFunctionExpression: _unary_kind,
    ne.AbsExpression: _unary_kind,
    ne.Expr_ifExpression: _refuse("Expr_if is not smooth"),
    ne.MaxExpression: _refuse("max() is not smooth"),
    ne.MinExpression: _refuse("min() is not smooth"),
    ne.ExternalFunctionExpression: _refuse("external functions have no symbolic derivatives"),
}
_DISPATCH: dict[type, Callable[[Any], int]] = {}


def _rule_for(cls: type) -> Callable[[Any], int]:
    rule = _DISPATCH.get(cls)
    if rule is None:
        for base in cls.__mro__:
            if base in _RULES:
                rule = _RULES[base]
                break
        else:
            rule = _refuse(f"expression node {cls.__name__} is not supported")
        _DISPATCH[cls] = rule
    return rule


class ExpressionTape(StreamBasedExpressionVisitor):
    """Phase 1: Pyomo expressions -> a flat tape of integer node ids; named Expressions recorded once."""

    def __init__(self) -> None:
        super().__init__()
        self.kind: list[int] = []
        self.args: list = []  # leaf index / constant value, or tuple of child ids
        self.level: list[int] = []
        self.has_x: list[bool] = []
        self.fn: dict[int, str] = {}
        self.var_ids: dict[int, int] = {}
        self.variables: list = []
        self.param_ids: dict[int, int] = {}
        self.params: list = []
        self.consts: dict[float, int] = {}
        self.named: dict[int, int] = {}
        self.named_components: list = []

    def _push(self, kind: int, args, level: int, has_x: bool) -> int:
        self.kind.append(kind)
        self.args.append(args)
        self.level.append(level)
        self.has_x.append(has_x)
        return len(self.kind) - 1

    def constant(self, val: float) -> int:
        node = self.consts.get(val)
        if node is None:
            node = self.consts[val] = self._push(_CONST, val, 0, False)
        return node

    def _leaf(self, child) -> int:
        if child.is_variable_type():
            node = self.var_ids.get(id(child))
            if node is None:
                if not child.is_continuous():
                    raise _Unsupported(f"Var {child.name} is not continuous (domain {child.domain})")
                node = self.var_ids[id(child)] = self._push(_VAR, len(self.variables), 0, True)
                self.variables.append(child)
            return node
        if child.is_parameter_type():
            node = self.param_ids.get(id(child))
            if node is None:
                node = self.param_ids[id(child)] = self._push(_PAR, len(self.params), 0, False)
                self.params.append(child)
            return node
        return self.constant(float(pyo_value(child)))

    def beforeChild(self, node, child, child_idx):
        if type(child) in native_numeric_types:
            return False, self.constant(float(child))
        if not child.is_expression_type():
            return False, self._leaf(child)
        if child.is_named_expression_type():
            cached = self.named.get(id(child))
            if cached is not None:
                return False, cached
        elif getattr(_rule_for(type(child)), "refuses", False):
            _rule_for(type(child))(child)
        return True, None

    def initializeWalker(self, expr):
        descend, result = self.beforeChild(None, expr, 0)
        return (True, expr) if descend else (False, result)

    def exitNode(self, node, data):
        if node.is_named_expression_type():
            self.named[id(node)] = data[0]
            self.named_components.append((node, node.expr))
            return data[0]
        kind = _rule_for(type(node))(node)
        level = 1 + max(self.level[c] for c in data)
        has_x = any(self.has_x[c] for c in data)
        if kind == _POW and not self.has_x[data[1]]:
            kind = _CONSTPOW
        out = self._push(kind, tuple(data), level, has_x)
        if kind == _FN:
            self.fn[out] = node.getname()
        return out

    def record(self, expr, component) -> int:
        try:
            return self.walk_expression(expr)
        except _Unsupported as err:
            raise UnsupportedExpressionError(component.name, str(err)) from None

    def replay(self) -> tuple[ca.SX, ca.SX, Callable[[Sequence[int]], ca.SX]]:
        """Phase 2: build every node in CasADi, level by level; returns ``(x, p, select)`` where
        ``select(node_ids)`` is the SX column of those nodes."""
        kind = np.asarray(self.kind, dtype=np.int64)
        level = np.asarray(self.level, dtype=np.int64)
        x = ca.SX.sym("x", len(self.variables))
        p = ca.SX.sym("p", len(self.params))
        pos = np.full(len(kind), -1, dtype=np.int64)
        var_nodes = np.flatnonzero(kind == _VAR)
        par_nodes = np.flatnonzero(kind == _PAR)
        const_nodes = np.flatnonzero(kind == _CONST)
        args = self.args
        pos[var_nodes] = [args[i] for i in var_nodes]
        pos[par_nodes] = len(self.variables) + np.asarray([args[i] for i in par_nodes], dtype=np.int64)
        pos[const_nodes] = len(self.variables) + len(self.params) + np.arange(len(const_nodes))
        consts = ca.SX(ca.DM([args[i] for i in const_nodes])) if len(const_nodes) else ca.SX(0, 1)
        pieces = [x, p, consts]
        size = int(sum(v.numel() for v in pieces))
        every = ca.vertcat(*pieces)
        by_level = np.argsort(level, kind="stable")
        bounds = np.searchsorted(level[by_level], np.arange(1, int(level.max(initial=0)) + 2))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            nodes = by_level[lo:hi]
            done, outs = [], []
            kinds = kind[nodes]
            for k in np.unique(kinds):
                group = nodes[kinds == k]
                if k == _SUM:
                    rows = np.repeat(np.arange(len(group)), [len(args[i]) for i in group])
                    cols = pos[np.concatenate([np.asarray(args[i], dtype=np.int64) for i in group])]
                    # duplicates (x + x) are summed into one coefficient by scipy
                    mat = sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(group), size))
                    coeffs = ca.DM(ca.Sparsity(len(group), size, mat.indptr.tolist(), mat.indices.tolist()),
                                   mat.data.tolist())
                    outs.append(ca.mtimes(coeffs, every))
                    done.append(group)
                elif k in _BINARY:
                    a = every[pos[[args[i][0] for i in group]].tolist()]
                    b = every[pos[[args[i][1] for i in group]].tolist()]
                    outs.append(_BINARY[k](a, b))
                    done.append(group)
                elif k == _NEG:
                    outs.append(-every[pos[[args[i][0] for i in group]].tolist()])
                    done.append(group)
                else:  # _FN, one call per function name
                    names = np.asarray([self.fn[i] for i in group])
                    for name in np.unique(names):
                        sub = group[names == name]
                        outs.append(_UNARY[name](every[pos[[args[i][0] for i in sub]].tolist()]))
                        done.append(sub)
            for group in done:
                pos[group] = size + np.arange(len(group))
                size += len(group)
            every = ca.vertcat(every, *outs)

        def select(node_ids: Sequence[int]) -> ca.SX:
            if len(node_ids) == 0:
                return ca.SX(0, 1)
            return every[pos[np.asarray(node_ids, dtype=np.int64)].tolist()]

        return x, p, select


def param_values(params: Sequence) -> np.ndarray:
    """Values of mutable Params as floats; InputError naming a Param without a numeric value
    (``np.array([None], dtype=float)`` gives NaN rather than failing, so it is checked)."""
    out = np.array([q.value for q in params], dtype=float)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise InputError(params[int(bad[0])].name, f"mutable Param has no finite value ({out[bad[0]]})")
    return out


class BufferEvaluator:
    """A CasADi Function evaluated through its zero-copy buffer into preallocated numpy arrays."""

    def __init__(self, fn: ca.Function) -> None:
        self._fn = fn
        self._buf, self._eval = fn.buffer()
        self._outs = [np.zeros(fn.nnz_out(i)) for i in range(fn.n_out())]
        for i, out in enumerate(self._outs):
            self._buf.set_res(i, memoryview(out))
        self._ins: list = [None] * fn.n_in()

    def __call__(self, *args: np.ndarray) -> list[np.ndarray]:
        for i, arg in enumerate(args):
            arr = np.ascontiguousarray(arg, dtype=float)
            self._ins[i] = arr  # keep alive while the buffer points at it
            self._buf.set_arg(i, memoryview(arr))
        self._eval()
        return self._outs


@dataclass(frozen=True)
class _Fingerprint:
    constraints: tuple
    constraint_exprs: tuple
    objectives: tuple
    objective_exprs: tuple
    named: tuple


def _constraint_data(model) -> list:
    return list(model.component_data_objects(Constraint, active=True, descend_into=True))


def _objective_data(model) -> list:
    return list(model.component_data_objects(Objective, active=None, descend_into=True))


class CompiledNLP:
    """A Pyomo model compiled to CasADi functions; build it with :func:`compile_nlp`.

    Attributes
    ----------
    variables : tuple of VarData
        The Vars of ``x``, in order (every Var used by an active Constraint or any Objective).
    constraints : tuple of ConstraintData
        The active Constraints, rows of ``g``.
    objectives : tuple of ObjectiveData
        Every Objective of the model, active or not, rows of ``F``.
    params : tuple of ParamData
        The mutable Params, entries of ``p``.
    jac_rows, jac_cols, hess_rows, hess_cols : np.ndarray
        Sparsity of the constraint Jacobian and of the lower triangle of the Lagrangian Hessian.
    compile_seconds : float
        Wall time of the compilation (``tape_seconds`` of it walking Pyomo, ``replay_seconds``
        up to the end of building the SX graph; the rest is CasADi's differentiation).
    n_nodes : int
        Nodes on the tape (leaves included, named Expressions counted once).
    model : weakref.ref
        The compiled model (``nlp.model()``; None once it is garbage-collected).

    All evaluation methods return arrays owned by the CompiledNLP, overwritten at the next call of
    the same method: copy them to keep them.
    """

    def __init__(self, model, tape: ExpressionTape, cons: list, objs: list, g_body: list, g_lo: list,
                 g_up: list, f_rows: list, fingerprint: _Fingerprint, t0: float) -> None:
        self.model_name = model.name
        self.model = weakref.ref(model)
        self.variables = tuple(tape.variables)
        self.constraints = tuple(cons)
        self.objectives = tuple(objs)
        self.params = tuple(tape.params)
        self._fingerprint = fingerprint
        self._objective_index = {id(o): k for k, o in enumerate(objs)}
        self.n, self.m, self.n_objectives = len(self.variables), len(cons), len(objs)

        x, p, select = tape.replay()
        self.replay_seconds = time.perf_counter() - t0
        w = ca.SX.sym("w", self.n_objectives)
        lam = ca.SX.sym("lambda", self.m)
        F = select(f_rows)
        g = select(g_body)
        f = ca.dot(w, F) if self.n_objectives else ca.SX(0)
        jac = ca.jacobian(g, x)
        hess = ca.tril(ca.hessian(f + ca.dot(lam, g), x)[0])
        self.jac_rows, self.jac_cols = (np.asarray(v, dtype=np.int64) for v in jac.sparsity().get_triplet())
        self.hess_rows, self.hess_cols = (np.asarray(v, dtype=np.int64) for v in hess.sparsity().get_triplet())
        try:
            bounds = ca.Function("bounds", [p], [select(g_lo), select(g_up)])
        except RuntimeError as err:
            raise InputError(f"{model.name} constraint bounds", "a constraint bound depends on a Var; "
                             "write it as body <= 0") from err
        # a sparse output's buffer receives its nonzeros in CasADi's column-major order, the order
        # of get_triplet() above
        self._f = BufferEvaluator(ca.Function("f", [x, p, w], [ca.densify(f)]))
        self._grad = BufferEvaluator(ca.Function("grad_f", [x, p, w], [ca.densify(ca.gradient(f, x))]))
        self._g = BufferEvaluator(ca.Function("g", [x, p], [ca.densify(g)]))
        self._jac = BufferEvaluator(ca.Function("jac_g", [x, p], [jac]))
        self._hess = BufferEvaluator(ca.Function("hess_l", [x, p, w, lam], [hess]))
        self._bounds = BufferEvaluator(bounds)
        self.compile_seconds = time.perf_counter() - t0

    # --- evaluation -----------------------------------------------------------------------------
    def objective(self, x: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
        """``w^T F(x, p)``."""
        return float(self._f(x, p, w)[0][0])

    def gradient(self, x: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``grad_x w^T F(x, p)`` (dense, length n)."""
        return self._grad(x, p, w)[0]

    def constraints_value(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``g(x, p)`` (length m)."""
        return self._g(x, p)[0]

    def jacobian(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Nonzeros of ``dg/dx`` at ``(jac_rows, jac_cols)``."""
        return self._jac(x, p)[0]

    def hessian(self, x: np.ndarray, p: np.ndarray, w: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """Nonzeros of ``tril(d^2/dx^2 [w^T F + lam^T g])`` at ``(hess_rows, hess_cols)``."""
        return self._hess(x, p, w, lam)[0]

    def constraint_bounds(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(g_lower, g_upper)`` with -inf/+inf where a side is absent."""
        lo, up = self._bounds(p)
        return lo.copy(), up.copy()

    # --- reading the model's current state ------------------------------------------------------
    def param_values(self) -> np.ndarray:
        """Current values of the mutable Params, in the order of ``params``."""
        return param_values(self.params)

    def variable_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x0, lb, ub)`` from the Vars: values (None -> 0 projected into the bounds), bounds from
        bounds and domain, and lb = ub = value for fixed Vars."""
        vs = self.variables
        lb = np.array([v.lb for v in vs], dtype=float)  # None -> nan
        ub = np.array([v.ub for v in vs], dtype=float)
        lb[np.isnan(lb)] = -np.inf
        ub[np.isnan(ub)] = np.inf
        x0 = np.array([v.value for v in vs], dtype=float)
        missing = np.isnan(x0)
        if missing.any():
            x0[missing] = np.clip(0.0, lb[missing], ub[missing])
        fixed = np.fromiter((v.fixed for v in vs), dtype=bool, count=len(vs))
        if fixed.any():
            bad = fixed & missing
            if bad.any():
                raise InputError(vs[int(np.flatnonzero(bad)[0])].name, "fixed Var has no value")
            lb[fixed] = ub[fixed] = x0[fixed]
        return x0, lb, ub

    def objective_weights(self, objective=None) -> tuple[np.ndarray, int]:
        """``(w, sign)``: ``w`` selects ``objective`` (None: the unique active one) in the
        minimisation sense, ``sign`` = +1 for minimise, -1 for maximise."""
        w = np.zeros(self.n_objectives)
        if objective is None:
            active = [o for o in self.objectives if o.active]
            if not active:
                if self.n_objectives:
                    raise InputError("objective", f"model {self.model_name} has no active Objective")
                return w, 1  # feasibility problem: the model has no Objective at all
            if len(active) > 1:
                raise InputError("objective", f"model {self.model_name} has {len(active)} active "
                                 "Objectives; pass one")
            objective = active[0]
        k = self._objective_index.get(id(objective))
        if k is None:
            raise InputError("objective", f"{getattr(objective, 'name', objective)!r} is not an "
                             f"Objective of model {self.model_name}")
        sign = 1 if self.objectives[k].sense == minimize else -1
        w[k] = sign
        return w, sign

    def is_current(self, model) -> bool:
        """Whether ``model``'s structure (active Constraints and their expressions, Objectives and
        their expressions, named Expressions) is still the one compiled."""
        fp = self._fingerprint
        cons = _constraint_data(model)
        if len(cons) != len(fp.constraints) or any(a is not b for a, b in zip(cons, fp.constraints)):
            return False
        if any(c.expr is not e for c, e in zip(cons, fp.constraint_exprs)):
            return False
        objs = _objective_data(model)
        if len(objs) != len(fp.objectives) or any(a is not b for a, b in zip(objs, fp.objectives)):
            return False
        if any(o.expr is not e for o, e in zip(objs, fp.objective_exprs)):
            return False
        return all(node.expr is e for node, e in fp.named)


def compile_nlp(model) -> CompiledNLP:
    """Compile ``model`` (all active Constraints, all Objectives) into a :class:`CompiledNLP`.

    Raises
    ------
    UnsupportedExpressionError
        (an InputError) naming the component that holds a non-smooth or unknown expression node.
    InputError
        When a constraint bound depends on a Var, or the model has no Var.
    """
    t0 = time.perf_counter()
    tape = ExpressionTape()
    cons = _constraint_data(model)
    objs = _objective_data(model)
    g_body, g_lo, g_up = [], [], []
    minus_inf, plus_inf = tape.constant(-np.inf), tape.constant(np.inf)
    for con in cons:
        g_body.append(tape.record(con.body, con))
        lo, up = con.lower, con.upper
        g_lo.append(minus_inf if lo is None else tape.record(lo, con))
        g_up.append(plus_inf if up is None else tape.record(up, con))
    f_rows = [tape.record(o.expr, o) for o in objs]
    if not tape.variables:
        raise InputError(model.name, "the model has no Var in its active Constraints or Objectives")
    fingerprint = _Fingerprint(
        constraints=tuple(cons), constraint_exprs=tuple(c.expr for c in cons),
        objectives=tuple(objs), objective_exprs=tuple(o.expr for o in objs),
        named=tuple(tape.named_components),
    )
    tape_seconds = time.perf_counter() - t0
    nlp = CompiledNLP(model, tape, cons, objs, g_body, g_lo, g_up, f_rows, fingerprint, t0)
    nlp.tape_seconds, nlp.n_nodes = tape_seconds, len(tape.kind)
    return nlp
