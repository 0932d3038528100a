"""Pyomo -> Ipopt through cyipopt, with exact sparse derivatives from CasADi.

One import line::

    from solvers import IpoptSolver, IpoptOptions, SolveResult, SolverStatus, IpoptNotAvailable, compile_nlp, CompiledNLP, compile_equations, solve_newton
"""
from .casadi_nlp import CompiledNLP, UnsupportedExpressionError, compile_nlp
from .equations import CompiledEquations, NewtonOptions, NewtonResult, compile_equations, solve_newton
from .ipopt import INSTALL_HINT, IpoptNotAvailable, IpoptSolver, SolveResult
from .options import IpoptOptions, SolverStatus

__all__ = [
    "CompiledEquations",
    "CompiledNLP",
    "INSTALL_HINT",
    "IpoptNotAvailable",
    "IpoptOptions",
    "IpoptSolver",
    "NewtonOptions",
    "NewtonResult",
    "SolveResult",
    "SolverStatus",
    "UnsupportedExpressionError",
    "compile_equations",
    "compile_nlp",
    "solve_newton",
]
