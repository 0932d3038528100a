"""The allocation an FL run is driven by (docs/model.md section 7): checked against its scenario
(:func:`check_allocation`), read from ``metatrading solve``'s equilibrium.json
(:func:`load_allocation`) or the followers' response to ``R = Rmax / 2`` (:func:`default_allocation`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError
from models.scenario import Scenario

__all__ = ["check_allocation", "default_allocation", "load_allocation"]


def check_allocation(f: Any, sc: Scenario, field: str = "allocations") -> np.ndarray:
    """An allocation ``f`` (N x M, GHz) as a float array: finite, >= 0, the scenario's shape, and
    feasible for it: every MU's ``sum_m f_nm <= F_n`` (its CPU budget, relative tolerance 1e-6)."""
    try:
        arr = np.asarray(f, dtype=float)
    except (TypeError, ValueError):
        raise InputError(field, "expected an N x M array of numbers") from None
    if arr.shape != (sc.n_mu, sc.n_msp):
        raise InputError(field, f"expected shape {(sc.n_mu, sc.n_msp)}, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{field}[{i}][{j}]", "must be a finite number (got NaN or inf)")
    if (arr < 0).any():
        i, j = (int(v) for v in np.argwhere(arr < 0)[0])
        raise InputError(f"{field}[{i}][{j}]", f"must be >= 0 GHz, got {arr[i, j]:g}")
    total = arr.sum(axis=1)
    over = total > sc.F * (1 + 1e-6)
    if over.any():
        n = int(np.argmax(over))
        raise InputError(f"{field}[{n}]", f"MU {n} is allocated {total[n]:g} GHz in all, more than its CPU budget "
                                          f"F[{n}] = {sc.F[n]:g} GHz")
    return arr


def load_allocation(path: str | Path, field: str = "--allocation") -> tuple[Scenario, np.ndarray]:
    """``(scenario, f)`` from an equilibrium.json of ``metatrading solve``, read through its typed
    record (:class:`models.results.AllocationRecord`: keys 'allocations' and 'scenario'); an error
    in the scenario stored there says it came from that file."""
    from models.results import load_allocation_record

    p = Path(path)
    if not p.is_file():
        raise InputError(field, f"file not found: {path}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(field, f"not a JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(field, "expected a JSON object")
    for key in ("allocations", "scenario"):
        if key not in data:
            raise InputError(f"{field} {path}: {key}", "missing (expected an equilibrium.json of metatrading solve)")
    record = load_allocation_record(p, f"{field} {path}")
    try:
        return record.to_scenario(), record.allocations  # checked against the scenario by check_allocation
    except InputError as err:  # say that the scenario at fault is the one inside the allocation file
        raise InputError(f"{field} {path}: {err.field}", err.reason) from None


def default_allocation(spec: str, seed: int | None = None) -> tuple[Scenario, np.ndarray]:
    """The scenario ``spec`` (drawn with ``seed``) and its followers' Nash allocation at
    ``R = Rmax / 2``.

    The MUs respond exactly (docs/model.md section 5, lower level) to the ``fixed`` scheme's
    rewards; a response that did not converge is an error, never an allocation.
    """
    from models.equilibrium import follower_equilibrium
    from models.scenario import load_scenario

    sc = load_scenario(spec, seed=seed)
    eq = follower_equilibrium(sc, sc.Rmax / 2.0)
    if not eq.converged:
        raise RuntimeError(f"follower equilibrium of {spec!r} at R = Rmax/2 did not converge (step {eq.step:.2e})")
    return sc, eq.f
