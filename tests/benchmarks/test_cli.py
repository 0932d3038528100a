"""benchmarks.cli: the conventions every command shares, and a table of bad inputs over every
command (issue 11): one line naming the flag or field, a non-zero exit, no traceback, and both a
new and an existing output folder left as they were."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.cli import BENCHES, COMMANDS, build_parser, main
from models.io import MANIFEST, write_manifest
from models.scenario import generate, preset

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- fixtures of the table
def _write_equilibrium(path: Path, sc, f) -> Path:
    path.write_text(json.dumps({"status": "converged", "allocations": np.asarray(f).tolist(), "rewards": [1.0] * sc.n_msp,
                                "iom": np.zeros_like(np.asarray(f)).tolist(), "scenario": sc.to_dict()}))
    return path


@pytest.fixture
def files(tmp_path):
    """Inputs of the table, an existing results folder and a path for a new one."""
    d = tmp_path / "inputs"
    d.mkdir()
    sc = generate(4, 2, seed=2).replace(D=np.full((4, 2), 20.0), L=1)
    ok_f = np.tile(sc.F[:, None] / 4, (1, 2))
    over = ok_f.copy()
    over[1, 0] = 100.0
    bad_sc = sc.to_dict()
    bad_sc["Rmax"] = [30.0, -1.0]
    (d / "bad_sc.json").write_text(json.dumps({"allocations": ok_f.tolist(), "scenario": bad_sc}))
    (d / "empty.yaml").write_text("")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "rmax_str.toml").write_text('preset = "tiny"\nRmax = "30"\n')
    (d / "rmax_bool.toml").write_text('preset = "tiny"\nRmax = true\n')
    (d / "a_file.txt").write_text("not a folder")
    (d / "fl_bad.json").write_text(json.dumps({"dataset": "mnist5k", "accuracy": [0.5]}))
    (d / "fl_ok.json").write_text(json.dumps({"dataset": "mnist5k", "msp": 0, "aggregation": "iom", "seed": 0,
                                              "rounds": 1, "accuracy": [0.5], "sim_time": [1.0], "target": 0.9,
                                              "final_accuracy": 0.5}))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "equilibrium.json").write_text('{"old": true}')
    (existing / "notes.txt").write_text("a previous run")
    write_manifest(existing, {"equilibrium.json", "notes.txt"})  # as a run of the toolkit leaves it
    # issue 16: a foreign file beside listed results, results without a manifest, crafted and
    # truncated torch files (the crafted one would write into tmp_path if it ran)
    foreign = d / "foreign"
    (foreign / "paper").mkdir(parents=True)
    (foreign / "equilibrium.json").write_text("{}")
    (foreign / "paper" / "thesis.tex").write_text("draft")
    write_manifest(foreign, {"equilibrium.json"})
    (d / "unlisted").mkdir()
    (d / "unlisted" / "equilibrium.json").write_text("{}")
    import torch

    for name, file in (("evil", "policy.pt"), ("evil_ckpt", "checkpoint.pt"), ("evil_fl", "fl_checkpoint.pt")):
        (d / name).mkdir()
        torch.save({"version": 1, "x": _Payload(tmp_path / "MARKER")}, d / name / file)
    (d / "trunc").mkdir()
    torch.save({"version": 1, "x": torch.ones(100)}, d / "trunc" / "policy.pt")
    data = (d / "trunc" / "policy.pt").read_bytes()
    (d / "trunc" / "policy.pt").write_bytes(data[: len(data) // 2])
    (d / "garbage_ckpt").mkdir()
    (d / "garbage_ckpt" / "checkpoint.pt").write_bytes(b"garbage" * 40)
    return {
        "tmp": tmp_path, "new": tmp_path / "new" / "run", "existing": existing,
        "alloc": _write_equilibrium(d / "alloc.json", sc, ok_f),
        "over": _write_equilibrium(d / "over.json", sc, over),
        "bad_sc": d / "bad_sc.json", "empty": d / "empty.yaml", "list": d / "list.yaml",
        "rmax_str": d / "rmax_str.toml", "rmax_bool": d / "rmax_bool.toml", "file": d / "a_file.txt",
        "fl_bad": d / "fl_bad.json", "fl_ok": d / "fl_ok.json",
        "foreign": foreign, "unlisted": d / "unlisted", "evil": d / "evil", "evil_ckpt": d / "evil_ckpt",
        "evil_fl": d / "evil_fl", "trunc": d / "trunc", "garbage_ckpt": d / "garbage_ckpt",
    }


class _Payload:
    """Unpickling this would run ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


NEW, OLD = "{new}", "{existing}"
FL = ["fl", "--rounds", "1", "--threads", "1"]
# (argv, text the one error line must contain); {name} is replaced by the fixture's path
TABLE = [
    # the output folder, for every command (defect 1, defect 7)
    (["solve", "--scenario", "tiny", "--out", ""], "--out: must name a folder"),
    (["solve", "--scenario", "tiny", "--out", "{file}/sub"], "--out"),
    (["solve", "--scenario", "tiny", "--out", "{file}"], "--out: not a folder"),
    (["solve", "--scenario", "tiny", "--out", "/proc/metatrading-results"], "--out: cannot create folders"),
    (["solve", "--scenario", "tiny", "--out", OLD], "--out"),
    ([*FL, "--out", ""], "--out"),
    ([*FL, "--out", "{file}/sub"], "--out"),
    ([*FL, "--out", OLD], "--force"),
    (["bench", "epec", "--sizes", "4x2", "--out", ""], "--out"),
    (["bench", "epec", "--sizes", "4x2", "--out", "{file}/x/y"], "--out"),
    (["bench", "fl", "--out", OLD], "--out"),
    (["bench", "derivatives", "--sizes", "5", "--out", "{file}/x"], "--out"),
    (["bench", "derivatives", "--sizes", "5"], "--out"),
    (["plot-fl", "{fl_ok}", "--out", ""], "--out"),
    (["plot-fl", "{fl_ok}", "--out", OLD], "--out"),
    # solve: scenario and options
    (["solve", "--scenario", "nosuch", "--out", NEW], "scenario"),
    (["solve", "--scenario", "{empty}", "--seed", "3", "--out", NEW], "scenario"),
    (["solve", "--scenario", "{list}", "--seed", "3", "--out", NEW], "scenario"),
    (["solve", "--scenario", "{rmax_str}", "--out", NEW], "Rmax"),
    (["solve", "--scenario", "{rmax_bool}", "--out", NEW], "Rmax"),
    (["solve", "--scenario", "{bad_sc}", "--out", NEW], "scenario.Rmax[1]"),
    (["solve", "--scenario", "{alloc}", "--seed", "2", "--out", NEW], "seed"),
    (["solve", "--tol", "0", "--out", NEW], "--tol"),
    (["solve", "--tol", "abc", "--out", NEW], "--tol"),
    (["solve", "--max-iter", "0", "--out", NEW], "--max-iter"),
    (["solve", "--grid", "1", "--out", NEW], "--grid"),
    (["solve", "--damping", "0", "--out", NEW], "--damping"),
    (["solve", "--method", "newton", "--out", NEW], "--method"),
    (["solve", "--seed", "-1", "--out", NEW], "seed"),
    (["solve", "--colour", "red", "--out", NEW], "--colour"),
    (["solve", "--tol", "-1", "--out", OLD, "--force"], "--tol"),
    (["solve", "--scenario", "{rmax_str}", "--out", OLD, "--force"], "Rmax"),
    # fl
    ([*FL, "--rounds", "0", "--out", NEW], "--rounds"),
    ([*FL, "--target", "1.5", "--out", NEW], "--target"),
    ([*FL, "--threads", "0", "--out", NEW], "--threads"),
    ([*FL, "--seed", "-2", "--out", NEW], "--seed"),
    ([*FL, "--aggregation", "median", "--out", NEW], "--aggregation"),
    ([*FL, "--allocation", "{alloc}", "--scenario", "tiny", "--out", NEW], "--scenario"),
    ([*FL, "--allocation", "{alloc}", "--scenario-seed", "1", "--out", NEW], "--scenario-seed"),
    ([*FL, "--allocation", "{over}", "--out", NEW], "CPU budget"),
    ([*FL, "--allocation", "{bad_sc}", "--out", NEW], "scenario.Rmax[1]"),
    ([*FL, "--allocation", "{tmp}/missing.json", "--out", NEW], "--allocation"),
    ([*FL, "--allocation", "{alloc}", "--dataset", "cifar-1000", "--out", NEW], "dataset"),
    ([*FL, "--allocation", "{alloc}", "--msp", "7", "--out", NEW], "msp"),
    ([*FL, "--allocation", "{alloc}", "--resume", "--out", NEW], "--resume"),
    ([*FL, "--allocation", "{alloc}", "--resume", "--out", OLD], "--resume"),
    ([*FL, "--allocation", "{alloc}", "--resume", "--force", "--out", OLD], "--force"),
    ([*FL, "--allocation", "{over}", "--force", "--out", OLD], "CPU budget"),
    # issue 16: --force deletes only what a manifest lists; no file runs code
    (["solve", "--scenario", "tiny", "--out", "{foreign}", "--force"], "paper/thesis.tex"),
    (["solve", "--scenario", "tiny", "--out", "{unlisted}", "--force"], "no .metatrading-manifest.json"),
    (["validate", "--policy", "{evil}", "--scenario", "tiny", "--out", NEW], "--policy: refused"),
    (["validate", "--policy", "{trunc}", "--scenario", "tiny", "--out", NEW], "truncated"),
    (["train-pricing", "--scenario", "tiny", "--updates", "1", "--out", "{evil_ckpt}", "--resume"], "--resume: refused"),
    (["train-pricing", "--scenario", "tiny", "--updates", "1", "--out", "{garbage_ckpt}", "--resume"], "--resume"),
    ([*FL, "--scenario", "tiny", "--out", "{evil_fl}", "--resume"], "--resume: refused"),
    # bench epec
    (["bench", "epec", "--sizes", "3y2", "--out", NEW], "--sizes"),
    (["bench", "epec", "--sizes", "4x2", "--naive-max-n", "-1", "--out", NEW], "--naive-max-n"),
    (["bench", "epec", "--sizes", "4x2", "--grid", "0", "--out", NEW], "--grid"),
    (["bench", "epec", "--sizes", "4x2", "--seed", "-1", "--out", NEW], "seed"),
    # bench fl
    (["bench", "fl", "--clients", "0", "--out", NEW], "--clients"),
    (["bench", "fl", "--reps", "0", "--out", NEW], "--reps"),
    (["bench", "fl", "--flower-rounds", "-1", "--out", NEW], "--flower-rounds"),
    (["bench", "fl", "--seed", "-1", "--out", NEW], "--seed"),
    (["bench", "fl", "--samples", "100000", "--out", NEW], "--samples"),
    (["bench", "fl", "--deploy-poll-caps", "0", "--out", NEW], "--deploy-poll-caps"),
    (["bench", "fl", "--deploy-waits", "stock", "--deploy-poll-caps", "0.2", "--out", NEW], "--deploy-poll-caps"),
    # bench derivatives
    (["bench", "derivatives", "--sizes", "2", "--out", NEW], "--sizes"),
    (["bench", "derivatives", "--repeats", "0", "--out", NEW], "--repeats"),
    (["bench", "derivatives", "--families", "tree", "--out", NEW], "--families"),
    (["bench", "derivatives", "--seed", "-1", "--out", NEW], "--seed"),
    # train-pricing, validate, bench pricing
    (["train-pricing", "--seconds", "0", "--out", NEW], "--seconds"),
    (["train-pricing", "--scenario", "nosuch", "--seconds", "1", "--out", NEW], "scenario"),
    (["train-pricing", "--seconds", "1", "--out", OLD], "--out"),
    (["validate", "--rewards", "1.0,2.0", "--scenario", "default", "--out", NEW], "--rewards"),
    (["validate", "--rewards", "1.0,2.0,-3.0", "--scenario", "default", "--out", NEW], "--rewards"),
    (["validate", "--policy", "{file}", "--scenario", "default", "--out", NEW], "--policy"),
    (["bench", "pricing", "--batches", "0", "--out", NEW], "--batches"),
    (["bench", "pricing", "--repeats", "0", "--out", NEW], "--repeats"),
    # fl-deploy
    (["fl-deploy", "--nodes", "0", "--out", NEW], "--nodes"),
    (["fl-deploy", "--nodes", "2", "--rounds", "0", "--out", NEW], "--rounds"),
    (["fl-deploy", "--nodes", "2", "--dataset", "cifar", "--out", NEW], "--dataset"),
    (["fl-deploy", "--nodes", "2", "--out", OLD], "--out"),
    (["fl-deploy", "--nodes", "2", "--poll-cap", "0", "--out", NEW], "--poll-cap"),
    (["fl-deploy", "--nodes", "2", "--resume", "--out", NEW], "--resume"),
    (["fl-deploy", "--nodes", "2", "--poll-cap", "0.2", "--stock-waits", "--out", NEW], "--poll-cap"),
    # compare
    (["compare", "--schemes", "fixed,nosuch", "--out", NEW], "--schemes"),
    (["compare", "--dataset", "cifar", "--schemes", "fixed", "--out", NEW], "--dataset"),
    (["compare", "--seeds", "0", "--schemes", "fixed", "--out", NEW], "--seeds"),
    (["compare", "--rounds", "0", "--schemes", "fixed", "--out", NEW], "--rounds"),
    (["compare", "--schemes", "fixed", "--out", OLD], "--out"),
    # bench robustness
    (["bench", "robustness", "--count", "0", "--out", NEW], "--count"),
    (["bench", "robustness", "--seed", "-3", "--out", NEW], "--seed"),
    (["bench", "robustness", "--grid", "1", "--out", NEW], "--grid"),
    (["bench", "robustness", "--verify-grid", "-1", "--out", NEW], "--verify-grid"),
    (["bench", "robustness", "--count", "2", "--out", OLD], "--out"),
    # issue 16: flags named as flags, number lists, a folder as scenario, sizes that cannot fit
    ([*FL, "--lr", "-1", "--out", NEW], "--lr: must be finite"),
    ([*FL, "--batch-size", "0", "--out", NEW], "--batch-size: must be"),
    (["fl-deploy", "--nodes", "2", "--momentum", "1", "--out", NEW], "--momentum: must be"),
    (["validate", "--rewards", "-1,9,13", "--scenario", "default", "--out", NEW], "--rewards[0]: must be in [0"),
    (["validate", "--rewards", "12,,9", "--scenario", "default", "--out", NEW], "--rewards: item 2 of '12,,9' is empty"),
    (["solve", "--scenario", "{tmp}", "--out", NEW], "--scenario: {tmp} is a folder"),
    (["solve", "--grid", "100000000", "--out", NEW], "--grid: at most 100000 points"),
    (["fl-deploy", "--nodes", "1000000", "--out", NEW], "GiB is available (MemAvailable)"),
    (["compare", "--schemes", "fixed,drl", "--drl-policy", "{tmp}", "--drl-seconds", "5", "--out", NEW], "--drl-seconds"),
    (["compare", "--scheme-module", "{tmp}/nowhere.py", "--out", NEW], "--scheme-module: no such Python file"),
    (["bench", "robustness", "--workers", "0", "--out", NEW], "--workers"),
    (["bench", "peers", "--only", "nosuch", "--out", NEW], "--only: unknown instance(s) nosuch"),
    (["bench", "peers", "--timeout", "-1", "--out", NEW], "--timeout: must be a number of seconds"),
    (["bench", "certificate", "--seed", "-1", "--sizes", "20x3", "--out", NEW], "--seed: must be >= 0"),
    (["bench", "certificate", "--sizes", "20by3", "--out", NEW], "--sizes"),
    (["bench", "certificate", "--sizes", "20x3", "--out", OLD], "--out"),
    # bench sweep
    (["bench", "sweep", "--repeats", "0", "--out", NEW], "--repeats"),
    (["bench", "sweep", "--values", "0.3:0.5:3", "--repeats", "4", "--out", NEW], "--repeats"),
    (["bench", "sweep", "--param", "nope", "--out", NEW], "--param"),
    (["bench", "sweep", "--values", "-1,0.5", "--out", NEW], "--values"),
    (["bench", "sweep", "--out", OLD], "--out"),
    # sweep
    (["sweep", "--param", "nosuch", "--values", "1,2", "--out", NEW], "--param"),
    (["sweep", "--param", "rho", "--values", "0.5:1", "--out", NEW], "--values"),
    (["sweep", "--param", "rho", "--values", "0.5,-2", "--out", NEW], "--values"),
    (["sweep", "--param", "rho", "--values", "0.5", "--param2", "lam", "--out", NEW], "--values2"),
    (["sweep", "--param", "rho", "--values", "0.5", "--out", OLD], "--out"),
    (["sweep", "--param", "rho", "--values", "0.5", "--resume", "--out", NEW], "--resume"),
    # plot-fl, presets, the command itself
    (["plot-fl", "{tmp}/missing.json", "--out", NEW], "FL_JSON"),
    (["plot-fl", "{fl_bad}", "--out", NEW], "FL_JSON"),
    (["plot-fl", "{fl_ok}", "--labels", "a,b", "--out", NEW], "--labels"),
    (["plot-fl", "--out", NEW], "FL_JSON"),
    (["presets", "--seed", "-1"], "--seed"),
    (["presets", "--bogus"], "--bogus"),
    (["nosuch"], "COMMAND"),
    (["bench", "nosuch"], "TARGET"),
]


def _argv(argv, files):
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]


def test_the_table_covers_every_command_with_40_kinds_of_bad_input():
    commands = {a[0] if a[0] != "bench" else f"bench {a[1]}" for a, _ in TABLE}
    assert {*COMMANDS, *(f"bench {b}" for b in BENCHES)} <= commands
    assert len(TABLE) >= 40


@pytest.mark.parametrize("argv,text", TABLE, ids=[" ".join(a[:3]) + f"-{i}" for i, (a, _) in enumerate(TABLE)])
def test_bad_input_gives_one_line_naming_the_field_and_changes_nothing(files, capsys, argv, text):
    # Prepare
    before = _snapshot(files["existing"])
    siblings = set(os.listdir(files["tmp"]))
    # Execute
    rc = main(_argv(argv, files))
    # Assert
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2
    assert len(lines) == 1, err
    assert _argv([text], files)[0] in lines[0] and "Traceback" not in err
    assert not files["new"].exists() and not files["new"].parent.exists()
    assert _snapshot(files["existing"]) == before
    assert set(os.listdir(files["tmp"])) == siblings  # no staging or backup folder left behind


@pytest.mark.parametrize("argv,text", [
    (["solve", "--scenario", "tiny", "--out", ""], "--out"),
    ([*FL, "--allocation", "{over}", "--out", NEW], "CPU budget"),
    (["bench", "derivatives", "--sizes", "5"], "--out"),
])
def test_bad_input_through_a_real_process(files, argv, text):
    # Prepare
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Execute
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cli", *_argv(argv, files)], cwd=files["tmp"],
                          capture_output=True, text=True, env=env, timeout=300)
    # Assert
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and text in lines[0], proc.stderr
    assert not files["new"].exists()
    assert sorted(os.listdir(files["tmp"])) == ["existing", "inputs"]  # nothing written into the cwd


# ---------------------------------------------------------------- the output-folder policy
def test_empty_out_writes_nothing_into_the_current_folder(tmp_path, monkeypatch, capsys):
    # defect 1: --out "" wrote equilibrium.json and convergence.png into the current folder
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "--scenario", "tiny", "--grid", "5", "--out", ""]) == 2
    assert os.listdir(tmp_path) == []


def test_out_under_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    # defect 1: NotADirectoryError traceback after the whole solve
    import epec

    calls = []
    monkeypatch.setattr(epec, "solve_scenario", lambda *a, **k: calls.append(1))
    (tmp_path / "some.toml").write_text('preset = "tiny"\n')
    rc = main(["solve", "--scenario", "tiny", "--out", str(tmp_path / "some.toml" / "sub")])
    assert rc == 2 and calls == []
    assert "under a file" in capsys.readouterr().err


def test_a_failure_next_to_a_later_success_is_impossible(tmp_path, capsys):
    # Prepare: defect 7, a failed solve leaves failure.json
    out = tmp_path / "run"
    assert main(["solve", "--scenario", "tiny", "--out", str(out), "--max-iter", "1", "--tol", "1e-12"]) == 1
    assert (out / "failure.json").exists()
    # Execute: the next run into that folder is refused, then replaces it with --force
    refused = main(["solve", "--scenario", "tiny", "--grid", "5", "--out", str(out)])
    forced = main(["solve", "--scenario", "tiny", "--grid", "5", "--out", str(out), "--force"])
    # Assert: the folder describes one run, the successful one
    assert refused == 2 and forced == 0
    assert sorted(os.listdir(out)) == [MANIFEST, "convergence.png", "equilibrium.json"]
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.parametrize("out", [".", ".."])
def test_force_never_replaces_the_current_folder_or_one_above_it(tmp_path, monkeypatch, capsys, out):
    here = tmp_path / "project" / "work"
    here.mkdir(parents=True)
    (here / "notes.txt").write_text("mine")
    monkeypatch.chdir(here)
    assert main(["solve", "--scenario", "tiny", "--out", out, "--force"]) == 2
    assert "--force: will not replace" in capsys.readouterr().err
    assert (here / "notes.txt").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["project"]


def test_force_gives_the_previous_results_back_when_the_run_is_interrupted(tmp_path, capsys, monkeypatch):
    # Prepare: a finished folder, and a run that is interrupted (Ctrl-C) after writing a file
    import benchmarks.presets_cmd as cmd

    out = tmp_path / "run"
    out.mkdir()
    (out / "fl.json").write_text("old")
    write_manifest(out, {"fl.json"})
    old = _snapshot(out)

    def interrupted(args):
        (Path(args.out) / "fl_checkpoint.pt").write_text("new, from another seed")
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "run", interrupted)
    monkeypatch.setattr(cmd, "add_arguments", lambda p: p.add_argument("--out", required=True))
    # Execute
    rc = main(["presets", "--out", str(out), "--force"])
    # Assert: the old results are back, alone
    assert rc == 130
    assert _snapshot(out) == old and (out / "fl.json").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_every_command_with_out_gets_force_and_quiet():
    parser = build_parser()
    subs = parser._subparsers._group_actions[0].choices
    parsers = [p for name, p in subs.items() if name != "bench"]
    parsers += list(subs["bench"]._subparsers._group_actions[0].choices.values())
    for p in parsers:
        flags = p._option_string_actions
        assert "--quiet" in flags, p.prog
        if "--out" in flags:
            assert "--force" in flags, p.prog


def test_help_text_for_every_flag_and_no_backticks():
    parser = build_parser()
    assert "`" not in parser.format_help()
    subs = parser._subparsers._group_actions[0].choices
    parsers = [p for name, p in subs.items() if name != "bench"]
    parsers += list(subs["bench"]._subparsers._group_actions[0].choices.values())
    for p in parsers:
        assert "`" not in p.format_help(), p.prog
        for action in p._actions:
            if action.option_strings or action.dest not in ("help",):
                assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"
    flower = next(a for a in subs["bench"]._subparsers._group_actions[0].choices["fl"]._actions
                  if "--flower-rounds" in a.option_strings)
    assert "0 leaves" in flower.help


def test_version_and_presets(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"metatrading {version('metatrading')}"
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("tiny", "default", "large", "xl"):
        sc = preset(name)
        row = next(line.split() for line in out.splitlines() if line.split()[:1] == [name])
        assert row[1:3] == [str(sc.n_mu), str(sc.n_msp)]


def test_no_progress_bar_off_a_terminal_but_lines_and_none_with_quiet(tmp_path, capfd):
    from types import SimpleNamespace

    from benchmarks.conventions import show_progress

    assert show_progress(SimpleNamespace(quiet=True)) is False
    assert main(["solve", "--scenario", "tiny", "--grid", "5", "--out", str(tmp_path / "a")]) == 0
    err = capfd.readouterr().err
    # stderr is captured (not a terminal): no bar redrawn in place, one line per sweep (issue 16)
    assert "\r" not in err and "solving EPEC: 1 sweep" in err
    assert main(["solve", "--scenario", "tiny", "--grid", "5", "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert capfd.readouterr().err == ""


def test_a_closed_stdout_ends_quietly(tmp_path):
    # `metatrading presets | head -0`: the reader is gone before the command prints
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", "presets"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(repo)})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("text, kind, minimum, message", [
    ("1,x", int, 1, "--f: expected comma-separated integers, got '1,x'"),
    ("1.5", int, 1, "--f: expected comma-separated integers, got '1.5'"),
    ("4,-1", int, 1, "--f: expected integers >= 1, got '4,-1'"),
    (" , ", int, 0, "--f: item 1 of ' , ' is empty (expected comma-separated integers)"),
    ("12,,9", float, None, "--f: item 2 of '12,,9' is empty (expected comma-separated numbers)"),
    ("1,2,", int, 1, "--f: item 3 of '1,2,' is empty (expected comma-separated integers)"),
    ("1,x", float, None, "--f: expected comma-separated numbers, got '1,x'"),
])
def test_comma_separated_numbers_name_the_flag(text, kind, minimum, message):
    from benchmarks.conventions import parse_numbers
    from models.errors import InputError

    with pytest.raises(InputError) as exc:
        parse_numbers(text, "--f", kind, minimum=minimum)
    assert str(exc.value) == message


def test_comma_separated_numbers():
    from benchmarks.conventions import parse_numbers

    assert parse_numbers("1, 64, 8192", "--batches", int, minimum=1) == [1, 64, 8192]
    assert parse_numbers("0", "--seeds", int, minimum=0) == [0]
    assert parse_numbers("12.0,9.1", "--rewards") == [12.0, 9.1]
    assert parse_numbers("", "--rewards") == []
