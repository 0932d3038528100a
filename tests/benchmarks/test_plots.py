"""benchmarks.plots: the figures say what they show (integer sweeps, legends clear of the data,
units, fitted slopes), and the plots of bench derivatives and plot-fl are written."""
from __future__ import annotations

import json

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks import plots  # noqa: E402
from benchmarks.cli import main  # noqa: E402


@pytest.fixture
def figures(monkeypatch):
    """The figures each plot helper draws, kept open for inspection after saving."""
    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    close("all")


def _legend_clear_of_axes(fig, ax):
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None
    box = legend.get_window_extent()
    axes = ax.get_window_extent()
    return box.x0 >= axes.x1 or box.x1 <= axes.x0 or box.y0 >= axes.y1 or box.y1 <= axes.y0


def test_convergence_plot_integer_sweeps_units_and_legend(tmp_path, figures):
    # Prepare: two sweeps (matplotlib would tick 1.0, 1.2, ... 2.0)
    plots.convergence_plot(tmp_path / "c.png", [[1.0, 2.0], [1.5, 2.5]], [1.0, 1e-3], ["MSP 0", "MSP 1"],
                           title="EPEC diagonalisation of mine")
    fig = figures[-1]
    ax1, ax2 = fig.axes
    fig.canvas.draw()
    # Assert
    for ax in (ax1, ax2):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    assert "currency" in ax1.get_ylabel() and "currency" in ax2.get_ylabel()
    assert _legend_clear_of_axes(fig, ax1)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_scaling_plot_shows_the_fitted_slope_or_says_why_not(tmp_path, figures):
    plots.scaling_plot(tmp_path / "a.png", [10, 20, 40], {"solve": [1.0, 2.0, 4.0]}, fit=True, title="t")
    fig = figures[-1]
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["solve: slope 1.00"]
    assert len(ax.get_lines()) == 2  # the data and the dotted fit
    assert _legend_clear_of_axes(fig, ax)
    plots.scaling_plot(tmp_path / "b.png", [20, 100], {"M=3": [1.0, None], "M=5": [None, 3.0]}, fit=True, title="t")
    assert "no slope fitted" in figures[-1].axes[0].get_title()


def test_solve_plot_title_names_scenario_mechanism_and_leader_step(tmp_path, capsys, figures):
    scen = tmp_path / "highway.toml"
    scen.write_text('preset = "tiny"\nmechanism = "unit_price"\n')
    assert main(["solve", "--scenario", str(scen), "--grid", "5", "--out", str(tmp_path / "r")]) == 0
    title = figures[-1]._suptitle.get_text()
    assert "highway" in title and "unit_price" in title and "implicit leader step" in title


def _fl_json(path, aggregation, acc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": "mnist5k", "msp": 0, "aggregation": aggregation, "seed": 0,
                                "rounds": len(acc), "accuracy": acc, "sim_time": [10.0 * (i + 1) for i in range(len(acc))],
                                "target": 0.9, "time_to_target": None, "rounds_to_target": None,
                                "final_accuracy": acc[-1]}))
    return path


def test_plot_fl_overlays_runs(tmp_path, capsys, figures):
    # Prepare
    a = _fl_json(tmp_path / "iom" / "fl.json", "iom", [0.5, 0.8, 0.91])
    b = _fl_json(tmp_path / "fedavg" / "fl.json", "fedavg", [0.4, 0.7])
    # Execute
    rc = main(["plot-fl", str(a), str(b), "--out", str(tmp_path / "cmp")])
    # Assert
    assert rc == 0
    ax = figures[-1].axes[0]
    assert [len(line.get_xdata()) for line in ax.get_lines()[:2]] == [3, 2]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("iom: iom") and labels[1].startswith("fedavg: fedavg")
    assert (tmp_path / "cmp" / "fl_overlay.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def test_bench_derivatives_requires_out_writes_a_plot_and_says_so(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["bench", "derivatives", "--sizes", "4", "8", "--resolve-sizes", "4", "--repeats", "2",
               "--resolves", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert (out / "bench_derivatives.png").stat().st_size > 1000 and (out / "bench_derivatives.json").exists()
    assert f"wrote {out / 'bench_derivatives.json'}" in printed
