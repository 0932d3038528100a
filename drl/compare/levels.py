"""The reward levels of the naive baselines, the round deadlines and the ``fixed`` frontier: the
markets alone (no FL), shared by every scheme of a comparison.

Naive baselines at a level (:class:`~drl.compare.schemes.LevelledScheme`) get theirs
before each seed's run: budget-matched, the reference scheme's mean payment per MSP over that
seed's run (so the reference runs first; :func:`budget_level`); cap-relative, ``level * Rmax``
(:func:`levels_for`).

The deadline (``--deadline``, default ``auto``) is fixed per (seed, round) and shared by every
scheme: ``auto`` is ``2 x`` the median ``Tcmp + Tup`` of MSP m's participants at the round's
full-information equilibrium (:func:`round_deadlines`); ``inf`` waits for the slowest.

The frontier (:func:`fixed_frontier`) is ``fixed`` swept over :data:`FRONTIER_LEVELS` x Rmax;
``OUT/frontier.json`` keeps it for ``--resume`` (:func:`stored_frontier`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from models.scenario import Scenario

from .cache import SharedWork, work_or_new
from .config import RECORD_VERSION, CompareConfig
from .schemes import LevelledScheme, LevelSetting

__all__ = ["FRONTIER_LEVELS", "mean_payment", "market_means", "budget_level", "levels_for", "level_current",
           "round_deadlines", "fixed_frontier", "frontier_key", "stored_frontier"]

#: the ``fixed`` levels (x Rmax) of the frontier (docs/model.md section 8)
FRONTIER_LEVELS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)

def mean_payment(rec: Mapping[str, Any]) -> np.ndarray:
    """Each MSP's mean payment over a run's rounds, (M,): a budget-matched baseline's level."""
    return np.mean([r["payment"] for r in rec["rounds"]], axis=0)


def market_means(base: Scenario, rounds: int, seed: int, R: np.ndarray, work: SharedWork | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Posting ``R`` (M,) every round of ``trajectory(base, rounds, seed)``, on the markets alone
    (no FL): each MSP's mean real total IoM and mean payment over the rounds, (M,) each.
    ``work``: the run's shared computations (:class:`~drl.compare.cache.SharedWork`)."""
    from models.iom import iom_matrix
    from models.utility import msp_payment

    work = work_or_new(work)
    traj = work.trajectory(base, rounds, seed)
    totals, pays = [], []
    for t in range(rounds):
        sc = traj.active_scenario(t)
        Rt = np.minimum(R, sc.Rmax)
        total = iom_matrix(sc, work.follower_equilibrium(sc, Rt).f).sum(0)
        totals.append(total)
        pays.append(msp_payment(sc.mechanism, Rt, total, sc.eps0))
    return np.mean(totals, axis=0), np.mean(pays, axis=0)


def budget_level(base: Scenario, rounds: int, seed: int, budget: np.ndarray, rtol: float = 1e-9,
                 max_iter: int = 20, work: SharedWork | None = None) -> np.ndarray:
    """The level ``b`` (M,) at which ``fixed`` pays ``budget`` (M,) per round on average along
    seed ``seed``'s markets: ``b <- b budget / payment(b)`` from ``b = budget``.

    Under the proportional mechanism MSP m pays ``R total / (total + eps0)``, a little less than
    ``R``; this raises ``b`` by that factor so that the budget-matched ``fixed`` spends exactly the
    reference's money (to ``rtol``). An MSP with a zero budget posts 0.
    """
    budget = np.asarray(budget, dtype=float)
    b = budget.copy()
    for _ in range(max_iter):
        _, paid = market_means(base, rounds, seed, b, work)
        if np.allclose(paid, budget, rtol=rtol, atol=0.0):
            return b
        b = np.where(paid > 0, b * budget / np.where(paid > 0, paid, 1.0), b)
        b = np.minimum(b, base.Rmax)
    return b


def levels_for(scheme: Any, base: Scenario, cfg: CompareConfig, reference_record: Mapping[str, Any] | None,
               seed: int = 0, work: SharedWork | None = None) -> np.ndarray | None:
    """The level ``b`` (M,) of a naive baseline for seed ``seed`` (None for any other scheme):
    ``cfg.level * Rmax`` (cap-relative), or the level at which ``fixed`` pays the reference's
    mean payment of that seed (budget-matched, :func:`budget_level`)."""
    if not isinstance(scheme, LevelledScheme):
        return None
    if scheme.setting is LevelSetting.CAP:
        return cfg.level * base.Rmax
    if reference_record is None:
        raise RuntimeError(f"{scheme.name!r} is budget-matched but the reference {cfg.reference!r} has no run")
    return work_or_new(work).budget_level(base, cfg.rounds, seed, mean_payment(reference_record))


def level_current(rec: Mapping[str, Any], scheme: Any, base: Scenario, cfg: CompareConfig,
                  reference_record: Mapping[str, Any] | None, seed: int, cache: dict, name: str,
                  work: SharedWork | None = None) -> bool:
    """Whether a stored run ``rec`` of scheme ``name`` (seed ``seed``) was made at the level its
    scheme would get now; the level computed is kept in ``cache[(name, seed)]``."""
    if not isinstance(scheme, LevelledScheme):
        return True
    if scheme.setting is LevelSetting.BUDGET and reference_record is None:
        return False
    want = cache[(name, seed)] = levels_for(scheme, base, cfg, reference_record, seed, work)
    return rec.get("level") is not None and np.allclose(rec["level"], want, rtol=1e-12, atol=0.0)


def round_deadlines(base: Scenario, rounds: int, seed: int, deadline: float | str = "auto",
                    multiple: float | None = None, work: SharedWork | None = None) -> tuple[np.ndarray, list[str]]:
    """The round deadlines ``T_m`` (T, M) of one seed's trajectory, shared by every scheme.

    ``deadline = "auto"``: ``multiple`` (default ``models.iom.DEADLINE_MULTIPLE``, 2) x the median
    ``Tcmp + Tup`` of MSP m's participants at the round's certified EPEC (``inf`` for an MSP
    without participants there); a number: that deadline everywhere (``inf``: none). Returns the
    deadlines and notes on the rounds whose EPEC was not certified (their deadline is taken at
    the uncertified solution, and said so).
    """
    from models.iom import DEADLINE_MULTIPLE, median_deadline

    if deadline != "auto":
        return np.full((rounds, base.n_msp), float(deadline)), []
    work = work_or_new(work)
    mult = DEADLINE_MULTIPLE if multiple is None else multiple
    traj = work.trajectory(base, rounds, seed)
    out, notes = np.empty((rounds, base.n_msp)), []
    for t in range(rounds):
        sc = traj.active_scenario(t)
        sol = work.solve_scenario(sc)
        if not sol.ok:
            notes.append(f"seed {seed} round {t}: deadline at an uncertified EPEC ({sol.result.status.name})")
        f = work.follower_equilibrium(sc, np.asarray(sol.R, dtype=float)).f
        out[t] = [median_deadline(sc, f, m, mult) for m in range(sc.n_msp)]
    return out, notes


def fixed_frontier(base: Scenario, seeds: int, rounds: int, levels: tuple[float, ...] = FRONTIER_LEVELS,
                   work: SharedWork | None = None) -> dict[str, Any]:
    """The ``fixed`` scheme swept over ``levels`` x Rmax on the markets alone (no FL).

    Per seed and level, along ``trajectory(base, rounds, seed)``: the MUs' exact response to
    ``R = level * Rmax``, then the mean over rounds and MSPs of the real total IoM and of the
    payment (as the report's ``iom`` and ``payment``). Returns the per-seed values
    ``{"levels", "iom": [[seed x level]], "payment": [[...]]}``.
    """
    iom = np.empty((seeds, len(levels)))
    pay = np.empty((seeds, len(levels)))
    for s in range(seeds):
        for k, level in enumerate(levels):
            total, paid = market_means(base, rounds, s, level * base.Rmax, work)
            iom[s, k], pay[s, k] = float(np.mean(total)), float(np.mean(paid))
    return {"levels": list(levels), "iom": iom.tolist(), "payment": pay.tolist()}


def frontier_key(base: Scenario, cfg: CompareConfig) -> Any:
    """What a stored frontier must agree with to be reused: the markets, seeds, rounds and levels."""
    return json.loads(json.dumps({"base": base.to_dict(), "seeds": cfg.seeds, "rounds": cfg.rounds,
                                  "levels": list(FRONTIER_LEVELS), "version": RECORD_VERSION}))


def stored_frontier(path: Path, base: Scenario, cfg: CompareConfig) -> dict[str, Any] | None:
    """The frontier of an earlier invocation with the same markets, or None."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data.get("frontier") if data.get("settings") == frontier_key(base, cfg) else None
