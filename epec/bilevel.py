"""Bilevel programs: one leader over the followers' Nash equilibrium, as one MPEC."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .best_reply import convex_everywhere, follower_replies, univariate_best
from .certificate import certify_game
from .constraints import follower_helpers
from .game import Game, expand_players, finish, make_solver
from .kkt import KKTSystem, owned_by
from .multipliers import bound_multipliers
from .options import CertificateOptions, GlobalOptions
from .modes import make_mode
from .reformulation import HomotopyResult
from .results import GameResult, GameStatus, GlobalMove

__all__ = ["solve_bilevel"]


def solve_bilevel(
    model: BlockData,
    followers: Sequence[Any],
    mode: Any = "scholtes",
    *,
    lift: bool = True,
    certify: bool = True,
    certificate: CertificateOptions = CertificateOptions(),
    solver: Any = None,
    options: Any = None,
    global_search: GlobalOptions = GlobalOptions(),
) -> GameResult:
    """Bilevel program: the leader (the model's active objective, over every unfixed Var no
    follower owns) subject to the followers' Nash equilibrium, as one MPEC (Dempe,
    *Foundations of Bilevel Programming*, 2002, ch. 5; Luo, Pang & Ralph, 1996).

    ``min_x F(x, y) s.t. G(x) <= 0, y solves the followers' KKT system``, with the
    complementarity reformulated by ``mode``. ``F`` and ``G`` may use the multiplier of a
    follower's constraint through :func:`epec.multiplier` (the shadow price of the follower's
    optimal value; its placeholder holds the value after the solve). Parameters as
    :func:`solve_nash`, plus ``certify`` / ``certificate`` (see :func:`epec.certify`, docs/model.md
    section 5). ``G(x) <= 0``: the model-level constraints over the leader's Vars, kept by the
    MPEC and by the certificate's deviation search; one that also uses a follower's variables
    (``G(x, y) <= 0``) is kept by the MPEC, and the certificate admits only deviations that
    keep it at the followers' response; a Var defined by the followers' variables through an
    equality (a price ``p == a - Q(y)``) is substituted, not a decision (see
    :mod:`epec.constraints`).

    Ipopt finds a local solution of the MPEC; the certificate scans the leader's whole range.
    ``ok`` only when it holds: when the scan finds a better decision, the MPEC is solved again
    from there (up to ``global_search.moves`` times, each recorded in ``moves``), and a point
    whose certificate still fails is ``NOT_CERTIFIED`` with the reasons in the message.
    ``certify=False`` gives ``UNCERTIFIED`` (the point is loaded, but not ok).

    A follower that is not at its best reply (a nonconvex follower at a KKT point that is not
    its global optimum; the certificate's check (d)) is solved over its global replies: the
    better reply ``y^`` found becomes a cut ``f_j(x, y_j) <= f_j(x, y^)`` (its objective in
    minimisation form, every other variable free) and the MPEC is solved again from ``y^``
    (each such restart is one of the ``global_search.moves``, recorded in ``moves``). The cut
    keeps only the leader's points where the follower does at least as well as ``y^`` would, as
    the value-function cuts of Mitsos, Lemonidis & Barton (*J. Glob. Optim.* 42, 2008) do; it is
    valid, and added, only for a follower whose own constraints involve nothing but its own
    decisions (``y^`` then stays feasible for every ``x``); otherwise the MPEC only restarts.

    A mode whose MPEC fails (``solver_failed``) is followed by the other modes (Scholtes,
    penalty, smoothing, in that order after the one named); the result names the mode that
    answered and the failures before it.

    Degenerate followers: where the mode stops with the followers' KKT residual above
    ``certificate.kkt_tol`` (a relaxation stalls near a pair with both sides 0, two follower
    constraints active at once: Scholtes at ``t`` leaves ``~sqrt(t)``), or fails on its
    complementarity tolerance, the followers' point is polished at the leader's decision:
    Newton on their smoothed KKT system (:mod:`epec.response`), else the mode's solve with the
    leader fixed. The certificate then judges the polished point, as any other.
    """
    if not isinstance(global_search, GlobalOptions):
        raise ValueError(f"global_search: must be a GlobalOptions, got {type(global_search).__name__}")
    kwargs = dict(lift=lift, certify=certify, certificate=certificate, solver=solver, options=options,
                  global_search=global_search)
    res = _solve_bilevel(model, followers, mode, **kwargs)
    if not (_numerical_failure(res) and isinstance(mode, str) and mode in _NEXT_MODES):
        return res
    # the mode's MPEC failed (s_1989_01: Scholtes' restoration phase failed on an LP bilevel),
    # or stopped at a point that misses only by its accuracy (sa_1981_01: Scholtes' sqrt(t)
    # left the leader's G(x, y) <= 0 broken by 3e-5): the next modes, as a user would try
    # them, each failure named in the message
    t0, failures = time.perf_counter() - res.seconds, [f"{mode}: {res.message}"]
    for alt in _NEXT_MODES[mode]:
        nxt = _solve_bilevel(model, followers, alt, **kwargs)
        if not _numerical_failure(nxt):
            note = f"mode {alt} (after {'; '.join(failures)})"
            return dataclasses.replace(nxt, message=f"{nxt.message}; {note}" if nxt.message else note,
                                       seconds=time.perf_counter() - t0)
        failures.append(f"{alt}: {nxt.message}")
    # none did better: the first mode's answer stands (its point is loaded again)
    res = _solve_bilevel(model, followers, mode, **kwargs) if res.status.stopped else res
    return dataclasses.replace(res, message="; ".join(failures), seconds=time.perf_counter() - t0)


def _numerical_failure(res: GameResult) -> bool:
    """The solve failed, or its certificate fails only on accuracy: a broken constraint, the
    followers' KKT residual (a point another mode may well certify)."""
    if res.status is GameStatus.SOLVER_FAILED:
        return True
    cert = res.certificate
    return (res.status is GameStatus.NOT_CERTIFIED and cert is not None and bool(cert.reasons)
            and all("is broken" in r or "breaks its constraint" in r or "KKT residual" in r for r in cert.reasons))


#: the modes tried, in order, after a named mode's MPEC failed
_NEXT_MODES = {"scholtes": ("penalty", "smoothing"), "penalty": ("scholtes", "smoothing"),
               "smoothing": ("scholtes", "penalty")}


def _solve_bilevel(model: BlockData, followers: Sequence[Any], mode: Any, *, lift: bool, certify: bool,
                   certificate: CertificateOptions, solver: Any, options: Any,
                   global_search: GlobalOptions) -> GameResult:
    """:func:`solve_bilevel` with one mode."""
    t0 = time.perf_counter()
    game = _bilevel_game(model, followers, mode, lift, solver, options)
    # Start the MPEC from the followers' equilibrium at the initial leader point.
    search = _BilevelSearch(game, certificate, global_search, [game.respond(None, warm=False)])
    search.run(certify)
    if search.status is GameStatus.CONVERGED:
        _exact_reply(game, certificate)
    iters = sum(r.iterations for r in search.runs)
    return finish(game, search.status, search.message, iters, 1, t0, search.runs, certificate=search.cert,
                  cert_seconds=search.cert_s, moves=tuple(search.moves))


def _bilevel_game(model: BlockData, followers: Sequence[Any], mode: Any, lift: bool, solver: Any,
                  options: Any) -> Game:
    """The :class:`Game` of one leader: the model's one active objective outside the followers,
    over every unfixed Var that no follower owns and that is neither a multiplier
    (:func:`epec.multiplier`) nor a helper defined by the followers' variables."""
    followers = expand_players(followers)
    objs = [o for o in model.component_data_objects(pyo.Objective, active=True, descend_into=True)
            if not any(owned_by(o, f) for f in followers)]
    if len(objs) != 1:
        raise ValueError(f"solve_bilevel: the leader needs exactly one active Objective outside the followers, found {len(objs)}")
    named = {id(p) for p, _ in bound_multipliers(model)}  # epec.multiplier's: bound to followers
    leader_vars = [v for v in model.component_data_objects(pyo.Var, descend_into=True, sort=True)
                   if not v.fixed and id(v) not in named and not any(owned_by(v, f) for f in followers)]
    # a Var defined by the followers' variables (a price p == a - Q(y)) is a helper, substituted
    # by the Game, not a decision of the leader
    helpers = follower_helpers(model, followers, leader_vars)
    leader_vars = [v for v in leader_vars if id(v) not in helpers]
    return Game(model, followers, [("leader", leader_vars, objs[0])], make_mode(mode),
                make_solver(solver, options), lift, coupling=True)


class _Next(Enum):
    """What the bilevel search does after a refuted certificate (:meth:`_BilevelSearch.move`)."""

    STOP = "stop"  # the refuted point stands
    AGAIN = "again"  # the MPEC again from the point (a follower's cut changed it)
    DEVIATE = "deviate"  # the MPEC again from the leader's best deviation


@dataclass
class _BilevelSearch:
    """The MPEC of one leader, certified, and global moves out of refuted points: to the leader's
    best deviation, and follower cuts ``f(x, y) <= f(x, y^)`` at better replies (:func:`_reply_cut`).

    Attributes
    ----------
    game, certificate, global_search
        The game and the options.
    runs : list of HomotopyResult
        Every solve so far (the first: the followers' equilibrium at the initial leader point).
    cert, cert_s, moves, refuted
        The last certificate, the certificates' seconds, the global moves, the leader decisions
        refuted by a deviation.
    status, message
        The outcome.
    deviation : tuple or None
        (snapshot, leader's utility) of the best deviation a global move went to.
    direct : bool
        Certify the deviation as it stands, before any MPEC from it.
    """

    game: Game
    certificate: CertificateOptions
    global_search: GlobalOptions
    runs: list
    cert: Any = None
    cert_s: float = 0.0
    moves: list = dataclasses.field(default_factory=list)
    refuted: list = dataclasses.field(default_factory=list)
    status: GameStatus = GameStatus.CONVERGED
    message: str = ""
    deviation: tuple | None = None
    direct: bool = False

    def run(self, certify: bool) -> None:
        """MPEC, certificate and moves until a certified point or a stop (``status``, ``message``)."""
        game, certificate = self.game, self.certificate
        ld = game.leaders[0]
        while True:
            for v in ld.vars:
                v.unfix()
            if self.direct:
                self.direct, self.deviation = False, None
                if self._certified():
                    break
                # not certified as it stands: the MPEC from it, as after any move
                continue
            run, failed = self._mpec()
            if failed:
                self.status, self.message = GameStatus.SOLVER_FAILED, run.message
                break
            _project_leader(game, certificate.kkt_tol)
            if not certify:
                self.status, self.message = GameStatus.UNCERTIFIED, "stopped, not certified (certify=False)"
                break
            if self._certified():
                break
            cert = self.cert
            self.status, self.message = GameStatus.NOT_CERTIFIED, "certificate fails: " + "; ".join(cert.reasons)
            step = self._move(cert)
            if step is _Next.STOP:
                break
            if step is _Next.DEVIATE:
                self._deviate(cert)

    def _certified(self) -> bool:
        """Certify the model's point; True (status CONVERGED) where the certificate holds."""
        self.cert, self.cert_s = _timed_certify(self.game, self.certificate, self.cert_s)
        if self.cert.holds:
            self.status, self.message = GameStatus.CONVERGED, ""
        return self.cert.holds

    def _mpec(self) -> tuple[HomotopyResult, bool]:
        """The leader's MPEC from the model's point, polished; back to the deviation the last move
        went to where the MPEC from it ended worse. ``(run, failed)``."""
        game, certificate = self.game, self.certificate
        ld = game.leaders[0]
        run = game.mode.solve(game.data, game.solver, ld.objective, warm=self.runs[-1].ok)
        self.runs.append(run)
        polished = _polish(game, certificate.kkt_tol) if run.ok or math.isfinite(run.complementarity) else None
        if polished is not None:
            self.runs.append(polished)
        failed = not run.ok and (polished is None or not polished.ok)
        deviation = self.deviation
        if deviation is not None and (failed or ld.utility() < deviation[1] - certificate.gain_tolerance(deviation[1])):
            # the MPEC from the deviation slid to a worse point (its homotopy starts relaxed, far
            # from the warm start) or failed: the deviation itself, the followers at their
            # (global) reply there, is the better candidate, and is certified as it stands
            game.restore(deviation[0])
            self.runs.append(HomotopyResult(True, run.status, 0, 0.0, game.data.complementarity(), None, (),
                                            "kept the global move's deviation (the MPEC from it ended worse)"))
            failed = False
        self.deviation = None
        return run, failed

    def _move(self, cert: Any) -> _Next:
        """After a refuted certificate: stop (moves spent, back at a refuted point, nothing
        profitable), cut the followers' better replies and solve again, or deviate."""
        game, moves = self.game, self.moves
        ld = game.leaders[0]
        if len(moves) >= self.global_search.moves:
            return _Next.STOP
        x_now = ld.values()
        if not cert.better_replies and any(np.allclose(x_now, old, rtol=1e-6, atol=1e-9) for old in self.refuted):
            # the MPEC came back to a refuted point, and no new cut changed it: another move
            # from the same deviation would repeat the same solves
            self.message += "; the MPEC came back to a refuted point"
            return _Next.STOP
        if cert.better_replies:
            moves.append(GlobalMove(len(moves) + 1, (tuple(float(t) for t in ld.values()),), cert.utilities,
                                    cert.deviation_gains, cert.best_deviations, 0))
            for j in cert.better_replies:
                _reply_cut(game, game.kkts[j], cert.replies[j].reply)
            if not cert.profitable:  # else on to the best deviation, from the global replies' value
                self.runs.append(game.respond(None, warm=True))
                return _Next.AGAIN
        elif not cert.profitable:
            return _Next.STOP
        else:
            # refuted by a leader's deviation (a point refuted by a follower's better reply
            # changes with the cut that refutation adds: coming back to it is no repetition)
            self.refuted.append(x_now)
            x = ld.values()
            moves.append(GlobalMove(len(moves) + 1, (tuple(float(t) for t in x),), cert.utilities,
                                    cert.deviation_gains, cert.best_deviations, 0))
        return _Next.DEVIATE

    def _deviate(self, cert: Any) -> None:
        """The followers' equilibrium at the leader's best deviation (at their global replies
        there, for followers not proven convex, as the certificate evaluated it), the start of
        the next MPEC; remembered as ``deviation`` where it solved."""
        game, certificate, runs = self.game, self.certificate, self.runs
        ld = game.leaders[0]
        x_dev = [np.clip(np.asarray(cert.best_deviations[0], dtype=float), ld.lower, ld.upper)]
        runs.append(game.respond(x_dev, warm=True))
        searched = [k for k, r, ev in zip(game.kkts, cert.replies, convex_everywhere(game)) if not ev]
        if runs[-1].ok and searched:
            for k, r in zip(searched, follower_replies(searched, certificate, search=True)):
                if not r.gain <= certificate.reply_tolerance(r.utility):
                    _reply_cut(game, k, r.reply)
            runs.append(game.respond(x_dev, warm=True))
        if runs[-1].ok:
            polished = _polish(game, certificate.kkt_tol)
            if polished is not None:
                runs.append(polished)
        if runs[-1].ok and game.residual().max <= certificate.kkt_tol:
            self.deviation = (game.snapshot(), ld.utility())
            # a follower not at its best reply at the refuted point: the MPEC's KKT points
            # include the follower's local replies, whose (higher) values the MPEC prefers to
            # the deviation's real one (mb_1_1_05: each MPEC halved x, one cut at a time); the
            # deviation, evaluated at the global replies, is certified first
            self.direct = bool(cert.better_replies)


def _reply_cut(game: Game, k: KKTSystem, reply: Sequence[float]) -> bool:
    """Add follower ``k``'s cut ``f(x, y) <= f(x, y^)`` (minimisation form) to the game's model
    and load ``y^`` into its decisions (see :func:`solve_bilevel`). Returns whether the cut was
    added: not when the follower's constraints involve another variable than its own (``y^``
    may then be infeasible elsewhere and the cut would cut off solutions)."""
    from pyomo.common.modeling import unique_component_name
    from pyomo.core.expr.visitor import identify_variables, replace_expressions

    own = {id(v) for v in k.variables}
    for v, val in zip(k.variables, reply):
        v.set_value(float(val), skip_validation=True)
    if any(id(v) not in own for con in k.constraints for v in identify_variables(con.body, include_fixed=False)):
        return False
    cuts = getattr(game.work, "_epec_reply_cuts", None)
    if cuts is None:
        cuts = pyo.ConstraintList()
        game.work.add_component(unique_component_name(game.work, "_epec_reply_cuts"), cuts)
        object.__setattr__(game.work, "_epec_reply_cuts", cuts)
    obj = k.objective
    at_reply = replace_expressions(obj.expr, {id(v): float(val) for v, val in zip(k.variables, reply)},
                                   descend_into_named_expressions=True, remove_named_expressions=True)
    sign = 1.0 if obj.sense == pyo.minimize else -1.0
    cuts.add(sign * (obj.expr - at_reply) <= 0)
    # the Newton response solves the followers' KKT system without the cuts: from now on every
    # follower response (the certificate's included) is the mode's Ipopt solve, which honours them
    game._response, game._response_error = None, "reply cuts added (solve_bilevel)"
    return True


def _exact_reply(game: Game, certificate: Any) -> None:
    """A certified point's follower moved onto its exact best reply where that is known and
    unique (:func:`epec.best_reply.univariate_best`) and its KKT residual stays within
    ``kkt_tol`` there: a degenerate optimum (``y**4``) leaves the solved reply
    ~``kkt_tol**(1/3)`` off it (mb_1_1_05: 2.4e-4). Nothing changes otherwise."""
    if not (certificate.best_reply and certificate.reply_univariate and len(game.kkts) == 1):
        return
    k = game.kkts[0]
    best = univariate_best(k, certificate, wide=True)
    if best is None or len(best) != 1:
        return
    v = list(k.variables)[0]
    if v.value == best[0]:
        return
    snap = game.snapshot()
    v.set_value(best[0], skip_validation=True)
    if not game.residual().max <= certificate.kkt_tol:
        game.restore(snap)


def _project_leader(game: Game, kkt_tol: float) -> None:
    """The leader's decision onto its own constraints, where Ipopt left it outside them within
    its tolerance (bf_1982_02: ``x1 + x2 <= 2`` broken by 1e-8, and there the followers' own
    constraints had no feasible point: no follower equilibrium to certify), the followers'
    response solved again there. Nothing changes when the projection fails or the followers
    have no response at the projected decision."""
    ld = game.leaders[0]
    if ld.constraints is None:
        return
    x = ld.values()
    xp = game.feasible_start(0, x)
    if np.array_equal(xp, x):
        return
    snap = game.snapshot()
    run = game.respond([xp], warm=True)
    if not run.ok:
        game.restore(snap)
    polished = _polish(game, kkt_tol) if run.ok else None
    if polished is not None and not polished.ok:
        game.restore(snap)
    for v in ld.vars:
        v.unfix()


def _timed_certify(game: Any, certificate: Any, seconds: float) -> tuple[Any, float]:
    """The certificate of the game's current point, and ``seconds`` plus the time it took."""
    tc = time.perf_counter()
    cert = certify_game(game, certificate)
    return cert, seconds + time.perf_counter() - tc


def _polish(game: Game, kkt_tol: float) -> HomotopyResult | None:
    """The followers' exact response at the leader's current decision, when their KKT residual
    there is above ``kkt_tol`` (None when it is within it: nothing to polish). Newton on their
    smoothed KKT system from the current point (the game's :class:`epec.response.FollowerResponse`),
    else the mode's solve with the leader fixed; the leader's Vars are left free again."""
    if game.residual().max <= kkt_tol:
        return None
    x = [ld.values() for ld in game.leaders]
    resp = game.response
    t0 = time.perf_counter()
    out = None
    if resp is not None:
        game.fix_leaders(x)
        z, y = resp.read()
        r = resp.solve(z, y)
        if r.ok:
            resp.load(r.z)
            out = HomotopyResult(True, r.status, r.iterations, time.perf_counter() - t0, r.residual, None, (),
                                 "newton polish")
    if out is None:
        run = game.respond(x, warm=True)
        out = HomotopyResult(run.ok and game.residual().max <= kkt_tol, run.status, run.iterations, run.seconds,
                             run.complementarity, run.objective, run.steps, "polish: " + run.message)
    for ld in game.leaders:
        for v in ld.vars:
            v.unfix()
    return out
