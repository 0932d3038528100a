"""Derivative back ends for the Pyomo -> Ipopt bridge: CasADi SX against Pyomo's symbolic derivatives.

For each model the two back ends build the gradient, the sparse constraint Jacobian and the lower
triangle of the Lagrangian Hessian, are checked to agree at a random point, and are timed side by
side in one run: build time and time per (gradient + Jacobian + Hessian) evaluation. A second
table measures what a cached re-solve costs outside Ipopt (the reason the production back end
must be cheap to call thousands of times from epec/).

    metatrading bench derivatives --sizes 10 200 1000 --out results/bench_derivatives

The Pyomo evaluator is the minimal one this comparison needs: ``differentiate(...,
mode=reverse_symbolic)`` once per row for the first derivatives and once per first-derivative
entry for the second, each evaluated with ``pyomo.environ.value``.
"""
from __future__ import annotations

from pathlib import Path

import argparse
import time
from typing import Any

#: families of test models; see _build
FAMILIES = ("chain", "coupled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 200, 1000],
                        help="numbers of variables of the test models (default: 10 200 1000)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES,
                        help="model families (default: all)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="evaluations timed per back end, the median is reported (default: 20)")
    parser.add_argument("--resolve-sizes", type=int, nargs="*", default=[10, 5000],
                        help="model sizes of the re-solve overhead table (default: 10 5000)")
    parser.add_argument("--resolves", type=int, default=20, help="re-solves timed per size (default: 20)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random draw: here the point at which the back ends are compared (default 0)")
    parser.add_argument("--out", required=True,
                        help="output folder (writes bench_derivatives.json and bench_derivatives.png)")


def _build(family: str, n: int):
    """``chain``: min sum (x_i - a_i)^2 + x_i^4/10 s.t. x_i + x_{i+1}^2 <= 1 (banded).
    ``coupled``: exp/log/product rows over 4 neighbours, a mutable right-hand side, ranged rows."""
    import numpy as np
    import pyomo.environ as pyo

    m = pyo.ConcreteModel(name=f"{family}{n}")
    m.I = pyo.RangeSet(0, n - 1)
    m.a = pyo.Param(m.I, initialize=lambda _, i: float(np.sin(i)), mutable=True)
    m.x = pyo.Var(m.I, bounds=(-5, 5), initialize=0.0)
    if family == "chain":
        m.obj = pyo.Objective(expr=sum((m.x[i] - m.a[i]) ** 2 + 0.1 * m.x[i] ** 4 for i in m.I))
        m.c = pyo.Constraint(pyo.RangeSet(0, n - 2), rule=lambda m, i: m.x[i] + m.x[i + 1] ** 2 <= 1.0)
    else:
        nb = [[(i + k) % n for k in range(4)] for i in range(n)]
        m.obj = pyo.Objective(expr=sum(pyo.exp(0.1 * m.x[i]) * m.x[nb[i][1]] + (m.x[i] - m.a[i]) ** 2 for i in m.I))
        m.c = pyo.Constraint(m.I, rule=lambda m, i: pyo.inequality(
            -10.0, pyo.log(1 + m.x[nb[i][0]] ** 2) + m.x[nb[i][1]] * m.x[nb[i][2]] - m.x[nb[i][3]] / (2 + m.x[i] ** 2), m.a[i] + 3))
    return m


class PyomoSymbolic:
    """Gradient, Jacobian and Lagrangian Hessian by ``differentiate(mode=reverse_symbolic)``."""

    def __init__(self, model, variables) -> None:
        import pyomo.environ as pyo
        from pyomo.core.expr.calculus.derivatives import Modes, differentiate
        from pyomo.core.expr.visitor import identify_variables

        mode = Modes.reverse_symbolic
        self.variables = list(variables)
        index = {id(v): i for i, v in enumerate(self.variables)}
        obj = next(model.component_data_objects(pyo.Objective, active=True))
        cons = list(model.component_data_objects(pyo.Constraint, active=True))
        rows = [(-1, obj.expr)] + [(r, c.body) for r, c in enumerate(cons)]
        self.grad: list[tuple[int, Any]] = []
        self.jac: list[tuple[int, int, Any]] = []
        self.hess: dict[tuple[int, int], list[tuple[int, Any]]] = {}
        for r, expr in rows:
            vs = list(identify_variables(expr, include_fixed=True))
            first = differentiate(expr, wrt_list=vs, mode=mode)
            for v, d in zip(vs, first):
                j = index[id(v)]
                if r < 0:
                    self.grad.append((j, d))
                else:
                    self.jac.append((r, j, d))
                second = differentiate(d, wrt_list=vs, mode=mode)
                for u, dd in zip(vs, second):
                    i = index[id(u)]
                    if i >= j and not (isinstance(dd, (int, float)) and dd == 0):
                        self.hess.setdefault((i, j), []).append((r, dd))
        self.hess_keys = sorted(self.hess)
        self.n = len(self.variables)

    def evaluate(self, x, lam):
        import numpy as np
        from pyomo.environ import value

        for v, val in zip(self.variables, x.tolist()):
            v.set_value(val, skip_validation=True)
        grad = np.zeros(self.n)
        for j, d in self.grad:
            grad[j] += value(d)
        jac = {(r, j): value(d) for r, j, d in self.jac}
        hess = {k: sum(value(dd) * (1.0 if r < 0 else lam[r]) for r, dd in self.hess[k]) for k in self.hess_keys}
        return grad, jac, hess


def _median_seconds(fn, repeats: int) -> float:
    import numpy as np

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def compare(family: str, n: int, repeats: int, seed: int) -> dict:
    """Build and evaluate both back ends on one model; returns one table row."""
    import numpy as np

    from solvers import compile_nlp

    model = _build(family, n)
    t = time.perf_counter()
    nlp = compile_nlp(model)
    build_casadi = time.perf_counter() - t
    t = time.perf_counter()
    sym = PyomoSymbolic(model, nlp.variables)
    build_pyomo = time.perf_counter() - t

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, nlp.n)
    lam = rng.normal(size=nlp.m)
    p = nlp.param_values()
    w, _ = nlp.objective_weights()

    def casadi_eval():
        return nlp.gradient(x, p, w), nlp.jacobian(x, p), nlp.hessian(x, p, w, lam)

    def pyomo_eval():
        return sym.evaluate(x, lam)

    grad_c, jac_c, hess_c = (a.copy() for a in casadi_eval())
    grad_p, jac_p, hess_p = pyomo_eval()
    jac_p_vec = np.array([jac_p.get((r, c), 0.0) for r, c in zip(nlp.jac_rows.tolist(), nlp.jac_cols.tolist())])
    hess_p_vec = np.array([hess_p.get((r, c), 0.0) for r, c in zip(nlp.hess_rows.tolist(), nlp.hess_cols.tolist())])
    missing = (set(jac_p) - set(zip(nlp.jac_rows.tolist(), nlp.jac_cols.tolist()))) | (
        set(hess_p) - set(zip(nlp.hess_rows.tolist(), nlp.hess_cols.tolist())))
    max_diff = float(max(np.max(np.abs(grad_c - grad_p)), np.max(np.abs(jac_c - jac_p_vec), initial=0.0),
                         np.max(np.abs(hess_c - hess_p_vec), initial=0.0)))

    eval_casadi = _median_seconds(casadi_eval, repeats)
    eval_pyomo = _median_seconds(pyomo_eval, max(3, repeats // 5))
    return {
        "family": family, "n": nlp.n, "m": nlp.m, "nodes": nlp.n_nodes,
        "jac_nnz": len(nlp.jac_rows), "hess_nnz": len(nlp.hess_rows),
        "build_casadi_s": build_casadi, "build_pyomo_s": build_pyomo,
        "build_ratio": build_pyomo / build_casadi,
        "eval_casadi_s": eval_casadi, "eval_pyomo_s": eval_pyomo, "eval_ratio": eval_pyomo / eval_casadi,
        "max_abs_diff": max_diff, "structure_mismatch": len(missing),
    }


def resolve_overhead(n: int, resolves: int) -> dict:
    """Median split of a cached re-solve of the chain model after a Param change."""
    import numpy as np

    from solvers import IpoptSolver

    model = _build("chain", n)
    solver = IpoptSolver()
    first = solver.solve(model)
    rows = []
    for k in range(resolves):
        model.a[0].value = float(np.sin(k))
        res = solver.solve(model)
        if not res.ok:
            raise RuntimeError(f"re-solve {k} of chain{n} failed: {res.status.value}")
        rows.append((res.seconds, res.ipopt_seconds, res.eval_seconds, res.iterations))
    arr = np.array(rows)
    med = np.median(arr, axis=0)
    return {
        "n": n, "first_solve_s": first.seconds, "compile_s": solver.compiled(model).compile_seconds,
        "compile_count": solver.compile_count, "resolve_s": float(med[0]),
        "outside_ipopt_s": float(np.median(arr[:, 0] - arr[:, 1])),
        "callbacks_s": float(med[2]), "ipopt_internal_s": float(np.median(arr[:, 1] - arr[:, 2])),
        "iterations": float(med[3]),
    }


def run(args: argparse.Namespace) -> int:
    from models.errors import InputError
    from models.io import atomic_write_json

    for flag, sizes in (("--sizes", args.sizes), ("--resolve-sizes", args.resolve_sizes)):
        if sizes and min(sizes) < 3:
            raise InputError(flag, f"every size must be >= 3, got {min(sizes)}")
    for flag, count in (("--repeats", args.repeats), ("--resolves", args.resolves)):
        if count < 1:
            raise InputError(flag, f"must be >= 1, got {count}")
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    rows = [compare(f, n, args.repeats, args.seed) for f in args.families for n in args.sizes]
    print(f"{'model':>12} {'n':>6} {'nodes':>7} {'jac nnz':>8} {'hess nnz':>8} | "
          f"{'build CasADi':>12} {'build Pyomo':>11} {'ratio':>7} | {'eval CasADi':>11} "
          f"{'eval Pyomo':>10} {'ratio':>7} | {'max |diff|':>10}")
    for r in rows:
        print(f"{r['family']:>12} {r['n']:>6} {r['nodes']:>7} {r['jac_nnz']:>8} {r['hess_nnz']:>8} | "
              f"{r['build_casadi_s']:>11.4f}s {r['build_pyomo_s']:>10.4f}s {r['build_ratio']:>6.1f}x | "
              f"{r['eval_casadi_s'] * 1e3:>9.3f}ms {r['eval_pyomo_s'] * 1e3:>8.2f}ms {r['eval_ratio']:>6.0f}x | "
              f"{r['max_abs_diff']:>10.1e}")
    overhead = [resolve_overhead(n, args.resolves) for n in args.resolve_sizes]
    if overhead:
        print(f"\n{'re-solve':>8} {'compile':>9} {'first':>9} {'re-solve':>10} {'outside Ipopt':>13} "
              f"{'callbacks':>10} {'Ipopt own':>10} {'iters':>6} {'compiles':>8}")
    for o in overhead:
        print(f"{o['n']:>8} {o['compile_s']:>8.3f}s {o['first_solve_s']:>8.3f}s {o['resolve_s'] * 1e3:>8.2f}ms "
              f"{o['outside_ipopt_s'] * 1e3:>11.2f}ms {o['callbacks_s'] * 1e3:>8.2f}ms "
              f"{o['ipopt_internal_s'] * 1e3:>8.2f}ms {o['iterations']:>6.0f} {o['compile_count']:>8}")
    bad = [r for r in rows if r["max_abs_diff"] > 1e-6 * max(1.0, r["n"]) or r["structure_mismatch"]]
    from benchmarks.plots import derivatives_plot

    out = Path(args.out)
    atomic_write_json(out / "bench_derivatives.json", {"derivatives": rows, "resolve_overhead": overhead,
                                                       "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}})
    derivatives_plot(out / "bench_derivatives.png", rows,
                     title="Exact derivatives: CasADi SX (solid) against Pyomo symbolic (dashed), log-log")
    print(f"wrote {out / 'bench_derivatives.json'} and {out / 'bench_derivatives.png'}")
    if bad:
        print(f"\nback ends disagree on {[(r['family'], r['n']) for r in bad]}")
        return 1
    return 0


def main(argv=None) -> int:
    """``python -m benchmarks.bench_derivatives ARGS`` = ``metatrading bench derivatives ARGS``."""
    from benchmarks.cli import main as cli_main

    return cli_main(["bench", "derivatives", *(argv or [])])


if __name__ == "__main__":
    raise SystemExit(main())
