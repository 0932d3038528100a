"""Issue 16: no file given to the toolkit runs code (policies and checkpoints are read with
``weights_only``), unreadable ones are named, and the train-pricing / policy items: a policy
validated on another scenario, ``--resume`` over garbage or over a finished run, a checkpoint
saved on Ctrl-C / SIGTERM, ``--updates`` as a reproducible budget. Through real processes and
real files."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TRAIN = ["train-pricing", "--scenario", "tiny", "--markets", "8", "--seed", "1", "--quiet"]


def _cli(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=timeout)


class _Payload:
    """Unpickling this runs ``touch MARKER``: what a crafted policy.pt could do to its reader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _craft(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": 1, "fingerprint": {}, "history": {}, "params": {}, "payload": _Payload(marker)}, path)
    return path


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("trained")
    proc = _cli(*TRAIN, "--updates", "2", "--out", str(base / "run"), cwd=base)
    assert proc.returncode == 0, proc.stderr
    return base / "run"


@pytest.mark.parametrize("command", ["validate", "train-pricing", "fl"])
def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path, command):
    # Prepare: the crafted file where each command reads one
    marker = tmp_path / "MARKER"
    d = tmp_path / "given"
    if command == "validate":
        f = _craft(d / "policy.pt", marker)
        argv = ["validate", "--policy", str(d), "--scenario", "tiny", "--out", str(tmp_path / "v")]
    elif command == "train-pricing":
        f = _craft(d / "checkpoint.pt", marker)
        argv = [*TRAIN, "--updates", "2", "--out", str(d), "--resume"]
    else:
        f = _craft(d / "fl_checkpoint.pt", marker)
        argv = ["fl", "--scenario", "tiny", "--rounds", "2", "--threads", "1", "--out", str(d), "--resume", "--quiet"]
    # Execute
    proc = _cli(*argv, cwd=tmp_path)
    # Assert: refused naming the file; the payload never ran
    line = _one_error_line(proc)
    assert str(f) in line and "run code" in line
    assert not marker.exists()
    assert not (tmp_path / "v").exists()
    # and the file was a real threat: an ordinary torch.load (weights_only=False) runs the payload
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(f)!r}, weights_only=False)"],
                   env=ENV, capture_output=True, timeout=120)
    assert marker.exists()


def test_a_truncated_policy_is_named(tmp_path, trained):
    # Prepare
    pol = shutil.copytree(trained, tmp_path / "pol")
    data = (pol / "policy.pt").read_bytes()
    (pol / "policy.pt").write_bytes(data[: len(data) // 2])
    # Execute
    proc = _cli("validate", "--policy", str(pol), "--scenario", "tiny", "--out", str(tmp_path / "v"), cwd=tmp_path)
    # Assert
    line = _one_error_line(proc)
    assert line.startswith("metatrading: error: --policy:") and str(pol / "policy.pt") in line
    assert "truncated" in line and "Errno" not in line


def test_a_policy_is_not_validated_on_another_scenario_unless_allowed(tmp_path, trained):
    from models.scenario import preset

    other = tmp_path / "other.toml"
    other.write_text('preset = "tiny"\nseed = 5\n')
    # Execute
    refused = _cli("validate", "--policy", str(trained), "--scenario", str(other), "--out", str(tmp_path / "v"),
                   cwd=tmp_path)
    allowed = _cli("validate", "--policy", str(trained), "--scenario", str(other), "--out", str(tmp_path / "w"),
                   "--grid", "5", "--warmup", "2", "--allow-other-scenario", "--quiet", cwd=tmp_path)
    # Assert: both fingerprints named; refused without the flag, a warning with it
    line = _one_error_line(refused)
    trained_fp = preset("tiny").fingerprint()
    from models.scenario import load_scenario

    other_fp = load_scenario(str(other)).fingerprint()
    assert other_fp != trained_fp
    assert "--scenario" in line and trained_fp in line and other_fp in line
    assert not (tmp_path / "v").exists()
    assert allowed.returncode == 0, allowed.stderr
    assert "warning" in allowed.stderr and trained_fp in allowed.stderr and other_fp in allowed.stderr


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, "half"])
def test_resume_from_a_garbage_checkpoint_is_named(tmp_path, trained, content):
    # Prepare
    run = shutil.copytree(trained, tmp_path / "run")
    ckpt = run / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if content == "half" else content)
    before = (run / "policy.pt").read_bytes()
    # Execute
    proc = _cli(*TRAIN, "--updates", "3", "--out", str(run), "--resume", cwd=tmp_path)
    # Assert
    line = _one_error_line(proc)
    assert "--resume" in line and str(ckpt) in line
    assert (run / "policy.pt").read_bytes() == before


def test_resume_refuses_a_finished_run_without_its_checkpoint(tmp_path, trained):
    # Prepare
    run = shutil.copytree(trained, tmp_path / "run")
    (run / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    # Execute
    proc = _cli(*TRAIN, "--updates", "3", "--out", str(run), "--resume", cwd=tmp_path)
    # Assert: refused, the finished run untouched
    line = _one_error_line(proc)
    assert "--resume" in line and "finished run" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_during_training_saves_a_checkpoint_before_the_first_30_s(tmp_path, signo):
    # Prepare: a long training run, checkpoints every 30 s (the default)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", *TRAIN, "--seconds", "600", "--out", str(out)],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # the signals' default actions, even when pytest runs as a background
                            # job (SIGINT ignored there, and inherited)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.monotonic()
    while _cpu_seconds(proc.pid) < 8.0:  # imports, the EPEC reference, then training
        assert proc.poll() is None and time.monotonic() - t0 < 180, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.2)
    assert not (out / "checkpoint.pt").exists()
    # Execute
    proc.send_signal(signo)
    _, err = proc.communicate(timeout=120)
    # Assert: the exit code of the signal, a checkpoint that reads back, then the message
    assert proc.returncode == 128 + signo, err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["update"] >= 1 and len(state["log"]) == state["update"]
    assert "intact" in err
    resumed = _cli(*TRAIN, "--updates", str(state["update"] + 1), "--out", str(out), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "training.json").read_text())["budget"]["updates"] == state["update"] + 1


def test_updates_alone_is_a_budget_the_clock_does_not_cut(tmp_path):
    from benchmarks.cli import build_parser
    from drl import PPOConfig, train_pricing
    from models.scenario import preset

    # the command passes no clock with --updates alone, and the default one without it
    args = build_parser().parse_args(["train-pricing", "--updates", "3", "--out", "x"])
    assert args.seconds is None
    cfg = PPOConfig(n_markets=8, num_steps=4, num_minibatches=2, update_epochs=1, hidden=8)
    ref = (torch.ones(2).numpy(), torch.ones(2).numpy())
    res = train_pricing(preset("tiny"), tmp_path / "a", updates=3, config=cfg, reference=ref)
    assert res.budget["updates"] == 3
    # with --seconds given too, the clock stops it first
    cut = train_pricing(preset("tiny"), tmp_path / "b", updates=10**6, seconds=0.5, config=cfg, reference=ref)
    assert 1 <= cut.budget["updates"] < 10**6
