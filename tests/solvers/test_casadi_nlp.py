"""Pyomo -> CasADi compilation: values match Pyomo, derivatives match finite differences."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from solvers import UnsupportedExpressionError, compile_nlp

from .problems import PROBLEMS


def _smooth_zoo():
    """Every supported node kind: sums, products, division, powers (constant, Param and Var
    exponents), negation, unary functions, abs, a named Expression and mutable Params."""
    m = pyo.ConcreteModel(name="zoo")
    m.I = pyo.RangeSet(0, 3)
    m.x = pyo.Var(m.I, initialize=0.5)
    m.k = pyo.Param(initialize=2.5, mutable=True)
    m.c = pyo.Param(m.I, initialize={0: 1.0, 1: -2.0, 2: 0.5, 3: 3.0}, mutable=True)
    m.e = pyo.Expression(expr=pyo.exp(0.3 * m.x[0]) * m.x[1] + m.c[2] * m.x[3] ** 2)
    x = m.x
    m.obj = pyo.Objective(expr=m.e ** 2 + pyo.log(1 + x[0] ** 2) - pyo.sqrt(2 + x[1] ** 2)
                          + pyo.sin(x[2]) * pyo.cos(x[3]) + x[0] / (2 + x[3] ** 2)
                          + (1.5 + x[2] ** 2) ** m.k + pyo.tanh(x[1] * x[2]) - abs(x[0] + 5.0)
                          + pyo.atan(x[3]) + (2 + x[1] ** 2) ** x[0])
    m.alt = pyo.Objective(expr=sum(m.c[i] * x[i] for i in m.I) - m.e, sense=pyo.maximize)
    m.alt.deactivate()
    m.g1 = pyo.Constraint(expr=m.e + x[2] * x[3] - pyo.exp(-x[0]) <= m.k)
    m.g2 = pyo.Constraint(expr=pyo.inequality(-1, x[0] * x[1] * x[2] - 1 / (3 + x[3] ** 2), m.k))
    m.g3 = pyo.Constraint(expr=-(x[1] ** 3) + pyo.log10(4 + x[2] ** 2) == m.c[0] * x[0])
    m.g4 = pyo.Constraint(expr=pyo.sinh(x[0] / 4) + pyo.cosh(x[1] / 4) - pyo.asinh(x[2]) >= -10)
    return m


def _set(nlp, x):
    for v, val in zip(nlp.variables, x):
        v.set_value(float(val))


def _dense_jac(nlp, x, p):
    jac = np.zeros((nlp.m, nlp.n))
    jac[nlp.jac_rows, nlp.jac_cols] = nlp.jacobian(x, p)
    return jac


def _lagrangian_gradient(nlp, x, p, w, lam):
    return nlp.gradient(x, p, w).copy() + _dense_jac(nlp, x, p).T @ lam


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_match_pyomo(seed):
    # Prepare
    model = _smooth_zoo()
    nlp = compile_nlp(model)
    x = np.random.default_rng(seed).uniform(-1, 1, nlp.n)
    p = nlp.param_values()
    _set(nlp, x)
    # Execute
    f = [nlp.objective(x, p, np.eye(nlp.n_objectives)[k]) for k in range(nlp.n_objectives)]
    g = nlp.constraints_value(x, p).copy()
    # Assert
    assert f == pytest.approx([pyo.value(o.expr) for o in nlp.objectives], rel=1e-12)
    assert g == pytest.approx([pyo.value(c.body) for c in nlp.constraints], rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("which", ["gradient", "jacobian", "hessian"])
def test_derivatives_match_finite_differences(which, seed):
    # Prepare
    model = _smooth_zoo()
    nlp = compile_nlp(model)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, nlp.n)
    p = nlp.param_values()
    w = rng.normal(size=nlp.n_objectives)
    lam = rng.normal(size=nlp.m)
    h = 1e-6
    eye = np.eye(nlp.n)
    # Execute: central differences of the next-lower derivative
    if which == "gradient":
        exact = nlp.gradient(x, p, w).copy()
        approx = np.array([(nlp.objective(x + h * e, p, w) - nlp.objective(x - h * e, p, w)) / (2 * h) for e in eye])
    elif which == "jacobian":
        exact = _dense_jac(nlp, x, p)
        approx = np.column_stack([(nlp.constraints_value(x + h * e, p).copy()
                                   - nlp.constraints_value(x - h * e, p).copy()) / (2 * h) for e in eye])
    else:
        lower = np.zeros((nlp.n, nlp.n))
        lower[nlp.hess_rows, nlp.hess_cols] = nlp.hessian(x, p, w, lam)
        assert np.all(nlp.hess_rows >= nlp.hess_cols)
        exact = np.tril(lower) + np.tril(lower, -1).T
        approx = np.column_stack([(_lagrangian_gradient(nlp, x + h * e, p, w, lam)
                                   - _lagrangian_gradient(nlp, x - h * e, p, w, lam)) / (2 * h) for e in eye])
    # Assert
    assert np.allclose(exact, approx, rtol=1e-6, atol=1e-6)


def test_param_values_enter_without_recompiling():
    # Prepare
    model = _smooth_zoo()
    nlp = compile_nlp(model)
    x = np.full(nlp.n, 0.25)
    _set(nlp, x)
    # Execute
    model.k.value = 1.7
    model.c[2].value = -4.0
    p = nlp.param_values()
    lo, up = nlp.constraint_bounds(p)
    g = nlp.constraints_value(x, p).copy()
    # Assert
    assert g == pytest.approx([pyo.value(c.body) for c in nlp.constraints], rel=1e-12)
    assert up[list(nlp.constraints).index(model.g1)] == pytest.approx(1.7)
    assert lo[list(nlp.constraints).index(model.g1)] == -np.inf


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_sparsity_is_exact(name):
    # Prepare
    model = PROBLEMS[name][0]()[0]
    # Execute
    nlp = compile_nlp(model)
    # Assert: every Jacobian entry is a Var that really occurs in that row
    from pyomo.core.expr.visitor import identify_variables

    index = {id(v): i for i, v in enumerate(nlp.variables)}
    expected = {(r, index[id(v)]) for r, c in enumerate(nlp.constraints) for v in identify_variables(c.body)}
    assert set(zip(nlp.jac_rows.tolist(), nlp.jac_cols.tolist())) == expected


@pytest.mark.parametrize("make_expr, what", [
    (lambda m: pyo.Expr_if(m.x >= 0, m.x, -m.x), "Expr_if"),
    (lambda m: pyo.floor(m.x), "floor"),
    (lambda m: pyo.ceil(m.x) + m.x, "ceil"),
])
def test_non_smooth_node_names_component(make_expr, what):
    # Prepare
    model = pyo.ConcreteModel()
    model.x = pyo.Var()
    model.bad_row = pyo.Constraint(expr=make_expr(model) <= 1)
    model.obj = pyo.Objective(expr=model.x ** 2)
    # Execute / Assert
    with pytest.raises(UnsupportedExpressionError, match=f"bad_row.*{what}"):
        compile_nlp(model)


def test_integer_var_is_refused():
    model = pyo.ConcreteModel()
    model.n = pyo.Var(domain=pyo.Integers)
    model.obj = pyo.Objective(expr=model.n ** 2)
    with pytest.raises(UnsupportedExpressionError, match="not continuous"):
        compile_nlp(model)


def test_deep_named_expression_chain_matches_pyomo():
    # Prepare: e_t = cos(e_{t-1}) + sin(x_t) x_{t-1}, 150 levels deep, each e_t also used by row t
    # (a single reference per level: Pyomo's own value() re-walks shared named Expressions)
    model = pyo.ConcreteModel()
    model.T = pyo.RangeSet(0, 149)
    model.x = pyo.Var(model.T)
    model.e = pyo.Expression(model.T)
    model.e[0] = model.x[0] ** 2
    for t in range(1, 150):
        model.e[t] = pyo.cos(model.e[t - 1]) + pyo.sin(model.x[t]) * model.x[t - 1]
    model.obj = pyo.Objective(expr=model.e[149] ** 2)
    model.rows = pyo.Constraint(model.T, rule=lambda m, t: m.e[t] + m.x[t] >= -3)
    nlp = compile_nlp(model)
    x = np.random.default_rng(3).uniform(-1, 1, nlp.n)
    _set(nlp, x)
    p = nlp.param_values()
    # Execute
    g = nlp.constraints_value(x, p).copy()
    f = nlp.objective(x, p, np.ones(1))
    # Assert
    assert g == pytest.approx([pyo.value(c.body) for c in nlp.constraints], rel=1e-10, abs=1e-12)
    assert f == pytest.approx(pyo.value(model.obj), rel=1e-10)


def test_constant_exponent_of_negative_base_has_finite_derivatives():
    # Prepare: d/dx x^k at x < 0 with k a mutable Param; a generic pow would give log(x) = nan
    model = pyo.ConcreteModel()
    model.k = pyo.Param(initialize=3, mutable=True)
    model.x = pyo.Var()
    model.obj = pyo.Objective(expr=model.x ** model.k)
    nlp = compile_nlp(model)
    x, p, w = np.array([-2.0]), nlp.param_values(), np.ones(1)
    # Execute
    grad = nlp.gradient(x, p, w).copy()
    hess = nlp.hessian(x, p, w, np.zeros(0)).copy()
    # Assert
    assert grad == pytest.approx([12.0]) and hess == pytest.approx([-12.0])


def test_param_without_a_value_is_named():
    # Prepare: a mutable Param emptied after compilation
    from models.errors import InputError

    m = pyo.ConcreteModel()
    m.p = pyo.Param(mutable=True, initialize=1.0, within=pyo.Any)
    m.x = pyo.Var(initialize=1.0)
    m.o = pyo.Objective(expr=(m.x - m.p) ** 2)
    nlp = compile_nlp(m)
    m.p = None
    # Execute / Assert
    with pytest.raises(InputError, match="^p: mutable Param has no finite value"):
        nlp.param_values()
