"""benchmarks.conventions, end to end through the command line (issue 16): ``--force`` deletes
only what the toolkit wrote (its manifest), every catchable signal gives the previous results
back, and a run killed with SIGKILL leaves nothing hidden for good."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.io import MANIFEST, read_manifest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=300)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _previous(tmp: Path, name: str) -> list[str]:
    return sorted(p for p in os.listdir(tmp) if p.startswith(f".{name}.previous-"))


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A finished ``solve --scenario tiny`` folder, as the toolkit leaves it (copied per test)."""
    base = tmp_path_factory.mktemp("earlier")
    proc = _cli("solve", "--scenario", "tiny", "--grid", "5", "--out", str(base / "run"), "--quiet", cwd=base)
    assert proc.returncode == 0, proc.stderr
    return base / "run"


def _copy_of(earlier: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(earlier, to)
    return to


def test_a_run_lists_what_it_wrote_in_its_manifest(earlier):
    assert read_manifest(earlier) == {"equilibrium.json", "convergence.png"}
    assert sorted(os.listdir(earlier)) == [MANIFEST, "convergence.png", "equilibrium.json"]


def test_force_never_deletes_a_file_of_the_users(tmp_path, earlier):
    # Prepare: earlier results and the user's thesis beside them
    out = _copy_of(earlier, tmp_path / "p")
    (out / "paper").mkdir()
    (out / "paper" / "thesis.tex").write_text("draft")
    before = _snapshot(out)
    # Execute
    proc = _cli("solve", "--scenario", "tiny", "--out", str(out), "--force", cwd=tmp_path)
    # Assert: refused, one line naming the foreign file, nothing changed
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "--force" in lines[0] and str(out / "paper" / "thesis.tex") in lines[0]
    assert (out / "paper" / "thesis.tex").read_text() == "draft"
    assert _snapshot(out) == before and _previous(tmp_path, "p") == []


def test_force_refuses_a_folder_without_a_manifest(tmp_path, earlier):
    # Prepare: an old results/ parent holding several runs, written before manifests existed
    results = tmp_path / "results"
    for run in ("default", "large"):
        _copy_of(earlier, results / run)
        (results / run / MANIFEST).unlink()
    before = _snapshot(results)
    # Execute
    proc = _cli("solve", "--scenario", "tiny", "--out", "results", "--force", cwd=tmp_path)
    # Assert: refused, saying why and what to do
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"no {MANIFEST}" in lines[0] and "by hand" in lines[0]
    assert _snapshot(results) == before


def _catchable() -> None:
    """In the child: SIGINT, SIGTERM and SIGHUP at their defaults, as in a terminal (a test run in
    the background, under nohup or `&`, hands its children SIGINT and SIGHUP ignored)."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def _start_large(tmp_path: Path, out: Path) -> subprocess.Popen:
    """``solve --scenario large --force`` over ``out``, returned once it has moved the old results aside."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", "solve", "--scenario", "large", "--out", str(out),
                             "--force", "--quiet"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_catchable)
    t0 = time.monotonic()
    while not _previous(tmp_path, out.name):
        assert proc.poll() is None and time.monotonic() - t0 < 120, "the run ended before moving the results aside"
        time.sleep(0.05)
    time.sleep(0.5)  # into the solve
    assert proc.poll() is None, "the solve finished before the signal"
    return proc


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_every_catchable_signal_gives_the_previous_results_back(tmp_path, earlier, signo):
    # Prepare
    out = _copy_of(earlier, tmp_path / "k")
    before = _snapshot(out)
    proc = _start_large(tmp_path, out)
    # Execute
    proc.send_signal(signo)
    _, err = proc.communicate(timeout=120)
    # Assert: the conventional exit code, the old results back unchanged, no hidden copy left
    assert proc.returncode == 128 + signo, err
    assert "back unchanged" in err and "Traceback" not in err
    assert _snapshot(out) == before
    assert _previous(tmp_path, "k") == []


@pytest.mark.parametrize("swallowed", [False, True], ids=["raised", "swallowed"])
@pytest.mark.parametrize("signo", [signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_landing_inside_an_import_is_still_a_stop(tmp_path, earlier, monkeypatch, capsys, signo,
                                                           swallowed):
    # Prepare: the signal arrives while a class body runs (as in an import of scipy.stats), where
    # Python wraps the handler's exception: RuntimeError "Error calling __set_name__"
    import benchmarks.solve_cmd
    from benchmarks.cli import main

    class Lands:
        def __set_name__(self, owner, name):
            os.kill(os.getpid(), signo)
            for _ in range(100_000):  # the handler runs between two bytecodes
                pass

    def run(args):
        try:
            type("Imported", (), {"attr": Lands()})
        except RuntimeError:
            if swallowed:  # code that treats a failed import as "not installed" and goes on
                return 0
            raise
        raise AssertionError("the signal did not land")

    monkeypatch.setattr(benchmarks.solve_cmd, "run", run)
    out = _copy_of(earlier, tmp_path / "k")
    before = _snapshot(out)
    # Ctrl-C as in a terminal (a background test run inherits SIGINT ignored)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    # Execute
    try:
        rc = main(["solve", "--scenario", "tiny", "--out", str(out), "--force", "--quiet"])
    finally:
        signal.signal(signal.SIGINT, old_int)
    # Assert: a stop (its exit code, its one line), the old results back unchanged
    err = capsys.readouterr().err
    assert rc == 128 + signo, err
    assert "back unchanged" in err
    assert _snapshot(out) == before and _previous(tmp_path, "k") == []


def test_a_hard_kill_leftover_is_moved_back_by_the_next_run(tmp_path, earlier):
    # Prepare: a --force run killed with SIGKILL hides the old results in .k.previous-*
    out = _copy_of(earlier, tmp_path / "k")
    before = _snapshot(out)
    proc = _start_large(tmp_path, out)
    proc.kill()
    proc.communicate(timeout=60)
    assert len(_previous(tmp_path, "k")) == 1
    # Execute: the next run into that folder
    nxt = _cli("solve", "--scenario", "tiny", "--out", str(out), cwd=tmp_path)
    # Assert: the old results are back (and, without --force, not replaced)
    assert nxt.returncode == 2
    assert "moved the previous results" in nxt.stderr and "already holds results" in nxt.stderr
    assert _snapshot(out) == before
    assert _previous(tmp_path, "k") == []


def test_a_hard_kill_leftover_next_to_a_foreign_file_is_reported(tmp_path, earlier):
    # Prepare: a leftover from a killed run, and the folder now holds a file of the user's
    out = tmp_path / "k"
    _copy_of(earlier, tmp_path / ".k.previous-999999999-abc")
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # Execute
    proc = _cli("solve", "--scenario", "tiny", "--out", str(out), "--force", cwd=tmp_path)
    # Assert: refused, naming both folders; both left as they were
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert ".k.previous-999999999-abc" in lines[0] and str(out / "notes.txt") in lines[0]
    assert (out / "notes.txt").read_text() == "mine"
    assert _snapshot(tmp_path / ".k.previous-999999999-abc") == _snapshot(earlier)
