"""Certified equilibrium paths: the EPEC of a scenario swept over one parameter (or two), by
continuation, with the sensitivities of the equilibrium at every certified point.

A sweep is one loop per *path* (the values of ``param`` in order; a second parameter ``param2``
gives one independent path per value of it). Each point is the ordinary solve,
:func:`epec.solve_scenario`, started from the previous point's equilibrium moved along its
tangent (the first-order predictor ``R + dR/dtheta * dtheta``) and corrected by chord Newton on
the equilibrium conditions ``G_I(R, theta) = 0`` with the last smooth point's ``dG_I/dR_I``
(the predictor-corrector continuation of homotopy codes): the diagonalisation then starts at
the equilibrium and confirms it in one sweep. The game is built and compiled once per path (its
numbers are mutable Params, :class:`epec.Workspace`), and up to ``together`` consecutive points
are solved first and then certified together (:mod:`epec.certify_together`): every point is
certified exactly as alone. A point whose warm start does not end certified is solved again
cold; a point that ends uncertified is marked, never interpolated, and the next point of the path
starts cold.

Sensitivities (:func:`sensitivities`) and the corrector follow from the implicit function
theorem on the equilibrium conditions (:mod:`epec.sensitivity`); a point where the followers'
active set changes is a ``kink``, reported with its reason and no derivative.

Parameters (:data:`PARAMETERS`): any field of :class:`models.Scenario` with a number (an array
field takes one value broadcast to its shape: ``rho = 0.5`` for every MU); the IoM weights keep
their sum 1 (sweeping ``w_acc`` rescales ``w_amt`` and ``w_val`` in proportion); ``n_mu`` and
``n_msp`` redraw the scenario (:func:`apply_parameter`; :mod:`epec.sweep_params`).

The unit of work is :func:`sweep_path`: one pure function of plain data (the scenario as a dict,
the values, the options as a dict, the points already computed) returning plain records, so
paths run in-process or as Ray tasks with the same results (``benchmarks/`` maps them).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from models.errors import InputError
from models.scenario import clip_rewards

from .sensitivity import corrected_start, outcome, sensitivities
from .sweep_params import DISCRETE, PARAMETERS, SweepOptions, apply_parameter, check_values

_outcome = outcome  # the name the tests and older callers use

__all__ = ["PARAMETERS", "SweepOptions", "apply_parameter", "check_values", "sensitivities", "sweep",
           "sweep_path", "path_tasks"]


# ---------------------------------------------------------------------------- one point
def _solve(sc: Any, opts: SweepOptions, R0: Any = None, f0: Any = None, workspace: Any = None,
           certify: bool = True) -> Any:
    from .options import GlobalOptions
    from .scenario import solve_scenario

    return solve_scenario(sc, method=opts.method, mode=opts.mode, tol=opts.tol, max_iter=opts.max_iter,
                          grid=opts.grid, leader_step=opts.leader_step, R0=R0, f0=f0, workspace=workspace,
                          certify=certify, global_search=GlobalOptions(moves=opts.global_moves, starts=opts.starts))


# ---------------------------------------------------------------------------- one path
def _start(prev: dict, sc: Any, value: float, predict: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The continuation's start at ``value`` from the previous certified point ``prev``: its
    equilibrium, moved along its tangent when it has one and ``predict`` (projected on the boxes)."""
    R, f = np.asarray(prev["rewards"], dtype=float), np.asarray(prev["allocations"], dtype=float)
    kind = "previous"
    sens = prev.get("sensitivity") or {}
    if predict and sens.get("status") == "ok":
        dt = value - prev["value"]
        R = R + dt * np.asarray(sens["dR"], dtype=float)
        f = f + dt * np.asarray(sens["df"], dtype=float)
        kind = "predicted"
    R = clip_rewards(R, sc.Rmax)
    f = np.maximum(f, 0.0)
    over = f.sum(1) / sc.F
    f = np.where(over[:, None] > 1, f / np.maximum(over, 1.0)[:, None], f)
    return R, f, kind


def _point(sc: Any, name: str, value: float, prev: dict | None, opts: SweepOptions,
           reuse: dict | None = None) -> dict[str, Any]:
    """One point of a path: the certified solve (warm from ``prev`` by continuation) and its
    sensitivities. ``reuse`` (continuation only): the path's prepared games, kept between points
    (the game's numbers are Params: built and compiled once per path, :func:`sweep_path`)."""
    t0 = time.perf_counter()
    reuse = {} if reuse is None else reuse
    workspace = reuse.get("workspace")
    rec: dict[str, Any] = {"value": value}
    warm_note = ""
    try:
        sol = None
        if opts.continuation and prev is not None and prev.get("ok") \
                and np.shape(prev["allocations"]) == (sc.n_mu, sc.n_msp):
            R0, f0, kind = _start(prev, sc, value, opts.predict)
            sol = _solve(sc, opts, R0, f0, workspace)
            if not sol.ok:
                warm_note = f"warm start ({kind}) ended {sol.result.status.value}: {sol.result.message}"
                sol, kind = None, "cold (warm start failed)"
        else:
            kind = "cold"
        if sol is None:
            sol = _solve(sc, opts, workspace=workspace)
    except Exception as err:  # recorded, never interpolated: the sweep goes on
        rec.update(ok=False, status="error", message=f"{type(err).__name__}: {err}", start="cold",
                   seconds=time.perf_counter() - t0, sensitivity={"status": "not_certified"})
        return rec
    res = sol.result
    rec.update(ok=res.ok, status=res.status.value, message=res.message, start=kind, sweeps=res.sweeps,
               solve_seconds=res.seconds, timings=dict(res.timings))
    if warm_note:
        rec["warm_start_failed"] = warm_note
    if res.certificate is not None:
        rec["max_deviation_gain"] = res.certificate.max_deviation_gain
        rec["certificate_holds"] = res.certificate.holds
    if res.ok:
        _add_point(rec, sc, name, value, sol.R, sol.f, opts, reuse)
    else:
        rec.update(sensitivity={"status": "not_certified"}, sensitivity_seconds=0.0)
    rec["seconds"] = time.perf_counter() - t0
    return rec


def _add_point(rec: dict, sc: Any, name: str, value: float, R: np.ndarray, f: np.ndarray, opts: SweepOptions,
               reuse: dict) -> None:
    """A certified point's outcome, allocation and sensitivities (and their seconds) into ``rec``."""
    rec.update(outcome(sc, R, f))
    rec["allocations"] = f.tolist()
    ts = time.perf_counter()
    rec["sensitivity"] = sensitivities(sc, name, value, R, f, opts, reuse) if opts.sensitivities else {"status": "off"}
    rec["sensitivity_seconds"] = time.perf_counter() - ts


def _tentative(sc: Any, name: str, value: float, prev: dict, anchor: dict | None, opts: SweepOptions,
               reuse: dict) -> tuple | None:
    """One point of a block (:func:`_block`): the continuation's solve without its certificate,
    the certificate prepared at the point (:func:`epec.certify_together.prepare_point`), and the
    sensitivities (the next point's predictor); ``(record, prepared)``, or None where the point
    must be solved alone (the solve did not stop at a point, or its certificate cannot wait)."""
    from models.game import allocations, rewards

    from .certify_together import prepare_point
    from .options import CertificateOptions
    from .results import GameStatus

    t0 = time.perf_counter()
    R0, f0, kind = _start(prev, sc, value, opts.predict)
    got = corrected_start(sc, R0, f0, anchor, reuse)
    if got is not None:
        (R0, f0), kind = got, "corrected"
    elif kind == "predicted":
        # the corrector cannot contract: the path bends here (a kink, where an MU's budget starts
        # or stops binding) and the tangent overshoots; the previous equilibrium is the better
        # start (measured on 50 points of rho on default: 2 sweeps at the kinks instead of 2-3)
        R0, f0, kind = _start(prev, sc, value, predict=False)
    sol = _solve(sc, opts, R0, f0, reuse["workspace"], certify=False)
    res = sol.result
    if res.status is not GameStatus.UNCERTIFIED:
        return None
    prep = prepare_point(reuse["workspace"].game, CertificateOptions(grid=opts.grid, max_failed=0.5))
    if prep is None:
        return None
    R, f = rewards(sol.model), allocations(sol.model)
    rec: dict[str, Any] = {"value": value, "ok": True, "status": GameStatus.CONVERGED.value, "message": "",
                           "start": kind, "sweeps": res.sweeps, "solve_seconds": res.seconds,
                           "timings": dict(res.timings)}
    _add_point(rec, sc, name, value, R, f, opts, reuse)
    rec["seconds"] = time.perf_counter() - t0
    return rec, prep, sc, R, f


def _block(points: list[tuple[Any, float]], name: str, prev: dict, anchor: dict | None, opts: SweepOptions,
           reuse: dict) -> list[dict]:
    """Consecutive points of a path, each solved by continuation from the last without its
    certificate, then all certified together (:func:`epec.certify_together.certify_prepared`);
    the records of the leading points that end certified (the certificate, and the independent
    numpy check of the followers' KKT conditions, as :func:`epec.solve_scenario` enforces it).
    The first point that does not is left to the caller (solved alone), and those after it too."""
    from models.equilibrium import follower_kkt_residual

    from .certify_together import certify_prepared
    from .scenario import batch_responses

    pending = []
    for sc, value in points:
        got = _tentative(sc, name, value, prev, anchor, opts, reuse)
        if got is None:
            break
        pending.append(got)
        prev = got[0]
        anchor = prev if prev["sensitivity"].get("status") == "ok" else anchor
    if not pending:
        return []
    certs = certify_prepared([p[1] for p in pending], batch_responses)
    out = []
    for (rec, prep, sc, R, f), cert in zip(pending, certs):
        if cert is None or not cert.holds or not follower_kkt_residual(sc, R, f).max <= prep.options.kkt_tol:
            break
        rec["max_deviation_gain"] = cert.max_deviation_gain
        rec["certificate_holds"] = cert.holds
        rec["timings"]["certificate"] = cert.seconds
        rec["seconds"] += cert.seconds - prep.scan.seconds  # its preparation is in the solve's seconds already
        rec["certified_together"] = len(pending)
        out.append(rec)
    return out


def path_tasks(scenario: Any, param: str, values: Sequence[float], param2: str | None = None,
               values2: Sequence[float] | None = None, options: SweepOptions = SweepOptions(),
               done: Sequence[dict] = ()) -> list[dict[str, Any]]:
    """The plain-data tasks of a sweep, one per path (one in all without ``param2``), each with
    the points of it already in ``done`` (a resumed run). Paths already complete are left out."""
    outer = [None] if param2 is None else list(values2)
    by_path: dict[int, list[dict]] = {}
    for rec in done:
        by_path.setdefault(int(rec["path"]), []).append(rec)
    tasks = []
    for j, v2 in enumerate(outer):
        have = sorted(by_path.get(j, []), key=lambda r: r["i"])
        if len(have) >= len(values):
            continue
        tasks.append({"scenario": scenario.to_dict(), "param": param, "values": [float(v) for v in values],
                      "param2": param2, "value2": None if v2 is None else float(v2), "path": j,
                      "options": options.to_dict(), "done": have})
    return tasks


def sweep_path(task: dict[str, Any], on_point: Callable[[dict], Any] | None = None) -> list[dict[str, Any]]:
    """One path of a sweep: the points of ``task["values"]`` in order, each by continuation from
    the last (the unit of work: plain data in, plain records out; the same in-process and on Ray).

    ``task`` as :func:`path_tasks` makes it; the points in ``task["done"]`` are kept and the path
    goes on after the last of them, exactly as it would have (the continuation's start is read
    from the records). ``on_point(record)`` after every new point (in-process only).
    """
    from models.scenario import scenario_from_dict

    opts = SweepOptions(**task["options"])
    name, name2, v2 = task["param"], task.get("param2"), task.get("value2")
    base = scenario_from_dict(task["scenario"])
    values = task["values"]
    n = len(values)
    records = [dict(r) for r in task.get("done", ())]
    prev = records[-1] if records else None
    reuse: dict[str, Any] = {}  # the path's prepared games (continuation)
    if opts.continuation:
        from .game import Workspace

        reuse["workspace"] = Workspace()

    def scenario_at(value: float) -> Any:
        # a discrete parameter redraws the scenario: it goes first, so the other one stays set
        if name2 is None:
            return apply_parameter(base, name, value)
        if name2 in DISCRETE:
            return apply_parameter(apply_parameter(base, name2, v2), name, value)
        return apply_parameter(apply_parameter(base, name, value), name2, v2)

    def keep(i: int, rec: dict) -> None:
        rec = {"index": task["path"] * n + i, "path": task["path"], "i": i,
               "params": {name: values[i], **({name2: v2} if name2 is not None else {})}, **rec}
        records.append(rec)
        if on_point is not None:
            on_point(rec)

    i, size = len(records), opts.together
    while i < n:
        if opts.continuation and opts.together > 1 and prev is not None and prev.get("ok") \
                and name not in DISCRETE:
            block = [(scenario_at(values[j]), values[j]) for j in range(i, min(n, i + size))]
            anchor = next((r for r in reversed(records) if (r.get("sensitivity") or {}).get("status") == "ok"), None)
            certified = _block(block, name, prev, anchor, opts, reuse)
            for rec in certified:
                keep(i, rec)
                prev, i = records[-1], i + 1
            # a block that certifies every point lets the next one grow back to ``together``; after
            # one that does not, the next starts at 2 (the points solved after a failure are lost)
            size = min(opts.together, 2 * size) if len(certified) == len(block) else 2
            if len(certified) == len(block):
                continue  # the next block; else the first point it did not certify is solved alone
        rec = _point(scenario_at(values[i]), name, values[i], prev, opts, reuse)
        keep(i, rec)
        prev, i = records[-1], i + 1
    return records


Mapper = Callable[[Callable[[dict], list], Iterable[dict]], Iterable[list]]


def sweep(scenario: Any, param: str, values: Sequence[float], *, param2: str | None = None,
          values2: Sequence[float] | None = None, options: SweepOptions = SweepOptions(),
          done: Sequence[dict] = (), on_point: Callable[[dict], Any] | None = None,
          on_path: Callable[[list], Any] | None = None, map_paths: Mapper | None = None) -> list[dict[str, Any]]:
    """The certified equilibria of ``scenario`` over ``param`` (and ``param2``), by continuation
    along each path (module doc).

    Parameters
    ----------
    scenario : models.Scenario
    param, values
        The parameter of each path and its values in order (:data:`PARAMETERS`); the
        sensitivities are with respect to it.
    param2, values2
        Optional second parameter: one independent path per value of it (each starts cold).
    options : SweepOptions
    done : records
        Points already computed (a resumed run): kept, and their paths go on after them.
    on_point : callable, optional
        ``on_point(record)`` after every point computed in this process (progress, checkpoint).
    on_path : callable, optional
        ``on_path(records)`` after every path (with ``map_paths``, the only news of a remote path).
    map_paths : callable, optional
        ``map_paths(sweep_path, tasks)`` -> the paths' records in the order of ``tasks`` (e.g.
        Ray tasks); default in-process, one path after the other.

    Returns
    -------
    list of dict
        Every point's record, in the order of the grid (``index = path * len(values) + i``).
    """
    if param2 is not None:
        if param2 == param:
            raise InputError("param2", f"must differ from param ({param})")
        values2 = check_values(scenario, param2, values2 or [])
    values = check_values(scenario, param, values)
    tasks = path_tasks(scenario, param, values, param2, values2, options, done)
    kept = {int(t["path"]) for t in tasks}
    out = {r["index"]: r for r in done if int(r["path"]) not in kept}
    if map_paths is None:
        results: Iterable[list] = (sweep_path(t, on_point) for t in tasks)
    else:
        results = map_paths(sweep_path, tasks)
    for recs in results:
        for r in recs:
            out[r["index"]] = r
        if on_path is not None:
            on_path(recs)
    return [out[k] for k in sorted(out)]
