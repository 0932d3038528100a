"""The plots of ``metatrading sweep``: rewards, utilities and IoM against the swept parameter (one
parameter: curves; two: heat maps), from the plain records of :func:`epec.sweep`.

Only certified points are drawn as values: an uncertified point breaks the curve (a gap and a
red cross on the axis) or is a hatched cell of a heat map, never interpolated. A point where the
equilibrium path has a kink (an MU entering or leaving, a reward touching its bound) is an open
marker. Every figure is written atomically (:func:`models.io.atomic_save`).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from models.io import atomic_save

__all__ = ["sweep_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> None:
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def _series(points: Sequence[dict], key: str, m: int | None = None, sub: str | None = None) -> np.ndarray:
    out = np.full(len(points), np.nan)
    for k, p in enumerate(points):
        if p.get("ok") and key in p:
            v = p[key]
            out[k] = v[sub] if sub is not None else (v[m] if m is not None else v)
    return out


def _curves(path: Any, points: Sequence[dict], x: np.ndarray, xlabel: str, title: str,
            panels: Sequence[tuple[str, list[tuple[str, np.ndarray]]]]) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    bad = np.array([not p.get("ok") for p in points])
    kink = np.array([bool(p.get("ok")) and (p.get("sensitivity") or {}).get("status") == "kink" for p in points])
    for ax, (ylabel, series) in zip(axes[0], panels):
        for label, y in series:
            line, = ax.plot(x, y, marker="o", markersize=3, label=label)
            if kink.any():
                ax.plot(x[kink], y[kink], linestyle="none", marker="o", markersize=7, markerfacecolor="none",
                        color=line.get_color())
        if bad.any():
            ax.plot(x[bad], np.zeros(bad.sum()), linestyle="none", marker="x", color="red",
                    transform=ax.get_xaxis_transform(), clip_on=False, label="not certified")
        if kink.any():
            ax.plot([], [], linestyle="none", marker="o", markerfacecolor="none", color="k", label="kink")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _maps(path: Any, points: Sequence[dict], x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str,
          title: str, panels: Sequence[tuple[str, np.ndarray]]) -> None:
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    nx, ny = len(x), len(y)
    bad = np.array([not p.get("ok") for p in points]).reshape(ny, nx)
    for ax, (label, values) in zip(axes.ravel(), panels):
        grid = np.ma.masked_invalid(values.reshape(ny, nx))
        ax.set_facecolor("0.85")
        mesh = ax.pcolormesh(_edges(x), _edges(y), grid, shading="flat")
        for j, i in zip(*np.nonzero(bad)):
            ax.text(x[i], y[j], "x", ha="center", va="center", color="red")
        fig.colorbar(mesh, ax=ax)
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(title + " (grey, x: not certified)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _edges(v: Sequence[float]) -> np.ndarray:
    """Cell edges around the values (the midpoints; half a step beyond the ends)."""
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def sweep_plots(out: str | os.PathLike, points: Sequence[dict], param: str, values: Sequence[float],
                n_msp: int, param2: str | None = None, values2: Sequence[float] | None = None,
                name: str = "") -> list[str]:
    """Write ``rewards.png``, ``utilities.png`` and ``iom.png`` into ``out``; returns their paths.

    ``points`` in the order of the grid (``index = path * len(values) + i``), ``n_msp`` the MSPs
    of the scenario (a sweep over ``n_msp`` draws as many as the largest point has).
    """
    M = max([n_msp] + [len(p["rewards"]) for p in points if p.get("ok")])

    def per_msp(key: str) -> list[tuple[str, np.ndarray]]:
        return [(f"MSP {m}", np.array([p[key][m] if p.get("ok") and m < len(p[key]) else np.nan for p in points]))
                for m in range(M)]

    files = [os.path.join(out, f) for f in ("rewards.png", "utilities.png", "iom.png")]
    what = f"{name}: " if name else ""
    if param2 is None:
        x = np.asarray(values, dtype=float)
        _curves(files[0], points, x, param, f"{what}equilibrium rewards against {param}",
                [("reward R_m", per_msp("rewards"))])
        _curves(files[1], points, x, param, f"{what}utilities at the equilibrium against {param}",
                [("MSP utility V_m", per_msp("msp_utility")),
                 ("MU utility U_n", [(f"{s} over MUs", _series(points, "mu_utility", sub=s))
                                     for s in ("mean", "min", "max")])])
        _curves(files[2], points, x, param, f"{what}immersion (IoM) against {param}",
                [("total IoM of MSP m", per_msp("iom")), ("MUs working for MSP m", per_msp("participation"))])
    else:
        y = list(values2 or [])
        _maps(files[0], points, values, y, param, param2, f"{what}equilibrium rewards",
              [(f"R of {lab}", v) for lab, v in per_msp("rewards")])
        _maps(files[1], points, values, y, param, param2, f"{what}utilities at the equilibrium",
              [(f"V of {lab}", v) for lab, v in per_msp("msp_utility")]
              + [("mean MU utility", _series(points, "mu_utility", sub="mean"))])
        _maps(files[2], points, values, y, param, param2, f"{what}total IoM",
              [(f"IoM of {lab}", v) for lab, v in per_msp("iom")])
    return files
