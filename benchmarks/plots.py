"""Shared plotting helpers of the benchmarks (matplotlib, Agg backend, atomic writes).

Each helper takes plain numbers (no solver objects) and writes one PNG through
:func:`models.io.atomic_save`, so a reader never sees a half-written figure.
"""
from __future__ import annotations

import os
from typing import Sequence

from models.io import atomic_save

__all__ = ["convergence_plot", "accuracy_plot", "fl_overlay_plot", "throughput_plot", "derivatives_plot",
           "scaling_plot", "loglog_slope", "bar_plot", "curves_plot", "frontier_plot"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend_outside(ax, fontsize: str = "small") -> None:
    """The legend to the right of the axes, clear of every line and marker."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _plain_ticks(ax, values: Sequence[float]) -> None:
    """The measured x values as plain-number ticks of a log axis (minor labels overlap)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks(sorted(set(values)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig, path, dpi: int = 110) -> None:
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))


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
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    sweeps = list(range(1, len(decisions) + 1))
    for i, label in enumerate(labels):
        ax1.plot(sweeps, [d[i] for d in decisions], marker="o", label=label)
    ax1.set_xlabel("sweep")
    ax1.set_ylabel("reward R_m (currency units)")
    _legend_outside(ax1)
    ax1.grid(alpha=0.3)
    ax2.semilogy(sweeps, [max(s, 1e-16) for s in steps], marker="o", color="k")
    ax2.set_xlabel("sweep")
    ax2.set_ylabel("step max_m |R_m,k - R_m,k-1| (currency units)")
    ax2.grid(alpha=0.3, which="both")
    for ax in (ax1, ax2):
        _integer_ticks(ax.xaxis)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def accuracy_plot(path: str | os.PathLike, sim_time: Sequence[float], accuracy: Sequence[float], target: float,
                  title: str) -> None:
    """Test accuracy against simulated time, with the target as a dashed line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sim_time, accuracy, marker="o", ms=3)
    ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_title(title)
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path, dpi=120)
    plt.close(fig)


def fl_overlay_plot(path: str | os.PathLike, runs: Sequence[tuple[str, Sequence[float], Sequence[float]]],
                    targets: Sequence[float] = (), title: str = "FL runs") -> None:
    """Several FL runs' test accuracy against simulated time on one set of axes.

    ``runs`` holds ``(label, sim_time, accuracy)`` per run; each distinct target accuracy is a
    dashed line.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, t, acc in runs:
        ax.plot(t, acc, marker="o", ms=3, label=label)
    for target in sorted(set(targets)):
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.tight_layout()
    _save(fig, path, dpi=120)
    plt.close(fig)


def throughput_plot(path: str | os.PathLike, clients: Sequence[int], series: dict[str, Sequence[float]],
                    title: str = "FL local training throughput") -> None:
    """Samples per second of each training path (grouped bars) for each number of clients K."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(len(clients))
    width = 0.8 / max(1, len(series))
    for i, (name, ys) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, ys, width, label=name)
    ax.set_xticks(x, [str(k) for k in clients])
    ax.set_xlabel("K (clients in the round)")
    ax.set_ylabel("training samples per second (samples/s)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    _legend_outside(ax)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def derivatives_plot(path: str | os.PathLike, rows: Sequence[dict], title: str = "Exact derivatives") -> None:
    """Build time (left) and one gradient + Jacobian + Hessian evaluation (right) against the
    number of variables, log-log, per model family and back end (rows of ``bench derivatives``)."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    families = sorted({r["family"] for r in rows})
    styles = {"CasADi": "-", "Pyomo": "--"}
    for fam in families:
        rs = sorted((r for r in rows if r["family"] == fam), key=lambda r: r["n"])
        n = [r["n"] for r in rs]
        for backend, key in (("CasADi", "casadi"), ("Pyomo", "pyomo")):
            ax1.loglog(n, [r[f"build_{key}_s"] for r in rs], styles[backend], marker="o", label=f"{fam}, {backend}")
            ax2.loglog(n, [r[f"eval_{key}_s"] * 1e3 for r in rs], styles[backend], marker="o",
                       label=f"{fam}, {backend}")
    ax1.set_ylabel("build time (s)")
    ax2.set_ylabel("one evaluation (ms)")
    for ax in (ax1, ax2):
        ax.set_xlabel("n (variables)")
        ax.grid(alpha=0.3, which="both")
        _plain_ticks(ax, [r["n"] for r in rows])
    ax1.set_title("build (expression graph + sparsity)")
    ax2.set_title("gradient + Jacobian + Hessian")
    _legend_outside(ax2)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
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
    fig, ax = plt.subplots(figsize=(9, 4.5))
    fitted = 0
    for name, ys in series.items():
        pts = [(x, y) for x, y in zip(n, ys) if y is not None]
        if not pts:
            continue
        xs, vs = [p[0] for p in pts], [p[1] for p in pts]
        slope = loglog_slope(xs, vs) if fit else None
        label = name if slope is None else f"{name}: slope {slope:.2f}"
        (line,) = ax.loglog(xs, vs, marker="o", label=label)
        if slope is not None:
            fitted += 1
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
    ax.set_ylabel("time (s)")
    if fit:
        # the promised slope: in the legend and as a dotted line; say so when no series has
        # two sizes to fit (one N per M)
        title += (": dotted lines are least-squares fits, slope b of t ~ N^b in the legend" if fitted
                  else ": no slope fitted (each M has a single N; give two or more N per M)")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    _legend_outside(ax)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def bar_plot(path: str | os.PathLike, names: Sequence[str], means: Sequence[float | None],
             half_widths: Sequence[float | None], ylabel: str, title: str, missing: str = "n/a") -> None:
    """One bar per name with its error bar (``half_widths``; None: no bar); a None mean is
    written as ``missing`` at the axis. When no name has a value, the plot says ``missing`` in
    its middle on an empty axis from 0 (no made-up scale such as -0.04 to 0.04)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 4))
    draw_bars(ax, names, means, half_widths, missing)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def draw_bars(ax, names: Sequence[str], means: Sequence[float | None], half_widths: Sequence[float | None],
              missing: str = "n/a") -> None:
    """:func:`bar_plot`'s bars on ``ax``."""
    x = list(range(len(names)))
    ax.set_xticks(x, names, rotation=30, ha="right")
    if all(m is None for m in means):
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_ylim(0.0, 1.0)
        ax.set_yticks([])
        ax.text(0.5, 0.5, missing, transform=ax.transAxes, ha="center", va="center", fontsize=12)
        return
    ax.bar(x, [m if m is not None else 0.0 for m in means],
           yerr=[h if h is not None else 0.0 for h in half_widths], capsize=4, color="tab:blue", alpha=0.8)
    for k, m in enumerate(means):
        if m is None:
            ax.text(k, 0.0, missing, ha="center", va="bottom", fontsize=8)


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


def frontier_plot(path: str | os.PathLike, curve_x: Sequence[float], curve_y: Sequence[float],
                  curve_hw: Sequence[float | None], points: dict[str, tuple[float, float | None, float, float | None]],
                  xlabel: str, ylabel: str, title: str, curve_label: str = "fixed, swept") -> None:
    """A curve with its band (``curve_hw``: half widths, None: no band) and named points with
    error bars in both axes (``points[name] = (x, x_half_width, y, y_half_width)``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(curve_x, curve_y, color="grey", marker=".", label=curve_label)
    if all(h is not None for h in curve_hw):
        lo = [y - h for y, h in zip(curve_y, curve_hw)]
        hi = [y + h for y, h in zip(curve_y, curve_hw)]
        ax.fill_between(curve_x, lo, hi, color="grey", alpha=0.2, lw=0)
    for name, (x, xh, y, yh) in points.items():
        ax.errorbar([x], [y], xerr=None if xh is None else [xh], yerr=None if yh is None else [yh],
                    fmt="o", ms=5, capsize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax, fontsize="small")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
