"""Ipopt through cyipopt on Pyomo models: optima, statuses, re-solves without recompilation."""
from __future__ import annotations

import sys

import numpy as np
import pyomo.environ as pyo
import pytest

from models.errors import InputError
from solvers import IpoptNotAvailable, IpoptOptions, IpoptSolver, SolverStatus

from .problems import PROBLEMS, hs071, mixed_constraints, projection_qp, rosenbrock


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_known_optimum(name):
    # Prepare
    build, tol = PROBLEMS[name]
    model, x_star, f_star = build()
    solver = IpoptSolver(IpoptOptions(tol=1e-10))
    # Execute
    res = solver.solve(model)
    # Assert
    assert res.status is SolverStatus.OPTIMAL and res.ok and res.loaded
    assert res.objective == pytest.approx(f_star, abs=tol * 10, rel=tol)
    assert pyo.value(model.obj) == pytest.approx(res.objective, rel=1e-12, abs=1e-12)
    for var, val in x_star.items():
        assert var.value == pytest.approx(val, abs=1e-5), var.name


def test_hs071_constraint_multipliers_satisfy_stationarity():
    # Prepare
    model, _, _ = hs071()
    solver = IpoptSolver()
    # Execute
    res = solver.solve(model)
    nlp = solver.compiled(model)
    w, _ = nlp.objective_weights()
    p = nlp.param_values()
    grad = nlp.gradient(res.x, p, w).copy()
    jac = np.zeros((nlp.m, nlp.n))
    jac[nlp.jac_rows, nlp.jac_cols] = nlp.jacobian(res.x, p)
    # Assert: grad f + J^T lambda - z_L + z_U = 0
    residual = grad + jac.T @ res.constraint_multipliers - res.bound_multipliers_lower + res.bound_multipliers_upper
    assert np.max(np.abs(residual)) < 1e-6


@pytest.mark.parametrize("sense", [pyo.minimize, pyo.maximize])
def test_duals_are_objective_sensitivities(sense):
    # Prepare: min x^2 s.t. x >= b  (or max -x^2): f*(b) = +-b^2, d f*/d b = +-2b
    def build(b):
        m = pyo.ConcreteModel()
        m.b = pyo.Param(initialize=b, mutable=True)
        m.x = pyo.Var(initialize=3.0)
        sign = 1 if sense == pyo.minimize else -1
        m.obj = pyo.Objective(expr=sign * m.x ** 2, sense=sense)
        m.lo = pyo.Constraint(expr=m.x >= m.b)
        m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
        return m, sign

    model, sign = build(1.5)
    solver = IpoptSolver(IpoptOptions(tol=1e-10))
    # Execute
    res = solver.solve(model)
    # Assert
    assert res.ok
    assert res.duals[model.lo] == pytest.approx(sign * 2 * 1.5, rel=1e-6)
    assert model.dual[model.lo] == pytest.approx(res.duals[model.lo], rel=1e-12)


def test_resolve_after_param_change_does_not_recompile():
    # Prepare
    model, _, _ = projection_qp(n=5, b=1.0)
    solver = IpoptSolver(IpoptOptions(tol=1e-10))
    solver.solve(model)
    compiles = solver.compile_count
    # Execute
    model.b.value = -3.0
    model.a[2].value = 10.0
    res = solver.solve(model)
    # Assert
    a = np.array([pyo.value(model.a[i]) for i in model.I])
    expected = a - (a.sum() + 3.0) / 5
    assert res.ok and solver.compile_count == compiles == 1
    assert np.allclose([model.x[i].value for i in model.I], expected, atol=1e-7)


def test_fix_and_unfix_var_does_not_recompile():
    # Prepare
    model, x_star, f_star = projection_qp(n=4, b=1.0)
    solver = IpoptSolver(IpoptOptions(tol=1e-10))
    solver.solve(model)
    a = np.array([pyo.value(model.a[i]) for i in model.I])
    # Execute: fix x[0] = 5, the rest project onto sum = b - 5
    model.x[0].fix(5.0)
    fixed = solver.solve(model)
    fixed_values = [model.x[i].value for i in model.I]
    model.x[0].unfix()
    free = solver.solve(model)
    # Assert
    rest = a[1:] - (a[1:].sum() - (1.0 - 5.0)) / 3
    assert fixed.ok and free.ok and solver.compile_count == 1
    assert fixed_values[0] == 5.0
    assert np.allclose(fixed_values[1:], rest, atol=1e-7)
    assert free.objective == pytest.approx(f_star, rel=1e-7)
    assert all(v.value == pytest.approx(x_star[v], abs=1e-7) for v in x_star)


def test_switch_objective_does_not_recompile():
    # Prepare: o2 (inactive) = (x - 3)^2 + (y + 1)^2 on top of rosenbrock's Var set
    model, _, _ = rosenbrock()
    model.o2 = pyo.Objective(expr=(model.x - 3) ** 2 + (model.y + 1) ** 2)
    model.o2.deactivate()
    solver = IpoptSolver(IpoptOptions(tol=1e-10))
    first = solver.solve(model)
    # Execute
    second = solver.solve(model, objective=model.o2)
    model.o2.activate()
    model.obj.deactivate()
    third = solver.solve(model, objective=None)
    # Assert
    assert first.ok and first.objective == pytest.approx(0.0, abs=1e-10)
    assert second.ok and second.objective == pytest.approx(0.0, abs=1e-10)
    assert third.ok and (model.x.value, model.y.value) == pytest.approx((3.0, -1.0), abs=1e-7)
    assert solver.compile_count == 1


def test_structure_change_recompiles():
    # Prepare
    model, _, _ = mixed_constraints()
    solver = IpoptSolver()
    solver.solve(model)
    # Execute: without the ranged row the optimum is x = y = 1
    model.ranged.deactivate()
    res = solver.solve(model)
    # Assert
    assert res.ok and solver.compile_count == 2
    assert (model.x.value, model.y.value) == pytest.approx((1.0, 1.0), abs=1e-7)


def test_var_bounds_are_read_at_each_solve():
    # Prepare
    model, _, _ = rosenbrock()
    solver = IpoptSolver()
    solver.solve(model)
    # Execute
    model.x.setub(0.5)
    res = solver.solve(model)
    # Assert
    assert res.ok and solver.compile_count == 1
    assert model.x.value == pytest.approx(0.5, abs=1e-7)


def test_infeasible_problem_is_reported_and_not_loaded():
    # Prepare
    model = pyo.ConcreteModel()
    model.x = pyo.Var(initialize=0.3)
    model.y = pyo.Var(initialize=0.4)
    model.obj = pyo.Objective(expr=model.x ** 2 + model.y ** 2)
    model.hi = pyo.Constraint(expr=model.x + model.y >= 5)
    model.lo = pyo.Constraint(expr=model.x ** 2 + model.y ** 2 <= 1)
    # Execute
    res = IpoptSolver().solve(model)
    # Assert
    assert res.status is SolverStatus.INFEASIBLE and not res.ok and not res.loaded
    assert (model.x.value, model.y.value) == (0.3, 0.4)


def test_max_iter_status_and_no_load():
    # Prepare
    model, _, _ = rosenbrock()
    # Execute
    res = IpoptSolver(IpoptOptions(max_iter=1)).solve(model)
    # Assert
    assert res.status is SolverStatus.MAX_ITER and not res.ok and not res.loaded
    assert res.iterations == 1 and model.x.value == -1.2


def test_load_on_failure_writes_last_iterate():
    # Prepare
    model, _, _ = rosenbrock()
    # Execute
    res = IpoptSolver(IpoptOptions(max_iter=2, load_on_failure=True)).solve(model)
    # Assert
    assert not res.ok and res.loaded and model.x.value == res.x[0] != -1.2


def test_warm_start_reduces_iterations():
    # Prepare: solve, perturb a Param slightly, then re-solve warm vs cold from the same start
    model, _, _ = hs071()
    model.r = pyo.Param(initialize=40.0, mutable=True)
    model.sphere.set_value(sum(model.x[i] ** 2 for i in range(4)) == model.r)
    solver = IpoptSolver()
    solver.solve(model)
    model.r.value = 40.5
    start = [model.x[i].value for i in range(4)]
    # Execute
    warm = solver.solve(model, warm_start=True)
    for i, v in enumerate(start):
        model.x[i].value = v
    cold = IpoptSolver().solve(model, warm_start=False)
    from_scratch_model, _, _ = hs071()
    scratch = IpoptSolver().solve(from_scratch_model)
    # Assert
    assert warm.ok and cold.ok
    assert warm.objective == pytest.approx(cold.objective, rel=1e-7)
    assert warm.iterations < cold.iterations < scratch.iterations


def test_fixed_var_is_not_overwritten_and_none_values_are_projected():
    # Prepare: y has no value and bounds [2, 3]; x fixed at 1
    model = pyo.ConcreteModel()
    model.x = pyo.Var()
    model.x.fix(1.0)
    model.y = pyo.Var(bounds=(2, 3))
    model.obj = pyo.Objective(expr=(model.y - model.x) ** 2)
    solver = IpoptSolver()
    # Execute
    res = solver.solve(model)
    # Assert
    assert res.ok and model.x.value == 1.0 and model.y.value == pytest.approx(2.0, abs=1e-7)


def test_objective_choice_errors():
    # Prepare
    model, _, _ = rosenbrock()
    model.o2 = pyo.Objective(expr=model.x ** 2)
    other = pyo.ConcreteModel()
    other.z = pyo.Var()
    other.o = pyo.Objective(expr=other.z ** 2)
    solver = IpoptSolver()
    # Execute / Assert
    with pytest.raises(InputError, match="objective"):
        solver.solve(model)
    with pytest.raises(InputError, match="objective"):
        solver.solve(model, objective=other.o)


def test_unknown_extra_option_raises_input_error():
    model, _, _ = rosenbrock()
    with pytest.raises(InputError, match="extra"):
        IpoptSolver(IpoptOptions(extra={"no_such_option": 1})).solve(model)


def test_extra_option_is_used():
    # Prepare
    model, _, _ = hs071()
    # Execute
    res = IpoptSolver(IpoptOptions(extra={"mu_strategy": "adaptive"})).solve(model)
    # Assert
    assert res.ok and res.objective == pytest.approx(17.0140173, rel=1e-7)


def test_missing_cyipopt_raises_ipopt_not_available(monkeypatch):
    # Prepare: make the import fail as it does on a machine without cyipopt
    monkeypatch.setitem(sys.modules, "cyipopt", None)
    model, _, _ = rosenbrock()
    # Execute / Assert
    with pytest.raises(IpoptNotAvailable, match="pip install cyipopt"):
        IpoptSolver().solve(model)


def test_feasibility_problem_without_objective():
    # Prepare
    model = pyo.ConcreteModel()
    model.x = pyo.Var(initialize=1.0)
    model.c = pyo.Constraint(expr=model.x ** 2 == 4)
    # Execute
    res = IpoptSolver().solve(model)
    # Assert
    assert res.ok and res.objective == 0.0 and model.x.value == pytest.approx(2.0, abs=1e-7)


def test_all_vars_fixed_is_checked_for_feasibility():
    # Prepare
    model = pyo.ConcreteModel()
    model.x = pyo.Var(initialize=1.0)
    model.y = pyo.Var(initialize=2.0)
    model.obj = pyo.Objective(expr=(model.x - model.y) ** 2)
    model.c = pyo.Constraint(expr=model.x + model.y <= 5)
    model.x.fix()
    model.y.fix()
    solver = IpoptSolver()
    # Execute
    feasible = solver.solve(model)
    model.y.fix(7.0)
    infeasible = solver.solve(model)
    # Assert
    assert feasible.ok and feasible.objective == pytest.approx(1.0)
    assert infeasible.status is SolverStatus.INFEASIBLE and not infeasible.ok
    assert solver.compile_count == 1
