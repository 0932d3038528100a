"""Anderson acceleration of the diagonalisation's sweep map."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Anderson"]


class Anderson:
    """Anderson extrapolation (type II, memory ``m``) of a fixed-point map on the stacked leader
    decisions, projected on their boxes; see :func:`solve_epec`."""

    def __init__(self, m: int, lower: Sequence[np.ndarray], upper: Sequence[np.ndarray]) -> None:
        self.m = m
        self.sizes = [len(a) for a in lower]
        self.lo = np.concatenate(lower) if lower else np.zeros(0)
        self.hi = np.concatenate(upper) if upper else np.zeros(0)
        self.xs: list[np.ndarray] = []
        self.gs: list[np.ndarray] = []

    def reset(self) -> None:
        self.xs, self.gs = [], []

    def step(self, x_in: Sequence[np.ndarray], g_out: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """Record ``T(x_in) = g_out``; the extrapolated next input, or None (use ``g_out``)."""
        x = np.concatenate(x_in) if x_in else np.zeros(0)
        g = np.concatenate(g_out) if g_out else np.zeros(0)
        f = g - x
        if self.xs and np.max(np.abs(f), initial=0.0) > np.max(np.abs(self.gs[-1] - self.xs[-1]), initial=0.0):
            self.reset()  # the residual grew: the extrapolation is not helping, restart it
        self.xs.append(x)
        self.gs.append(g)
        if len(self.xs) > self.m + 1:
            self.xs.pop(0)
            self.gs.pop(0)
        if len(self.xs) < 2:
            return None
        F = np.array([gg - xx for gg, xx in zip(self.gs, self.xs)]).T
        G = np.array(self.gs).T
        dF, dG = np.diff(F, axis=1), np.diff(G, axis=1)
        gamma, *_ = np.linalg.lstsq(dF, f, rcond=1e-12)
        x_new = np.clip(g - dG @ gamma, self.lo, self.hi)
        if not np.all(np.isfinite(x_new)):
            self.reset()
            return None
        return list(np.split(x_new, np.cumsum(self.sizes)[:-1]))
