"""Square nonlinear (complementarity) systems compiled from Pyomo, and a semismooth Newton solver.

:func:`compile_equations` turns equations ``e_i(x, p) = 0`` and complementarity pairs
``0 <= a_j(x, p) _|_ b_j(x, p) >= 0`` (Pyomo expressions) into one CasADi system in the chosen
unknowns ``z`` (the other Vars ``y`` and the mutable Params ``p`` are inputs)::

    F(z; y, p, mu) = [ e(x, p) ;  phi_mu(a(x, p), b(x, p)) ],
    phi_mu(a, b) = a + b - sqrt(a^2 + b^2 + 2 mu^2)

the smoothed Fischer-Burmeister function (Kanzow, SIAM J. Matrix Anal. Appl. 17(4), 1996):
``phi_mu(a, b) = 0  <=>  a, b > 0, a b = mu^2``, and ``mu = 0`` gives the exact
complementarity. The sparse Jacobians ``dF/dz`` (for Newton) and ``dF/dy`` (for the sensitivity
of the solution to the inputs, by the implicit function theorem) come from CasADi's algorithmic
differentiation, as do the values and gradients of extra scalar ``outputs`` (e.g. objectives).
The expressions go through the same Pyomo -> CasADi tape as :func:`solvers.compile_nlp`.

:func:`solve_newton` solves ``F(z) = 0`` by Newton's method with a sparse LU factorisation and
an Armijo backtracking line search on the merit ``||F||^2 / 2`` (De Luca, Facchinei & Kanzow,
Math. Program. 75, 1996, for the semismooth Fischer-Burmeister case).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import casadi as ca
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from models.errors import InputError

from .casadi_nlp import BufferEvaluator, ExpressionTape, param_values
from .options import SolverStatus

__all__ = ["CompiledEquations", "NewtonOptions", "NewtonResult", "compile_equations", "solve_newton"]


class _Component:
    """Stands in for a Pyomo component in the tape's error messages."""

    def __init__(self, name: str) -> None:
        self.name = name


def _csc(fn_sparsity: ca.Sparsity) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    return (np.asarray(fn_sparsity.row(), dtype=np.int32), np.asarray(fn_sparsity.colind(), dtype=np.int32),
            (fn_sparsity.size1(), fn_sparsity.size2()))


class CompiledEquations:
    """A square system ``F(z; y, p, mu) = 0`` compiled by :func:`compile_equations`.

    Attributes
    ----------
    unknowns : tuple of VarData
        The Vars of ``z``, in order.
    inputs : tuple of VarData
        Every other Var the expressions use (``y``), in order.
    params : tuple of ParamData
        The mutable Params (``p``).
    n_equations, n_pairs, n_outputs : int
        Rows ``e``, pairs ``(a, b)`` and extra outputs; ``F`` has ``n_equations + n_pairs`` rows.
    square : bool
        ``len(unknowns) == n_equations + n_pairs``.
    compile_seconds : float

    Evaluation methods return fresh arrays (or sparse matrices) that the caller may keep.
    """

    def __init__(self, equations: Sequence, pairs: Sequence, unknowns: Sequence, outputs: Sequence,
                 name: str) -> None:
        t0 = time.perf_counter()
        tape = ExpressionTape()
        comp = _Component(name)
        e_rows = [tape.record(e, comp) for e in equations]
        a_rows = [tape.record(a, comp) for a, _ in pairs]
        b_rows = [tape.record(b, comp) for _, b in pairs]
        o_rows = [tape.record(o, comp) for o in outputs]
        ids = {id(v): k for k, v in enumerate(tape.variables)}
        missing = [v for v in unknowns if id(v) not in ids]
        if missing:
            raise InputError(name, f"unknown {missing[0].name} appears in no equation")
        self.unknowns = tuple(unknowns)
        unknown_ids = {id(v) for v in unknowns}
        self.inputs = tuple(v for v in tape.variables if id(v) not in unknown_ids)
        self.params = tuple(tape.params)
        self.n_equations, self.n_pairs, self.n_outputs = len(e_rows), len(pairs), len(o_rows)
        self.square = len(self.unknowns) == self.n_equations + self.n_pairs
        x, p, select = tape.replay()
        self._z_pos = np.array([ids[id(v)] for v in self.unknowns], dtype=np.int64)
        self._y_pos = np.array([ids[id(v)] for v in self.inputs], dtype=np.int64)
        z = x[self._z_pos.tolist()] if len(self._z_pos) else ca.SX(0, 1)
        y = x[self._y_pos.tolist()] if len(self._y_pos) else ca.SX(0, 1)
        mu = ca.SX.sym("mu")
        E, A, B, O = select(e_rows), select(a_rows), select(b_rows), select(o_rows)
        F = ca.vertcat(E, A + B - ca.sqrt(A * A + B * B + 2 * mu * mu))
        # every Var is exactly one of z and y, so (z, y) is a permutation of x: the functions take it
        zy = ca.vertcat(z, y)
        # Rows with many nonzeros (an aggregate's definition s = sum_n I_n) defeat the column
        # colouring of CasADi's Jacobian (measured: 16 s for 10,500 unknowns): differentiate
        # them apart, in reverse mode. The order of F's rows is immaterial to Newton.
        counts = np.diff(np.asarray(ca.jacobian_sparsity(F, z).T.colind()))
        heavy = counts > max(16.0, 4.0 * float(np.median(counts))) if counts.size else counts > 0
        # pivoting weights of F's rows for the LU of dF/dz (see _factorize): the heavy rows last
        self.row_scale: np.ndarray | None = None
        if heavy.any() and not heavy.all():
            F = ca.vertcat(F[np.flatnonzero(~heavy).tolist()], F[np.flatnonzero(heavy).tolist()])
            light_rows = int((~heavy).sum())
            Jz = ca.vertcat(ca.jacobian(F[:light_rows], z), ca.jacobian(F[light_rows:], z))
            self.row_scale = np.where(np.arange(len(counts)) < light_rows, 1.0, _HEAVY_ROW_SCALE)
        else:
            Jz = ca.jacobian(F, z)
        Jy = ca.jacobian(F, y)
        Oz, Oy = ca.jacobian(O, z), ca.jacobian(O, y)
        ins = [zy, p, mu]
        self._F = BufferEvaluator(ca.Function("F", ins, [ca.densify(F)]))
        self._Jz = BufferEvaluator(ca.Function("Jz", ins, [Jz]))
        self._Jy = BufferEvaluator(ca.Function("Jy", ins, [Jy]))
        self._parts = BufferEvaluator(ca.Function("parts", [zy, p], [ca.densify(E), ca.densify(A), ca.densify(B)]))
        self._O = BufferEvaluator(ca.Function("outputs", [zy, p], [ca.densify(O), Oz, Oy]))
        self._Jz_csc, self._Jy_csc = _csc(Jz.sparsity()), _csc(Jy.sparsity())
        self._Oz_csc, self._Oy_csc = _csc(Oz.sparsity()), _csc(Oy.sparsity())
        self._row_index: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        # the symbolic system, for the second-order functions compiled on first use
        self._sx = (zy, p, mu, F, O)
        self._hvp: BufferEvaluator | None = None
        self._dF: BufferEvaluator | None = None
        self.compile_seconds = time.perf_counter() - t0

    # --- state ----------------------------------------------------------------------------------
    def read_unknowns(self) -> np.ndarray:
        """Current values of the unknown Vars (None -> 0)."""
        return np.array([0.0 if v.value is None else v.value for v in self.unknowns], dtype=float)

    def read_inputs(self) -> np.ndarray:
        """Current values of the input Vars (None -> 0)."""
        return np.array([0.0 if v.value is None else v.value for v in self.inputs], dtype=float)

    def read_params(self) -> np.ndarray:
        """Current values of the mutable Params (InputError naming one without a value)."""
        return param_values(self.params)

    def write_unknowns(self, z: np.ndarray) -> None:
        """Set the unknown Vars to ``z``."""
        for v, val in zip(self.unknowns, np.asarray(z, dtype=float).tolist()):
            v.set_value(val, skip_validation=True)

    # --- evaluation -----------------------------------------------------------------------------
    @staticmethod
    def _zy(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(z, dtype=float), np.asarray(y, dtype=float)])

    @staticmethod
    def _matrix(data: np.ndarray, csc: tuple) -> sp.csc_matrix:
        row, colind, shape = csc
        return sp.csc_matrix((data.copy(), row, colind), shape=shape)

    def residual(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float) -> np.ndarray:
        """``F(z; y, p, mu)``."""
        return self._F(self._zy(z, y), p, np.array([mu]))[0].copy()

    def jacobian(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float) -> sp.csc_matrix:
        """``dF/dz`` (sparse CSC)."""
        return self._matrix(self._Jz(self._zy(z, y), p, np.array([mu]))[0], self._Jz_csc)

    def input_jacobian(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float) -> sp.csc_matrix:
        """``dF/dy`` (sparse CSC)."""
        return self._matrix(self._Jy(self._zy(z, y), p, np.array([mu]))[0], self._Jy_csc)

    def input_columns(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float, pos: Sequence[int]) -> np.ndarray:
        """Columns ``pos`` of ``dF/dy`` as a dense array (n_F, len(pos)): a few inputs' columns
        (a leader's decisions) without building the sparse matrix."""
        data = self._Jy(self._zy(z, y), p, np.array([mu]))[0]
        row, colind, shape = self._Jy_csc
        out = np.zeros((shape[0], len(pos)))
        for j, c in enumerate(pos):
            a, b = colind[c], colind[c + 1]
            out[row[a:b], j] = data[a:b]
        return out

    def output_gradient(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, i: int) -> tuple[float, np.ndarray, np.ndarray]:
        """``(o_i, do_i/dz, do_i/dy)`` of output ``i``, the gradients dense, without building the
        sparse matrices of every output."""
        o, oz, oy = self._O(self._zy(z, y), p)
        return float(o[i]), self._dense_row(oz, self._Oz_csc, i), self._dense_row(oy, self._Oy_csc, i)

    def _dense_row(self, data: np.ndarray, csc: tuple, i: int) -> np.ndarray:
        row, colind, shape = csc
        key = (id(csc), i)
        if key not in self._row_index:  # the entries of row i and their columns, once per pattern
            cols = np.repeat(np.arange(shape[1]), np.diff(colind))
            at = np.flatnonzero(np.asarray(row) == i)
            self._row_index[key] = (at, cols[at])
        at, cols = self._row_index[key]
        out = np.zeros(shape[1])
        out[cols] = data[at]
        return out

    def parts(self, z: np.ndarray, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(e, a, b)``: equation rows and both sides of every pair (for natural residuals)."""
        e, a, b = self._parts(self._zy(z, y), p)
        return e.copy(), a.copy(), b.copy()

    def natural_residual(self, z: np.ndarray, y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
        """``(max |e|, max(0, -a, -b), max |min(a, b)|)`` at ``z`` (exact, not smoothed)."""
        e, a, b = self.parts(z, y, p)
        eq = float(np.max(np.abs(e), initial=0.0))
        feas = float(max(0.0, np.max(-a, initial=0.0), np.max(-b, initial=0.0)))
        comp = float(np.max(np.abs(np.minimum(a, b)), initial=0.0))
        return eq, feas, comp

    def outputs(self, z: np.ndarray, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, sp.csc_matrix, sp.csc_matrix]:
        """``(o, do/dz, do/dy)`` of the extra outputs."""
        o, oz, oy = self._O(self._zy(z, y), p)
        return o.copy(), self._matrix(oz, self._Oz_csc), self._matrix(oy, self._Oy_csc)

    # --- second order (compiled on first use) ----------------------------------------------------
    def directional(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float, v_zy: np.ndarray,
                    v_p: np.ndarray) -> np.ndarray:
        """``F_zy v_zy + F_p v_p``: the derivative of ``F`` along a direction of ``(z, y)`` and the
        Params (one forward sweep, :func:`casadi.jtimes`)."""
        if self._dF is None:
            zy, p_sx, mu_sx, F, _ = self._sx
            v, vp = ca.SX.sym("v", zy.size1()), ca.SX.sym("vp", p_sx.size1())
            dF = ca.jtimes(F, ca.vertcat(zy, p_sx), ca.vertcat(v, vp))
            self._dF = BufferEvaluator(ca.Function("dF", [zy, p_sx, mu_sx, v, vp], [ca.densify(dF)]))
        return self._dF(self._zy(z, y), p, np.array([mu]), v_zy, v_p)[0].copy()

    def lagrangian_hvp(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float, c: np.ndarray,
                       w: np.ndarray, v_zy: np.ndarray, v_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Hessian-vector product of ``L = c^T O - w^T F(z; y, p, mu)`` (``O`` the outputs,
        ``c`` their weights, ``w`` the multipliers of ``F``'s rows) in all of ``(z, y, p)``, along
        ``(v_zy, v_p)``: ``(H v)_zy`` (the entries of ``z`` then ``y``) and ``(H v)_p``, one
        forward sweep over the reverse-mode gradient of ``L``."""
        if self._hvp is None:
            zy, p_sx, mu_sx, F, O = self._sx
            c_sx, w_sx = ca.SX.sym("c", O.size1()), ca.SX.sym("w", F.size1())
            v, vp = ca.SX.sym("v", zy.size1()), ca.SX.sym("vp", p_sx.size1())
            x = ca.vertcat(zy, p_sx)
            grad = ca.gradient(ca.dot(c_sx, O) - ca.dot(w_sx, F), x)
            Hv = ca.densify(ca.jtimes(grad, x, ca.vertcat(v, vp)))
            n = zy.size1()
            self._hvp = BufferEvaluator(ca.Function("lagrangian_hvp", [zy, p_sx, mu_sx, c_sx, w_sx, v, vp],
                                                    [Hv[:n], Hv[n:]]))
        Hzy, Hp = self._hvp(self._zy(z, y), p, np.array([mu]), c, w, v_zy, v_p)
        return Hzy.copy(), Hp.copy()


#: weight of the heavy rows (an aggregate's definition ``s = sum_n I_n``) in the matrix SuperLU
#: factorises. Partial pivoting takes the largest entry of a column, and those rows hold large
#: entries in every player's columns: picking one as a pivot couples all the players' blocks and
#: filled the factors up to 12x (500x10 certificate: 392k nonzeros on average, 2.65M at worst,
#: against 214k). Scaled down, they pivot only where a column has nothing else (the aggregates'
#: own columns, last), so the elimination stays inside each player's block. Row scaling leaves
#: the solutions unchanged: ``(D J) d = -D F`` is ``J d = -F``.
_HEAVY_ROW_SCALE = 1e-6


class _ScaledLU:
    """LU factors of ``D J`` (``D = diag(row_scale)``) that solve with ``J`` and ``J^T``, like
    SuperLU's ``solve(b, trans)``: ``J x = b`` is ``(D J) x = D b``; ``J^T x = b`` is
    ``x = D (D J)^-T b``."""

    def __init__(self, lu: spla.SuperLU, row_scale: np.ndarray) -> None:
        self.lu, self.row_scale = lu, row_scale
        self.shape = lu.shape

    @property
    def L(self) -> sp.csc_matrix:
        """The lower factor (built on request: SuperLU assembles it anew at every access)."""
        return self.lu.L

    @property
    def U(self) -> sp.csc_matrix:
        """The upper factor (built on request, as :attr:`L`)."""
        return self.lu.U

    def solve(self, b: np.ndarray, trans: str = "N") -> np.ndarray:
        d = self.row_scale if np.ndim(b) == 1 else self.row_scale[:, None]
        if trans == "N":
            return self.lu.solve(d * b)
        return d * self.lu.solve(b, trans=trans)


def _factorize(system: "CompiledEquations", J: sp.csc_matrix, ordering: str) -> Any:
    """Sparse LU of ``J = dF/dz`` (SuperLU), the heavy rows down-weighted for pivoting (see
    :data:`_HEAVY_ROW_SCALE`); raises RuntimeError when ``J`` is singular."""
    if system.row_scale is None:
        return spla.splu(J, permc_spec=ordering)
    # scaled in place and back (a second sparse matrix cost more than the factorisation itself
    # on the default scenario); SuperLU keeps its own copy of the factors
    scale = system.row_scale[J.indices]
    J.data *= scale
    try:
        return _ScaledLU(spla.splu(J, permc_spec=ordering), system.row_scale)
    finally:
        J.data /= scale


def compile_equations(equations: Sequence, pairs: Sequence = (), unknowns: Sequence = (),
                      outputs: Sequence = (), name: str = "equations") -> CompiledEquations:
    """Compile ``e(x) = 0`` and ``0 <= a(x) _|_ b(x) >= 0`` into a :class:`CompiledEquations`.

    Parameters
    ----------
    equations : sequence of Pyomo expressions
        Each ``e_i`` of ``e_i = 0``.
    pairs : sequence of (a, b)
        Complementarity pairs, smoothed by ``phi_mu`` (see the module doc).
    unknowns : sequence of VarData
        The Vars solved for (``z``); every other Var the expressions use is an input ``y``.
    outputs : sequence of Pyomo expressions
        Extra scalars evaluated with their gradients (objectives); not part of ``F``.
    name : str
        Used in error messages.

    Raises
    ------
    UnsupportedExpressionError
        A non-smooth or unknown expression node.
    InputError
        An unknown that no expression uses.
    """
    return CompiledEquations(list(equations), list(pairs), list(unknowns), list(outputs), name)


@dataclass(frozen=True)
class NewtonOptions:
    """Options of :func:`solve_newton`, validated at construction.

    Parameters
    ----------
    tol : float
        Stop when ``max |F| <= tol``, > 0. Default 1e-10.
    max_iter : int
        Newton iterations, >= 1. Default 60.
    armijo : float
        Sufficient-decrease constant ``sigma`` of ``||F(z + t d)||^2 <= (1 - 2 sigma t) ||F(z)||^2``,
        in (0, 0.5). Default 1e-4.
    min_step : float
        Smallest line-search step before giving up, in (0, 1). Default 1e-6.
    min_iter : int
        Newton steps taken even when ``z0`` already meets ``tol`` (unless ``F(z0) = 0`` exactly):
        one quadratic step from a warm start takes a 1e-10 residual to rounding level, which
        sensitivities (implicit-function gradients) need. Default 0.
    stall_window, stall_ratio : int, float
        Give up (status ``STALLED``) when ``||F||^2`` is still above ``stall_ratio`` times its
        value ``stall_window`` iterations earlier (``stall_window = 0`` turns it off). Default 8 and 0.9: converging
        runs of the followers' KKT system fell at least 2x over any 8 iterations (worst 0.51 at
        100x5, 0.28 at 500x10, over every certificate solve), the runs that failed stalled within
        10 iterations and then spent the rest of ``max_iter``.
    ordering : str
        Column ordering of SuperLU (``permc_spec`` of :func:`scipy.sparse.linalg.splu`). Default
        ``"NATURAL"``: the unknowns come player by player with the shared aggregates last, an
        arrowhead that factorises with little fill as it is, where COLAMD's reordering filled it
        twelvefold (measured on the 500x10 followers' system: 2.7M against 0.22M nonzeros).
    """

    tol: float = 1e-10
    max_iter: int = 60
    armijo: float = 1e-4
    min_step: float = 1e-6
    ordering: str = "NATURAL"
    min_iter: int = 0
    stall_window: int = 8
    stall_ratio: float = 0.9

    def __post_init__(self) -> None:
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol > 0):
            raise InputError("tol", f"must be finite and > 0, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise InputError("max_iter", f"must be an integer >= 1, got {self.max_iter!r}")
        if not (isinstance(self.armijo, (int, float)) and 0 < self.armijo < 0.5):
            raise InputError("armijo", f"must be in (0, 0.5), got {self.armijo!r}")
        if not (isinstance(self.min_step, (int, float)) and 0 < self.min_step < 1):
            raise InputError("min_step", f"must be in (0, 1), got {self.min_step!r}")
        if isinstance(self.min_iter, bool) or not isinstance(self.min_iter, int) or self.min_iter < 0:
            raise InputError("min_iter", f"must be an integer >= 0, got {self.min_iter!r}")
        if isinstance(self.stall_window, bool) or not isinstance(self.stall_window, int) or self.stall_window < 0:
            raise InputError("stall_window", f"must be an integer >= 0, got {self.stall_window!r}")
        if not (isinstance(self.stall_ratio, (int, float)) and 0 < self.stall_ratio < 1):
            raise InputError("stall_ratio", f"must be in (0, 1), got {self.stall_ratio!r}")
        if self.ordering not in ("NATURAL", "COLAMD", "MMD_ATA", "MMD_AT_PLUS_A"):
            raise InputError("ordering", f"must be NATURAL, COLAMD, MMD_ATA or MMD_AT_PLUS_A, got {self.ordering!r}")


@dataclass(frozen=True)
class NewtonResult:
    """Outcome of :func:`solve_newton`.

    ``status``: ``OPTIMAL`` (converged), ``MAX_ITER``, ``STALLED`` (no progress over
    ``stall_window`` iterations), ``SEARCH_DIRECTION_TOO_SMALL`` (line search failed),
    ``ERROR_IN_STEP_COMPUTATION`` (singular Jacobian) or ``INVALID_NUMBER`` (NaN/inf).
    ``lu`` is the factorisation of ``dF/dz`` at the returned point when ``ok`` (for sensitivities):
    an object with SuperLU's ``solve(b, trans="N" | "T")``.
    """

    status: SolverStatus
    z: np.ndarray
    residual: float
    iterations: int
    seconds: float
    lu: object = None

    @property
    def ok(self) -> bool:
        return self.status is SolverStatus.OPTIMAL


#: relative step below which :func:`solve_newton` keeps the last factorisation as the solution's
_SAME_POINT = 1e-13


def _line_search(system: CompiledEquations, z: np.ndarray, d: np.ndarray, F: np.ndarray, norm2: float,
                 y: np.ndarray, p: np.ndarray, mu: float,
                 options: "NewtonOptions") -> tuple[np.ndarray, np.ndarray, float] | None:
    """Backtracking on ``||F||^2``: the largest ``t = 2^-j`` with
    ``||F(z + t d)||^2 <= (1 - 2 sigma t) ||F||^2``, the Armijo condition for Newton's direction
    and for the scaled steepest-descent direction ``-(||F||^2 / |g|^2) g``, ``g = J^T F`` (both
    have ``-grad^T d = ||F||^2``); None below ``min_step``."""
    t = 1.0
    while t >= options.min_step:
        z_new = z + t * d
        F_new = system.residual(z_new, y, p, mu)
        n_new = float(F_new @ F_new)
        if math.isfinite(n_new) and n_new <= (1.0 - 2.0 * options.armijo * t) * norm2:
            return z_new, F_new, n_new
        t *= 0.5
    return None


def solve_newton(system: CompiledEquations, z0: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float,
                 options: NewtonOptions = NewtonOptions(), factorize_at_solution: bool = False) -> NewtonResult:
    """Solve ``F(z; y, p, mu) = 0`` from ``z0`` by Newton's method with a backtracking line search.

    ``J(z_k) d_k = -F(z_k)``, ``z_{k+1} = z_k + t_k d_k`` with the largest ``t_k = 2^-j`` meeting
    Armijo's condition on ``||F||^2`` (Nocedal & Wright, *Numerical Optimization*, 2006, sec. 11.2;
    De Luca, Facchinei & Kanzow 1996 for the Fischer-Burmeister system). With
    ``factorize_at_solution`` the returned ``lu`` factorises ``dF/dz`` at the solution.
    """
    t0 = time.perf_counter()
    z = np.array(z0, dtype=float)
    F = system.residual(z, y, p, mu)
    norm2 = float(F @ F)
    status = SolverStatus.MAX_ITER
    it = 0
    lu = None
    merits = [norm2]  # ||F||^2 after each iteration, for the stall test
    while True:
        if not math.isfinite(norm2):
            status = SolverStatus.INVALID_NUMBER
            break
        if np.max(np.abs(F), initial=0.0) <= options.tol and (it >= options.min_iter or not np.any(F)):
            status = SolverStatus.OPTIMAL
            break
        if it >= options.max_iter:
            break
        it += 1
        J = system.jacobian(z, y, p, mu)
        lu = None
        try:
            lu = _factorize(system, J, options.ordering)
            d = lu.solve(-F)
        except RuntimeError:  # "Factor is exactly singular"
            d = None
        if d is not None and not np.all(np.isfinite(d)):
            d = None
        step = _line_search(system, z, d, F, norm2, y, p, mu, options) if d is not None else None
        if step is None:
            # Newton's direction failed: a steepest-descent step on ||F||^2 / 2, direction -J^T F,
            # as De Luca, Facchinei & Kanzow (1996) do when Newton's is not a descent direction.
            g = J.T @ F
            gg = float(g @ g)
            if gg > 0 and math.isfinite(gg):
                step = _line_search(system, z, -(norm2 / gg) * g, F, norm2, y, p, mu, options)
        if step is None:
            status = SolverStatus.SEARCH_DIRECTION_TOO_SMALL
            lu = None
            break
        moved = float(np.max(np.abs(step[0] - z), initial=0.0))
        z, F, norm2 = step
        merits.append(norm2)
        w = options.stall_window
        if w and len(merits) > w and norm2 > options.stall_ratio * merits[-1 - w] \
                and np.max(np.abs(F), initial=0.0) > options.tol:
            status = SolverStatus.STALLED
            lu = None
            break
        # the factorisation at the previous iterate stands for the one at z only when the step
        # was at rounding level (a forced ``min_iter`` step from a solved start)
        lu = lu if moved <= _SAME_POINT * max(1.0, float(np.max(np.abs(z), initial=0.0))) else None
    if status is not SolverStatus.OPTIMAL or not factorize_at_solution:
        lu = None
    elif lu is None:
        try:
            lu = _factorize(system, system.jacobian(z, y, p, mu), options.ordering)
        except RuntimeError:
            lu = None
    return NewtonResult(status, z, float(np.max(np.abs(F), initial=0.0)) if F.size else 0.0, it,
                        time.perf_counter() - t0, lu)
