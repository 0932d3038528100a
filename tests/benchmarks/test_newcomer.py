"""Issue 16, "Also found": what a new user met on a fresh clone. Each test runs the real command
(a real process where the terminal, the permissions or the current folder matter) and fails on
the code before the fix."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from models.io import write_manifest

ROOT = Path(__file__).resolve().parents[2]


def _cli(argv, cwd, prefix=(), timeout=600):
    """``metatrading ARGV`` in a real process whose stdout and stderr are pipes (not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*prefix, sys.executable, "-m", "benchmarks.cli", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout)


# ---------------------------------------------------------------- progress off a terminal
def test_fl_off_a_terminal_prints_one_line_per_round(tmp_path):
    # Execute: stderr is a pipe, as in `metatrading fl ... > log 2>&1`
    proc = _cli(["fl", "--scenario", "tiny", "--rounds", "2", "--epochs", "1", "--threads", "1",
                 "--out", tmp_path / "fl"], tmp_path)
    # Assert: a plain line per finished round, no bar redrawn in place
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [ln.split(" [")[0] for ln in lines if "rounds" in ln] == ["FL mnist5k MSP 0: 1/2 rounds",
                                                                     "FL mnist5k MSP 0: 2/2 rounds"]
    assert "\r" not in proc.stderr and "acc=" in lines[-1]


def test_compare_off_a_terminal_prints_one_line_per_round_naming_the_scheme_and_seed(tmp_path):
    proc = _cli(["compare", "--scenario", "tiny", "--schemes", "epec,fixed", "--seeds", "1", "--rounds", "2",
                 "--epochs", "1", "--reference", "epec", "--out", tmp_path / "cmp"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("compare: ")]
    assert [ln.split(" (")[0] for ln in lines] == [
        "compare: 1/4 rounds [scheme=epec, seed=0]", "compare: 2/4 rounds [scheme=epec, seed=0]",
        "compare: 3/4 rounds [scheme=fixed, seed=0]", "compare: 4/4 rounds [scheme=fixed, seed=0]"]


def test_solve_and_bench_robustness_off_a_terminal_print_lines_and_quiet_prints_none(tmp_path):
    # Execute
    solve = _cli(["solve", "--scenario", "tiny", "--grid", "5", "--out", tmp_path / "s"], tmp_path)
    robust = _cli(["bench", "robustness", "--count", "2", "--grid", "5", "--verify-grid", "0",
                   "--out", tmp_path / "r"], tmp_path)
    quiet = _cli(["solve", "--scenario", "tiny", "--grid", "5", "--quiet", "--out", tmp_path / "q"], tmp_path)
    # Assert
    assert solve.returncode == robust.returncode == quiet.returncode == 0
    assert "solving EPEC: 1 sweep [step " in solve.stderr and "certificate: 5/5 checks" in solve.stderr
    assert [ln.split(" [")[0] for ln in robust.stderr.splitlines()] == ["random scenarios: 1/2 scenarios",
                                                                        "random scenarios: 2/2 scenarios"]
    assert quiet.stderr == ""


def test_line_progress_thins_fine_work_but_always_shows_the_last_unit(capsys):
    from models.progress import LineProgress, progress_bar

    bar = progress_bar(total=50, desc="certificate", unit="check", min_interval=3600.0)
    assert isinstance(bar, LineProgress)  # stderr is captured here: not a terminal
    for _ in range(50):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["certificate: 1/50 checks", "certificate: 50/50 checks"]


# ---------------------------------------------------------------- an --out that cannot be written
def _unprivileged() -> tuple[str, ...]:
    """A prefix that runs a command without root's power to write anywhere: none for a normal
    user; for root, ``setpriv`` dropping every capability (the owner's mode bits then apply)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot stop this process")
    return ("setpriv", "--bounding-set=-all", "--inh-caps=-all")


@pytest.fixture
def locked(tmp_path):
    """``ro``: a folder that takes no new entry, holding ``ro/old`` (an earlier run's results);
    ``shut``: a folder that cannot be entered."""
    ro, shut = tmp_path / "ro", tmp_path / "shut"
    (ro / "old").mkdir(parents=True)
    (ro / "old" / "equilibrium.json").write_text('{"old": true}')
    write_manifest(ro / "old", {"equilibrium.json"})  # an earlier run's results, which --force may replace
    shut.mkdir()
    ro.chmod(0o555)
    shut.chmod(0o600)
    yield {"ro": ro, "shut": shut}
    ro.chmod(0o755)
    shut.chmod(0o755)


@pytest.mark.parametrize("case, argv, text", [
    ("force", ["--out", "{ro}/old", "--force"], "--out: cannot replace {ro}/old: its parent folder {ro} does not"),
    ("shut", ["--out", "{shut}/run"], "--out: cannot reach {shut}/run (Permission denied"),
])
def test_an_out_whose_parent_cannot_be_written_is_refused_naming_the_flag_and_folder(tmp_path, locked, case, argv,
                                                                                    text):
    # Prepare
    prefix = _unprivileged()
    names = {k: str(v) for k, v in locked.items()}
    # Execute
    proc = _cli(["solve", "--scenario", "tiny", "--grid", "5", *(a.format(**names) for a in argv)], tmp_path, prefix)
    # Assert: one line, exit 2, the earlier results untouched
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert text.format(**names) in lines[0] and "Traceback" not in proc.stderr
    assert json.loads((locked["ro"] / "old" / "equilibrium.json").read_text()) == {"old": True}
    assert sorted(os.listdir(locked["ro"])) == ["old"]
    assert sorted(os.listdir(locked["ro"] / "old")) == [".metatrading-manifest.json", "equilibrium.json"]


# ---------------------------------------------------------------- compare's flags
MY_SCHEMES = '''
from benchmarks.compare import Decision, Scheme, register_scheme


class Quarter(Scheme):
    name = "quarter"

    def rewards(self, info):
        return Decision(info.scenario.Rmax / 4.0)


register_scheme("quarter", Quarter)
'''


def _console_script() -> Path:
    """The installed ``metatrading`` command (a console script: the current folder is not on its path)."""
    script = Path(sys.executable).parent / "metatrading"
    if not script.exists():
        pytest.skip("the metatrading console script is not installed next to this Python")
    return script


@pytest.mark.parametrize("module", ["my_schemes", "./my_schemes.py"])
def test_scheme_module_is_found_in_the_current_folder_or_by_its_path(tmp_path, module):
    # Prepare: the user's own scheme module in the folder they work in
    (tmp_path / "my_schemes.py").write_text(MY_SCHEMES)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Execute: as the user types it, with the console script
    proc = subprocess.run([str(_console_script()), "compare", "--scenario", "tiny", "--scheme-module", module,
                           "--schemes", "quarter,fixed", "--reference", "quarter", "--seeds", "1", "--rounds", "1",
                           "--epochs", "1", "--quiet", "--out", "cmp"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=600)
    # Assert
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert list(data["schemes"]) == ["quarter", "fixed"]


@pytest.mark.parametrize("argv, text", [
    (["--scheme-module", "{tmp}/nowhere.py"], "--scheme-module: no such Python file"),
    (["--scheme-module", "{tmp}/broken.py"], "--scheme-module: {tmp}/broken.py: SyntaxError"),
    (["--drl-policy", "{tmp}", "--drl-seconds", "5"], "--drl-seconds: sets the training budget of drl, but --drl-policy"),
    (["--drl-policy", "{tmp}", "--drl-updates", "5"], "--drl-updates: sets the training budget of drl, but --drl-policy"),
])
def test_compare_refuses_a_missing_scheme_file_and_a_budget_beside_a_policy(tmp_path, capsys, argv, text):
    (tmp_path / "broken.py").write_text("def oops(:\n")
    out = tmp_path / "out"
    rc = main(["compare", "--schemes", "fixed,drl", "--out", str(out), *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and text.format(tmp=tmp_path) in err[0], err
    assert not out.exists()


def test_compare_help_states_the_targets_the_code_uses(capsys):
    from benchmarks.compare import DEFAULT_TARGETS

    assert main(["compare", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "fashion-mnist 0.7," in text and "fashion-mnist 0.75" not in text
    for name, target in DEFAULT_TARGETS.items():
        assert f"{name} {target:g}" in text


# ---------------------------------------------------------------- models.load_result reads every result file
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """compare.json, validation.json (stationary) and training.json written by the real commands."""
    d = tmp_path_factory.mktemp("results")
    assert main(["compare", "--scenario", "tiny", "--schemes", "epec,fixed", "--reference", "epec", "--seeds", "1",
                 "--rounds", "1", "--epochs", "1", "--quiet", "--out", str(d / "cmp")]) == 0
    assert main(["validate", "--scenario", "tiny", "--rewards", "5,5", "--grid", "5", "--quiet",
                 "--out", str(d / "val")]) == 0
    assert main(["train-pricing", "--scenario", "tiny", "--updates", "2", "--quiet", "--out", str(d / "tp")]) == 0
    return {"compare": d / "cmp" / "compare.json", "validation": d / "val" / "validation.json",
            "training": d / "tp" / "training.json"}


def test_load_result_reads_compare_validation_and_training_json(written):
    from models.results import CompareResult, TrainingResult, ValidationResult, load_result

    cmp, val, tr = (load_result(written[k]) for k in ("compare", "validation", "training"))
    assert isinstance(cmp, CompareResult) and list(cmp.schemes) == ["epec", "fixed"]
    assert cmp.schemes["fixed"].iom.n == 1 and cmp.settings["rounds"] == 1
    assert isinstance(val, ValidationResult) and val.mode == "stationary" and val.rewards == [5.0, 5.0]
    assert len(val.epec_rewards) == 2 and val.max_deviation_gain_pct >= 0
    assert isinstance(tr, TrainingResult) and tr.budget["updates"] == 2 and [u.update for u in tr.updates] == [1, 2]


@pytest.mark.parametrize("kind, edit, field", [
    ("compare", lambda d: d["schemes"]["fixed"]["iom"].update(mean="high"), "result: schemes.fixed.iom.mean"),
    ("compare", lambda d: d["settings"].pop("rounds"), "settings has no 'rounds'"),
    ("validation", lambda d: d.update(mode="sideways"), "result: mode"),
    ("validation", lambda d: d["epec_rewards"].pop(), "epec_rewards holds 1 values, rewards 2"),
    ("training", lambda d: d["updates"][1].update(rewards="none"), "result: updates[1].rewards"),
    ("training", lambda d: d.pop("seed"), "result: seed"),
])
def test_a_malformed_result_file_is_an_input_error_naming_the_field(written, tmp_path, kind, edit, field):
    from models.errors import InputError
    from models.results import load_result

    data = json.loads(written[kind].read_text())
    edit(data)
    bad = tmp_path / f"{kind}.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_result(bad)
    assert field in str(err.value) and str(bad) in str(err.value)


# ---------------------------------------------------------------- errors name the flag
FLAG_TABLE = [
    (["fl", "--lr", "-1"], "--lr: must be finite and > 0"),
    (["fl", "--batch-size", "0"], "--batch-size: must be an integer >= 1"),
    (["fl", "--momentum", "2"], "--momentum: must be finite"),
    (["fl", "--alpha", "0"], "--alpha: must be a finite number > 0"),
    (["fl", "--epochs", "0"], "--epochs: must be an integer >= 1"),
    (["fl", "--scenario", "tiny", "--msp", "9"], "--msp: the scenario has 2 MSPs"),
    (["solve", "--seed", "-1"], "--seed: must be >= 0"),
    (["bench", "epec", "--sizes", "4x2", "--seed", "-1"], "--seed: must be >= 0"),
    (["fl-deploy", "--nodes", "2", "--lr", "-1"], "--lr: must be finite and > 0"),
    (["fl-deploy", "--nodes", "2", "--batch-size", "0"], "--batch-size: must be an integer >= 1"),
    (["fl-deploy", "--nodes", "2", "--seed", "-1"], "--seed: must be >= 0"),
    (["fl-deploy", "--nodes", "2", "--alpha", "-1"], "--alpha: must be a finite number > 0"),
    (["validate", "--scenario", "tiny", "--rewards", "-1,9"], "--rewards[0]: must be in [0, Rmax = "),
    (["validate", "--scenario", "tiny", "--rewards", "12,,9"], "--rewards: item 2 of '12,,9' is empty"),
    (["validate", "--scenario", "tiny", "--rewards", "5,5", "--seeds", "-1,2"], "--seeds: expected integers >= 0"),
    (["validate", "--scenario", "{tmp}", "--rewards", "5,5"], "--scenario: {tmp} is a folder, not a scenario file"),
    (["solve", "--scenario", "{tmp}"], "--scenario: {tmp} is a folder, not a scenario file"),
    (["solve", "--scenario", "nosuch"], "--scenario: unknown preset 'nosuch'"),
]


@pytest.mark.parametrize("argv, text", FLAG_TABLE, ids=[" ".join(a[:3]) + f"-{i}" for i, (a, _) in enumerate(FLAG_TABLE)])
def test_errors_name_the_flag_not_the_field(tmp_path, capsys, argv, text):
    out = tmp_path / "new" / "run"
    rc = main([*(a.format(tmp=tmp_path) for a in argv), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("metatrading: error: " + text.format(tmp=tmp_path)), lines[0]
    assert not out.parent.exists()


def test_negative_rewards_through_a_real_process_name_the_flag_and_index(tmp_path):
    proc = _cli(["validate", "--scenario", "tiny", "--rewards", "-1,9", "--out", tmp_path / "v"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "metatrading: error: --rewards[0]: must be in [0, Rmax = 30], got -1"]


# ---------------------------------------------------------------- set-up on a stock Debian 12
def test_setup_needs_venv_and_headers_and_declares_an_spdx_license():
    import re
    import tomllib

    make = (ROOT / "Makefile").read_text()
    packages = re.search(r"^APT_PACKAGES := (.*)$", make, re.M).group(1).split()
    assert {"python3-venv", "python3-dev"} <= set(packages)  # `python3 -m venv` and cyipopt's build
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # an SPDX string: no deprecation block on install
    setuptools = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    assert setuptools == "setuptools>=77"  # the first setuptools that reads an SPDX license string


# ---------------------------------------------------------------- sizes that cannot fit
def test_huge_sizes_are_refused_at_once_stating_the_size(tmp_path):
    # Prepare: a scenario file of 100000 MUs x 100 MSPs (drawing it took 400 s before the check)
    huge = tmp_path / "huge.toml"
    huge.write_text("n_mu = 100000\nn_msp = 100\n")
    cases = [
        (["fl-deploy", "--nodes", "1000000"], "--nodes: 1000000 SuperNodes", "GiB is available (MemAvailable)"),
        (["solve", "--grid", "100000000"], "--grid: at most 100000 points, got 100000000", "h or more"),
        (["validate", "--rewards", "5,5", "--scenario", "tiny", "--grid", "100000000"], "--grid: at most", "h or"),
        (["bench", "robustness", "--verify-grid", "100000000"], "--verify-grid: at most 100000", "h or more"),
        (["solve", "--scenario", str(huge)], "n_mu: 100000 MUs x 100 MSPs = 10000000 MU-MSP pairs", "GB"),
    ]
    for argv, text, figure in cases:
        # Execute: a real process, bounded in time (the old code ran for many minutes)
        proc = _cli([*argv, "--out", tmp_path / "out"], tmp_path, timeout=120)
        # Assert
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (argv, proc.stderr)
        assert text in lines[0] and figure in lines[0], lines[0]
        assert not (tmp_path / "out").exists()


def test_memory_check_states_both_figures():
    from benchmarks.conventions import check_memory, mem_available
    from models.errors import InputError

    avail = mem_available()
    if avail is None:
        pytest.skip("no /proc/meminfo here")
    check_memory("--nodes", avail / 2, "half of what is free")  # fits: no error
    with pytest.raises(InputError) as err:
        check_memory("--nodes", 4 * avail, "four times what is free")
    assert str(err.value).startswith("--nodes: four times what is free need about ")
    assert str(err.value).endswith(" GiB is available (MemAvailable)")


# ---------------------------------------------------------------- plots and the summary
def test_time_to_target_bars_with_no_target_reached_say_so_on_an_axis_from_zero(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import bar_plot, draw_bars

    fig, ax = plt.subplots()
    draw_bars(ax, ["drl", "fixed"], [None, None], [None, None], missing="target not reached")
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["target not reached"]
    assert ax.get_ylim()[0] >= 0.0 and list(ax.get_yticks()) == []
    plt.close(fig)
    bar_plot(tmp_path / "t.png", ["drl"], [None], [None], "s", "Time to target", missing="target not reached")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_dynamic_validation_plot_has_integer_round_ticks():
    from benchmarks.validate_cmd import _figure

    rows = [{"seed": 0, "round": r, "oracle_ok": True, "mean_gap_pct": 0.1 * r} for r in range(3)]
    fig = _figure({"mode": "dynamic", "rewards": [1.0, 2.0], "seeds": [0], "per_round": rows, "scenario": "tiny",
                   "mean_gap_pct": {"mean": 0.1, "half_width": None}})
    ticks = [t for t in fig.axes[0].get_xticks() if -0.5 <= t <= 2.5]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_participation_count_ignores_a_solver_residue_of_a_few_nanohertz():
    import numpy as np

    from benchmarks.solve_cmd import PARTICIPATION_SHARE, participants
    from models.scenario import preset

    sc = preset("tiny")
    f = np.zeros((sc.n_mu, sc.n_msp))
    f[0, 0] = 2e-8  # GHz: zero to a solver's tolerance
    f[1, 0] = 0.3
    f[2, 1] = 2 * PARTICIPATION_SHARE * sc.F[2]
    assert participants(sc, f).tolist() == [1, 1]


def test_train_pricing_off_a_terminal_prints_its_updates(tmp_path):
    proc = _cli(["train-pricing", "--scenario", "tiny", "--updates", "2", "--out", tmp_path / "tp"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [ln.split(" [")[0] for ln in proc.stderr.splitlines() if ln.startswith("train-pricing: ")]
    assert lines[0] == "train-pricing: 1/2 updates" and lines[-1] == "train-pricing: 2/2 updates"
