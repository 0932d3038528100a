"""The MetaTrading EPEC of a :class:`models.Scenario`, solved and certified in one call.

The game of docs/model.md (MSPs lead with rewards, MUs follow with CPU) is built as Pyomo player
blocks by :func:`models.build_game` and solved by :func:`epec.solve_epec`; the answer is read
back as arrays and the followers' KKT conditions are checked once more by the independent numpy
implementation :func:`models.follower_kkt_residual`. This is the certified reference that the
command line, the learned pricing (``drl/``) and the scheme comparisons build on.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .diagonalisation import solve_epec
from .options import CertificateOptions, LeaderStep
from .results import GameResult, GameStatus

__all__ = ["ScenarioSolution", "solve_scenario", "batch_response", "batch_responses", "batch_starts",
           "StartRequest", "solve_start_requests"]

#: pairs (markets x MUs x MSPs) per call of the batched follower solver: bounds its memory
#: (about 40 float64 tensors of this size live in one Newton step, ~1.3 GB at 4M)
_BATCH_PAIRS = 1 << 22


@dataclass(frozen=True)
class ScenarioSolution:
    """The EPEC of one scenario.

    Attributes
    ----------
    scenario : models.Scenario
    result : GameResult
        The solve (status, message, certificate, history, timings).
    model : pyomo ConcreteModel
        The game (:func:`models.build_game`), the solution loaded into it when ``ok``.
    R : ndarray (M,) or None
        The MSPs' rewards at the equilibrium (None unless ``ok``).
    f : ndarray (N, M) or None
        The MUs' CPU allocations in GHz at the equilibrium (None unless ``ok``).
    numpy_kkt : models.FollowerKKTResidual or None
        The followers' KKT residual from the independent numpy checker (None unless ``ok``).
    """

    scenario: Any
    result: GameResult
    model: Any
    R: np.ndarray | None = None
    f: np.ndarray | None = None
    numpy_kkt: Any = None

    @property
    def ok(self) -> bool:
        """The solve ended certified (``result.ok``)."""
        return self.result.ok


def batch_response(scenario: Any) -> Callable[[list], tuple[np.ndarray, np.ndarray]]:
    """The MSPs' utilities at the MUs' equilibrium for a batch of reward profiles, for the
    certificate's deviation scan (:func:`epec.solve_epec`'s ``batch_response``).

    ``respond(points)``, each point a list of one array ``[R_m]`` per MSP, returns ``(V, solved)``:
    ``V`` (B, M) from :func:`models.batch_followers.market_utilities` at the equilibrium of
    :func:`models.batch_followers.solve_followers` (semismooth Newton, all markets at once, from
    even splits), ``solved`` (B,) where it reached its natural KKT residual 1e-12 (far inside the
    certificate's ``kkt_tol``); the certificate solves the others by Newton on the Pyomo game.
    """
    from models.batch_followers import Coefficients

    cf = Coefficients.of(scenario)

    def respond(points: list) -> tuple[np.ndarray, np.ndarray]:
        return _market_values(cf, _rewards_of(points))

    respond.coefficients = cf  # type: ignore[attr-defined]  (batch_responses stacks markets by it)
    return respond


def batch_responses(requests: list[tuple[Callable, list]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Several batch engines' requests in as few calls as possible: ``[(respond, points), ...]``
    (each ``respond`` from :func:`batch_response`) -> each request's ``respond(points)``. The
    markets of requests whose scenarios share their sizes, mechanism and ``eps0`` (a sweep of
    any other field) are stacked into one batch (:class:`models.batch_followers.Coefficients`
    per market, ``lambda`` too) and solved by one :func:`models.batch_followers.solve_followers`; the others are
    solved by their own engine. Each market is solved on its own, so the answers are those of the
    separate calls. :func:`epec.certify_together.certify_prepared`'s ``engine_many``."""
    out: list[Any] = [None] * len(requests)
    groups: dict[tuple, list[int]] = {}
    for k, (respond, points) in enumerate(requests):
        cf = getattr(respond, "coefficients", None)
        if cf is None or not points:
            out[k] = respond(points)
            continue
        groups.setdefault(_stack_key(cf), []).append(k)
    for ks in groups.values():
        R = [_rewards_of(requests[k][1]) for k in ks]
        sizes = [len(r) for r in R]
        V_all, ok_all = _market_values(_stacked([requests[k][0].coefficients for k in ks], sizes), np.concatenate(R))
        for k, s in zip(ks, _slices(sizes)):
            out[k] = (V_all[s], ok_all[s])
    return out


def _rewards_of(points: list) -> np.ndarray:
    """The reward profiles ``R`` (B, M) of decision profiles (one array ``[R_m]`` per MSP each)."""
    return np.array([[float(np.asarray(a, dtype=float).ravel()[0]) for a in pt] for pt in points], dtype=float)


def _market_values(cf: Any, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(V (B, M), solved (B,))``: the MSPs' utilities at the followers' equilibrium of each market
    ``R`` (B, M) of ``cf`` (:func:`_solved_in_chunks`, from even splits), and where it was reached."""
    from models.batch_followers import market_utilities

    parts = _solved_in_chunks(cf, R, None, lambda c, Rk, eq: (market_utilities(c, Rk, eq.iom).numpy(),
                                                              eq.converged.numpy()))
    return (np.concatenate([v for v, _ in parts]).reshape(len(R), -1),
            np.concatenate([ok for _, ok in parts]).reshape(len(R)))


def _stack_key(cf: Any) -> tuple:
    """What the markets of several scenarios must share to be stacked into one batch."""
    return cf.shape, cf.mechanism, cf.eps0


def _stacked(cfs: list, sizes: list[int]) -> Any:
    """One :class:`models.batch_followers.Coefficients` per market: ``sizes[k]`` markets of
    scenario ``cfs[k]`` each, in order (the scenarios share :func:`_stack_key`)."""
    import torch

    from models.batch_followers import Coefficients

    N, M = cfs[0].shape
    rep = lambda name: torch.cat([getattr(c, name).expand(b, N, M) for c, b in zip(cfs, sizes)])  # noqa: E731
    F = torch.cat([c.F.expand(b, N) for c, b in zip(cfs, sizes)])
    lam = torch.cat([c.lam.expand(b, M) for c, b in zip(cfs, sizes)])
    return Coefficients(Q=rep("Q"), alpha=rep("alpha"), beta=rep("beta"), e=rep("e"), F=F, lam=lam,
                        eps0=cfs[0].eps0, mechanism=cfs[0].mechanism)


def _slices(sizes: list[int]) -> list[slice]:
    """The consecutive rows of each part of a stacked batch, ``sizes`` rows each."""
    ends = np.cumsum([0] + list(sizes))
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


@dataclass(frozen=True)
class StartRequest:
    """The random starts of one uniqueness check, drawn but not solved yet (``draw`` of
    :func:`batch_starts`'s hook; :func:`solve_start_requests` solves several at once).

    Attributes
    ----------
    coefficients : models.batch_followers.Coefficients
        The scenario's markets (one, shared by the starts).
    R : ndarray (count, M)
        The MSPs' rewards, the same for every start.
    f0 : ndarray (count, N, M)
        The random splits of the budgets the starts solve from.
    free_vars : sequence of (n, m, var)
        The hook's free allocation Vars (each hint's names).
    """

    coefficients: Any
    R: np.ndarray
    f0: np.ndarray
    free_vars: Sequence[tuple[int, int, Any]]

    def hints(self, f: np.ndarray, ok: np.ndarray) -> list:
        """Each start's hint ``[(var, f_nm), ...]`` from the solved allocations ``f`` (count, N,
        M); None where the market was not solved (``ok`` False)."""
        return [[(v, float(f[k][n, m])) for n, m, v in self.free_vars] if ok[k] else None for k in range(len(f))]


def solve_start_requests(requests: Sequence[StartRequest]) -> list[list]:
    """The hints of several uniqueness checks' starts (:class:`StartRequest`, from the hooks of
    :func:`batch_starts`), each request's list as its hook's own call would give: the markets of
    requests whose scenarios share their sizes, mechanism and ``eps0`` stacked (one
    :class:`models.batch_followers.Coefficients` per market, as :func:`batch_responses` does) and
    solved by one :func:`models.batch_followers.solve_followers` from their random splits. Each
    market is solved on its own. :func:`epec.certify_together.certify_prepared` solves the starts
    of all its points by one call."""
    out: list[Any] = [None] * len(requests)
    groups: dict[tuple, list[int]] = {}
    for k, req in enumerate(requests):
        groups.setdefault(_stack_key(req.coefficients), []).append(k)
    for ks in groups.values():
        sizes = [len(requests[k].R) for k in ks]
        cf = (requests[ks[0]].coefficients if len(ks) == 1
              else _stacked([requests[k].coefficients for k in ks], sizes))
        parts = _solved_in_chunks(cf, np.concatenate([requests[k].R for k in ks]),
                                  np.concatenate([requests[k].f0 for k in ks]),
                                  lambda c, Rk, eq: (eq.f.numpy(), eq.converged.numpy()))
        N, M = cf.shape
        f = np.concatenate([a for a, _ in parts]).reshape(sum(sizes), N, M)
        ok = np.concatenate([b for _, b in parts]).reshape(sum(sizes))
        for k, s in zip(ks, _slices(sizes)):
            out[k] = requests[k].hints(f[s], ok[s])
    return out


def batch_starts(scenario: Any, free_vars: Sequence[tuple[int, int, Any]]) -> Callable[[list, Any, int], list]:
    """The MUs' equilibria from random starts, several at once, for the certificate's uniqueness
    check (:func:`epec.solve_epec`'s ``batch_starts``).

    ``starts(decisions, rng, count)``, ``decisions`` a list of one array ``[R_m]`` per MSP, draws
    ``count`` random feasible splits of every MU's budget (as :func:`solve_scenario`'s
    ``follower_start`` draws one: a Dirichlet split of ``F_n`` over the MSPs and a share kept) and
    solves the markets from them in one :func:`models.batch_followers.solve_followers` call;
    each start's hint is ``[(var, f_nm), ...]`` over ``free_vars`` (``(n, m, var)``: the game's
    free allocation Vars, of the model the hint is for), or None where the market did not reach
    its natural KKT residual 1e-12.

    The hook's deferred form (the uniqueness starts of several points solved in one call,
    :func:`epec.certify_together.certify_prepared`): ``starts.draw(decisions, rng, count)`` makes
    the same random draws and returns them unsolved (:class:`StartRequest`);
    ``starts.solve_many`` is :func:`solve_start_requests`. ``starts(decisions, rng, count)`` is
    ``starts.solve_many([starts.draw(decisions, rng, count)])[0]``."""
    from models.batch_followers import Coefficients

    cf = Coefficients.of(scenario)
    N, M = scenario.n_mu, scenario.n_msp
    F = np.asarray(scenario.F, dtype=float)
    free = tuple(free_vars)

    def draw(decisions: list, rng: Any, count: int) -> StartRequest:
        R = np.array([float(np.asarray(d, dtype=float).ravel()[0]) for d in decisions], dtype=float)
        f0 = rng.dirichlet(np.ones(M + 1), size=(count, N))[..., :M] * F[None, :, None]
        return StartRequest(cf, np.tile(R, (count, 1)), f0, free)

    def starts(decisions: list, rng: Any, count: int) -> list:
        return solve_start_requests([draw(decisions, rng, count)])[0]

    starts.draw, starts.solve_many = draw, solve_start_requests  # type: ignore[attr-defined]
    return starts


def _solved_in_chunks(cf: Any, R: np.ndarray, f0: np.ndarray | None, read: Callable[[Any, Any, Any], Any]) -> list:
    """``read(cf_k, R_k, eq_k)`` of every chunk of the markets ``R`` (B, M) (and starts ``f0``
    (B, N, M), None for even splits) solved by :func:`models.batch_followers.solve_followers`, at
    most :data:`_BATCH_PAIRS` pairs a call; ``cf`` one scenario's (shared by all) or one per market
    (B, N, M), sliced with the chunk. Under one torch thread, restored after: a batch of 3x3
    systems (``torch.linalg.solve``) took 50 ms with 2 threads on the loaded 2-core machine
    (OpenMP threads waiting for a core) and 20 us with one."""
    import torch

    from models.batch_followers import SolverOptions, solve_followers

    N, M = cf.shape
    chunk = max(1, _BATCH_PAIRS // max(1, N * M))
    compact = SolverOptions(compact=True)  # a large batch (a sweep's block) sets its converged markets aside
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = []
        for a in range(0, len(R), chunk):
            s = slice(a, a + chunk)
            ck = cf.take(s)
            Rk = torch.as_tensor(R[s], dtype=cf.Q.dtype)
            fk = None if f0 is None else torch.as_tensor(f0[s], dtype=cf.Q.dtype)
            out.append(read(ck, Rk, solve_followers(ck, Rk, f0=fk, options=compact)))
        return out
    finally:
        torch.set_num_threads(threads)


def _follower_solvers(scenario: Any, model: Any) -> dict[str, Callable]:
    """:func:`solve_scenario`'s followers' solvers for :func:`epec.solve_epec` (``follower_start``,
    ``batch_response``, ``batch_starts``), their hints over the free allocation Vars of ``model``
    (the game of this call: a workspace's model is reused, moved to each scenario)."""
    from models.equilibrium import follower_equilibrium

    free = [(n, m) for n in model.MU for m in model.MSP if not model.mu[n].f[m].fixed]

    def numpy_start(decisions: list, rng: np.random.Generator | None = None) -> list | None:
        """The followers' equilibrium from the numpy best-response solver, for the Newton
        response to start from where its own starts fail (Newton's cold start, a continuation
        in the smoothing, lost its way on a few corners of the model's range: tiny energy
        prices, reward caps of 0); with ``rng``, from a random feasible split of every budget
        (the certificate's uniqueness starts)."""
        R = np.array([float(d[0]) for d in decisions])
        f0 = None
        if rng is not None:
            w = rng.dirichlet(np.ones(scenario.n_msp + 1), size=scenario.n_mu)[:, :scenario.n_msp]
            f0 = w * scenario.F[:, None]
        eq = follower_equilibrium(scenario, R, f0=f0)
        return [(model.mu[n].f[m], eq.f[n, m]) for n, m in free] if eq.converged else None

    return {"follower_start": numpy_start, "batch_response": batch_response(scenario),
            "batch_starts": batch_starts(scenario, [(n, m, model.mu[n].f[m]) for n, m in free])}


def solve_scenario(
    scenario: Any,
    *,
    method: str = "gauss-seidel",
    mode: str = "scholtes",
    tol: float = 1e-6,
    max_iter: int = 50,
    damping: float = 1.0,
    grid: int = 41,
    certify: bool = True,
    leader_step: LeaderStep | str = LeaderStep.IMPLICIT,
    callback: Callable[[int, Any, float], Any] | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    R0: Any = None,
    f0: Any = None,
    workspace: Any = None,
    **epec_options: Any,
) -> ScenarioSolution:
    """Build the game of ``scenario``, solve its EPEC with :func:`epec.solve_epec` and read the
    equilibrium back.

    Parameters
    ----------
    scenario : models.Scenario
    method, mode, tol, max_iter, damping, leader_step, callback, progress
        As :func:`epec.solve_epec` (defaults: Gauss-Seidel, Scholtes, 1e-6, 50 sweeps, no
        damping, implicit leader steps).
    grid : int, default 41
        Deviation-grid points per MSP in the certificate (:class:`epec.CertificateOptions`, with
        ``max_failed=0.5``: the MUs' game always has an equilibrium, so a failed evaluation is
        the solver's; a ``certificate=`` keyword replaces both).
    certify : bool, default True
    R0, f0 : arrays (M,) and (N, M), optional
        The start profile: the MSPs' rewards the diagonalisation starts from and the MUs' allocation
        (GHz) their first response starts from (:func:`models.build_game`; defaults ``Rmax / 2`` and
        even splits). A continuation (:func:`epec.sweep`) passes the previous point's equilibrium.
    workspace : epec.Workspace, optional
        Reuse one game across calls (a sweep's points): the game is built with its numbers as
        mutable Params (``build_game(parametric=True)``) once, moved to each ``scenario`` of the
        same structure (:func:`models.game.update_game`), and its transformed, compiled form kept
        in the workspace (:func:`epec.solve_epec`'s ``workspace``); a scenario of another
        structure builds anew. The returned ``model`` is then the workspace's, changed by the
        next call.
    **epec_options
        Any other keyword of :func:`epec.solve_epec`. The followers' own solvers are passed by
        default (``follower_start``, ``batch_response`` from :func:`batch_response`, ``batch_starts``
        from :func:`batch_starts`); ``None`` turns one off.

    Returns
    -------
    ScenarioSolution
        ``R``, ``f`` and ``numpy_kkt`` are filled when the solve is ``ok``: certified, and the
        followers' KKT residual from the independent numpy checker within the certificate's
        ``kkt_tol`` (otherwise the status is ``not_certified`` and the message says why).
    """
    from models.equilibrium import follower_kkt_residual
    from models.game import allocations, build_game, rewards, same_structure, update_game

    if workspace is None:
        model = build_game(scenario, R0=R0, f0=f0)
    else:
        model = getattr(workspace, "scenario_model", None)
        if model is not None and same_structure(model, scenario):
            update_game(model, scenario, R0=R0, f0=f0)
        else:
            model = workspace.scenario_model = build_game(scenario, R0=R0, f0=f0, parametric=True)
        epec_options["workspace"] = workspace
    epec_options = {"certificate": CertificateOptions(grid=grid, max_failed=0.5),
                    **_follower_solvers(scenario, model), **epec_options}
    res = solve_epec(
        model, leaders=[model.msp], followers=[model.mu], method=method, mode=mode, damping=damping,
        tol=tol, max_iter=max_iter, certify=certify, leader_step=LeaderStep(leader_step), callback=callback,
        progress=progress, **epec_options,
    )
    if not res.ok:
        return ScenarioSolution(scenario, res, model)
    R, f = rewards(model), allocations(model)
    check = follower_kkt_residual(scenario, R, f)
    kkt_tol = epec_options["certificate"].kkt_tol
    if not check.max <= kkt_tol:  # the independent check is enforced like the certificate
        res = dataclasses.replace(res, ok=False, status=GameStatus.NOT_CERTIFIED,
                                  message=f"the independent numpy check of the followers' KKT conditions "
                                          f"fails: residual {check.max:.3g} > kkt_tol {kkt_tol:g}")
        return ScenarioSolution(scenario, res, model)
    return ScenarioSolution(scenario, res, model, R, f, check)
