"""Shared plotting helpers of the benchmarks (matplotlib, Agg backend, atomic writes).

Each helper takes plain numbers (no solver objects) and writes one PNG through
:func:`models.io.atomic_save`, so a reader never sees a half-written figure.
"""
from __future__ import annotations

import os
from typing import Sequence

from models.io import atomic_save

__all__ = ["convergence_plot", "scaling_plot"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def convergence_plot(
    path: str | os.PathLike,
    decisions: Sequence[Sequence[float]],
    steps: Sequence[float],
    labels: Sequence[str],
    title: str = "EPEC diagonalisation",
) -> None:
    """Leader decisions per sweep (left) and the step ``max |x_k - x_{k-1}|`` per sweep (right, log).

    ``decisions[k][i]`` is leader i's decision after sweep k+1.
    """
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    sweeps = list(range(1, len(decisions) + 1))
    for i, label in enumerate(labels):
        ax1.plot(sweeps, [d[i] for d in decisions], marker="o", label=label)
    ax1.set_xlabel("sweep")
    ax1.set_ylabel("reward R_m")
    ax1.legend(fontsize="small")
    ax1.grid(alpha=0.3)
    ax2.semilogy(sweeps, [max(s, 1e-16) for s in steps], marker="o", color="k")
    ax2.set_xlabel("sweep")
    ax2.set_ylabel("step max|R_k - R_(k-1)|")
    ax2.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def scaling_plot(
    path: str | os.PathLike,
    n: Sequence[int],
    series: dict[str, Sequence[float | None]],
    labels: Sequence[str] | None = None,
    title: str = "EPEC solve time",
) -> None:
    """Time against N (log-log), one line per series; ``None`` values are skipped."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        pts = [(x, y) for x, y in zip(n, ys) if y is not None]
        if pts:
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if labels:
        for x, lab in zip(n, labels):
            ax.annotate(lab, (x, ax.get_ylim()[0]), fontsize="x-small", rotation=90, va="bottom")
    ax.set_xlabel("N (MUs)")
    ax.set_ylabel("seconds")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
