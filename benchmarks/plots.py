"""Shared plotting helpers of the benchmarks (matplotlib, Agg backend, atomic writes).

Each helper takes plain numbers (no solver objects) and writes one PNG through
:func:`models.io.atomic_save`, so a reader never sees a half-written figure.
"""
from __future__ import annotations

import os
from typing import Sequence

from models.io import atomic_save

__all__ = ["convergence_plot", "scaling_plot", "loglog_slope", "accuracy_plot", "bar_plot", "curves_plot"]


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


def accuracy_plot(path: str | os.PathLike, sim_time: Sequence[float], accuracy: Sequence[float], target: float,
                  title: str) -> None:
    """Test accuracy against simulated time, with the target as a dashed line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sim_time, accuracy, marker="o", ms=3)
    ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def loglog_slope(x: Sequence[float], y: Sequence[float | None]) -> float | None:
    """Least-squares exponent ``b`` of ``y ~ a x^b`` (a line in log-log); ``None`` values and
    non-positive points are skipped, None when fewer than two distinct ``x`` remain."""
    import numpy as np

    pts = [(float(a), float(b)) for a, b in zip(x, y) if b is not None and a > 0 and b > 0]
    if len({a for a, _ in pts}) < 2:
        return None
    lx, ly = np.log([a for a, _ in pts]), np.log([b for _, b in pts])
    return float(np.polyfit(lx, ly, 1)[0])


def scaling_plot(
    path: str | os.PathLike,
    n: Sequence[int],
    series: dict[str, Sequence[float | None]],
    labels: Sequence[str] | None = None,
    title: str = "EPEC solve time",
    fit: bool = False,
) -> None:
    """Time against N (log-log), one line per series; ``None`` values are skipped. With ``fit``
    each series with two or more N gets its log-log slope (:func:`loglog_slope`) in its label
    and the least-squares line drawn dotted."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ys in series.items():
        pts = [(x, y) for x, y in zip(n, ys) if y is not None]
        if not pts:
            continue
        xs, vs = [p[0] for p in pts], [p[1] for p in pts]
        slope = loglog_slope(xs, vs) if fit else None
        label = name if slope is None else f"{name}: slope {slope:.2f}"
        (line,) = ax.loglog(xs, vs, marker="o", label=label)
        if slope is not None:
            c = np.polyfit(np.log(xs), np.log(vs), 1)
            grid = np.geomspace(min(xs), max(xs), 20)
            ax.loglog(grid, np.exp(np.polyval(c, np.log(grid))), ":", color=line.get_color(), linewidth=1)
    if labels:
        for x, lab in zip(n, labels):
            ax.annotate(lab, (x, ax.get_ylim()[0]), fontsize="x-small", rotation=90, va="bottom")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    # the measured N as plain-number ticks (log-scale minor labels overlap)
    ax.set_xticks(sorted(set(n)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("N (MUs)")
    ax.set_ylabel("seconds")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def bar_plot(path: str | os.PathLike, names: Sequence[str], means: Sequence[float | None],
             half_widths: Sequence[float | None], ylabel: str, title: str) -> None:
    """One bar per name with its error bar (``half_widths``; None: no bar); a None mean is
    written as "n/a" at the axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 4))
    x = list(range(len(names)))
    ax.bar(x, [m if m is not None else 0.0 for m in means],
           yerr=[h if h is not None else 0.0 for h in half_widths], capsize=4, color="tab:blue", alpha=0.8)
    for k, m in enumerate(means):
        if m is None:
            ax.text(k, 0.0, "n/a", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def curves_plot(path: str | os.PathLike, curves: dict[str, tuple[Sequence[float], Sequence[float]]],
                target: float | None, xlabel: str, ylabel: str, title: str) -> None:
    """One line per name (``curves[name] = (x, y)``), with ``target`` as a dashed line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (x, y) in curves.items():
        ax.plot(x, y, marker="o", ms=3, label=name)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
