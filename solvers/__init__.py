"""Pyomo -> Ipopt through cyipopt, with exact sparse derivatives from CasADi.

One import line::

    from solvers import IpoptSolver, IpoptOptions, SolveResult, SolverStatus, IpoptNotAvailable, compile_nlp, CompiledNLP
"""
from .casadi_nlp import CompiledNLP, UnsupportedExpressionError, compile_nlp
from .ipopt import INSTALL_HINT, IpoptNotAvailable, IpoptSolver, SolveResult
from .options import IpoptOptions, SolverStatus

__all__ = [
    "CompiledNLP",
    "INSTALL_HINT",
    "IpoptNotAvailable",
    "IpoptOptions",
    "IpoptSolver",
    "SolveResult",
    "SolverStatus",
    "UnsupportedExpressionError",
    "compile_nlp",
]
