"""Work that several schemes of one comparison ask for with identical inputs, computed once.

In one ``metatrading compare`` run the same computations recur across schemes and settings:
the round deadlines solve each round's EPEC, which ``epec`` solves again and ``static`` again in
round 0; the budget-matched ``fixed`` and ``random`` search the same level along the same
markets; ``fixed_cap`` at ``0.5 Rmax`` posts a point of the frontier; and in round 0 every
scheme starts each MSP's FL task from the same initial model with the same data and batch
seeds, so every participant's local update is the same whichever scheme attracted it.

:class:`SharedWork` holds one bounded memo table per kind of work, keyed by an exact fingerprint
of the inputs (:func:`models.cache.digest`: the scenario's every parameter, the rewards' bytes,
the seed and round, the global model's bytes), so a hit returns what the computation would have
returned: the caches change the wall time, never a result (tested: a comparison with them and
one without write the same ``compare.json``). Stored arrays are made read-only so that a caller
that modified a shared result would fail loudly instead of corrupting another scheme's.

Switch: ``METATRADING_COMPARE_CACHE=0`` in the environment (or ``run_runs(..., cache=False)``)
computes everything every time.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from models.cache import BoundedCache, digest

__all__ = ["SharedWork", "cache_enabled", "ENV", "PhaseTimer", "work_or_new"]

#: environment switch: "0" / "off" / "false" / "no" disables the shared-work caches
ENV = "METATRADING_COMPARE_CACHE"


def cache_enabled(value: bool | None = None) -> bool:
    """``value`` if given, else the environment switch :data:`ENV` (default on)."""
    if value is not None:
        return bool(value)
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def _freeze(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        a.setflags(write=False)
    return a


class PhaseTimer:
    """Wall and CPU seconds (``time.process_time``: every thread of the process) per phase.

    Nested phases count for the innermost one only, so the phases add up to at most the wall
    time of the whole run."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [name, wall start, cpu start, child wall, child cpu]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = [name, time.perf_counter(), time.process_time(), 0.0, 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            wall = time.perf_counter() - frame[1]
            cpu = time.process_time() - frame[2]
            self.wall[name] = self.wall.get(name, 0.0) + wall - frame[3]
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu - frame[4]
            if self._stack:
                self._stack[-1][3] += wall
                self._stack[-1][4] += cpu

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {name: {"wall_seconds": self.wall[name], "cpu_seconds": self.cpu[name]} for name in self.wall}


class SharedWork:
    """The bounded caches of one comparison run (see the module docstring).

    Parameters
    ----------
    enabled : bool or None
        None: the environment switch :data:`ENV` (on by default).
    fl_bytes : int
        Bound on the stored FL updates (default 512 MiB; least recently used dropped first).
    """

    def __init__(self, enabled: bool | None = None, fl_bytes: int = 512 << 20) -> None:
        from fl.round import UpdateCache

        self.enabled = cache_enabled(enabled)
        self.timer = PhaseTimer()
        self.epec = BoundedCache(max_entries=256, enabled=self.enabled)
        self.followers = BoundedCache(max_entries=20000, max_bytes=128 << 20, enabled=self.enabled)
        self.trajectories = BoundedCache(max_entries=64, enabled=self.enabled)
        self.levels = BoundedCache(max_entries=1024, enabled=self.enabled)
        self.accuracy = BoundedCache(max_entries=20000, enabled=self.enabled)
        self.updates = UpdateCache(max_bytes=fl_bytes, enabled=self.enabled)
        self.splits = BoundedCache(max_entries=4096, max_bytes=64 << 20, enabled=self.enabled)
        self._ds_keys: dict[int, tuple[Any, str]] = {}  # id(data set) -> (data set, its digest)

    # -- the market ---------------------------------------------------------------------------
    def trajectory(self, base: Any, rounds: int, seed: int) -> Any:
        """``models.dynamics.trajectory(base, rounds, seed)`` (deterministic in its inputs)."""
        from models.dynamics import trajectory

        return self.trajectories.get_or_compute(digest("trajectory", base, int(rounds), int(seed)),
                                                lambda: trajectory(base, rounds, seed))

    def follower_equilibrium(self, sc: Any, R: Any) -> Any:
        """``models.follower_equilibrium(sc, R)`` with its default start and options."""
        from models.equilibrium import follower_equilibrium

        R = np.asarray(R, dtype=float)

        def compute() -> Any:
            with self.timer.phase("equilibrium"):
                eq = follower_equilibrium(sc, R)
            for name in ("f", "mu"):
                _freeze(getattr(eq, name, None))
            return eq

        if not self.enabled:
            with self.timer.phase("equilibrium"):
                return follower_equilibrium(sc, R)
        return self.followers.get_or_compute(digest("followers", sc, R), compute,
                                             size=lambda eq: int(np.asarray(eq.f).nbytes) * 2)

    def solve_scenario(self, sc: Any, grid: int = 41) -> Any:
        """``epec.solve_scenario(sc, grid=grid)``; the stored solution drops the Pyomo model
        (``model=None``: its memory) and keeps ``R``, ``f``, the status and the check."""
        import dataclasses

        from epec import solve_scenario

        def compute() -> Any:
            with self.timer.phase("equilibrium"):
                sol = solve_scenario(sc, grid=grid)
            if not self.enabled:
                return sol
            for name in ("R", "f"):
                _freeze(getattr(sol, name, None))
            return dataclasses.replace(sol, model=None)

        if not self.enabled:
            return compute()
        return self.epec.get_or_compute(digest("epec", sc, int(grid)), compute)

    def budget_level(self, base: Any, rounds: int, seed: int, budget: Any) -> np.ndarray:
        """:func:`drl.compare.levels.budget_level` (the budget-matched ``fixed`` and ``random`` of a
        seed search the same level)."""
        from .levels import budget_level

        budget = np.asarray(budget, dtype=float)
        b = self.levels.get_or_compute(digest("level", base, int(rounds), int(seed), budget),
                                       lambda: budget_level(base, rounds, seed, budget, work=self))
        return np.array(b, dtype=float)  # a fresh copy: the caller owns it

    # -- FL ------------------------------------------------------------------------------------
    def dataset_key(self, ds: Any) -> str:
        """A digest of a data set's training and test splits (computed once per data set object)."""
        hit = self._ds_keys.get(id(ds))
        if hit is None or hit[0] is not ds:
            hit = self._ds_keys[id(ds)] = (ds, digest("dataset", ds.train_x, ds.train_y, ds.test_x, ds.test_y))
        return hit[1]

    def split(self, labels: np.ndarray, sizes: Any, alpha: float, seed: int) -> list[np.ndarray]:
        """``fl.partition.dirichlet_partition(labels, sizes, alpha, seed)`` as int64 index arrays
        (read-only when stored): it depends on the market only, so every scheme asks for it."""
        from fl.partition import dirichlet_partition

        sizes = [int(n) for n in sizes]

        def compute() -> list[np.ndarray]:
            return [_freeze(np.asarray(i, dtype=np.int64)) if self.enabled else np.asarray(i, dtype=np.int64)
                    for i in dirichlet_partition(labels, sizes, alpha, seed)]

        if not self.enabled:
            return compute()
        key = digest("split", np.asarray(labels), sizes, float(alpha), int(seed))
        return self.splits.get_or_compute(key, compute, size=lambda idx: sum(i.nbytes for i in idx))

    def evaluate(self, ds: Any, net: Any, params: Any) -> float:
        """``fl.train.evaluate(net, params, ds.test_x, ds.test_y)``: a model's test accuracy,
        once per distinct model (weights and definition) and test set."""
        from fl.train import evaluate

        if not self.enabled:
            return evaluate(net, params, ds.test_x, ds.test_y)
        key = digest("accuracy", self.dataset_key(ds), self.updates.model_key(net, params))
        return self.accuracy.get_or_compute(key, lambda: evaluate(net, params, ds.test_x, ds.test_y))

    def stats(self) -> dict[str, Any]:
        return {"enabled": self.enabled,
                **{name: getattr(self, name).stats() for name in
                   ("epec", "followers", "trajectories", "levels", "splits", "accuracy", "updates")}}


def work_or_new(work: SharedWork | None) -> SharedWork:
    """The run's shared computations ``work``, or fresh ones (a call outside a comparison)."""
    return SharedWork() if work is None else work
