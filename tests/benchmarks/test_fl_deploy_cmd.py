"""metatrading fl-deploy: a real SuperLink, 3 real SuperNodes and flwr run, over TLS with SuperNode
authentication, on loopback.

The deployed App must train exactly what ``metatrading fl`` trains (``fl.trainer.run_fl``)
for the same seeds: global weights within 1e-5. Bounded in time by the command's own
``--timeout``; afterwards no process of the deployment is alive and its port is free.
"""
from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pytest
import torch

pytest.importorskip("flwr", reason="the deployment needs the 'flower' extra")
pytest.importorskip("cryptography")

from benchmarks.cli import main  # noqa: E402
from fl.data import load_dataset  # noqa: E402
from fl.flower.processes import deployment_processes, port_open  # noqa: E402
from fl.allocation import load_allocation  # noqa: E402
from fl.trainer import FLConfig, build_task, run_fl  # noqa: E402

NODES, ROUNDS, SEED, TOL = 3, 2, 5, 1e-5


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "run"
    rc = main(["fl-deploy", "--nodes", str(NODES), "--rounds", str(ROUNDS), "--epochs", "1", "--seed", str(SEED),
               "--out", str(out), "--round-timeout", "120", "--timeout", "400", "--supernode-auth", "--no-progress"])
    return rc, out


@pytest.mark.slow
def test_deployment_equals_builtin_trainer(deployed):
    # Prepare: the run through SuperLink + SuperNodes (TLS), and metatrading fl's trainer on the same task
    rc, out = deployed
    assert rc == 0
    report = json.loads((out / "fl.json").read_text())
    sc, f = load_allocation(out / "allocation.json")
    cfg = FLConfig(rounds=ROUNDS, seed=SEED, epochs=1, path="sequential")
    task = build_task(load_dataset("mnist5k"), sc, f, cfg)
    # Execute
    expected = run_fl(task, cfg)
    got = torch.load(out / "fl_params.pt", weights_only=True)
    # Assert: same global model, same per-round accuracy, and the keys of metatrading fl's fl.json
    assert got.keys() == expected.params.keys()
    gap = max(float((got[k] - expected.params[k]).abs().max()) for k in got)
    assert gap < TOL
    torch.manual_seed(SEED)
    from fl.nets import make_net
    from fl.train import get_params

    init = get_params(make_net(task.dataset.shape, task.dataset.num_classes))
    assert max(float((got[k] - init[k]).abs().max()) for k in got) > 1e-3  # it did train
    assert np.allclose(report["accuracy"], expected.accuracy, atol=1e-9)
    assert report["participants"] == [NODES] * ROUNDS
    assert report["path"] == "flower-deployment"
    assert report["participant_ids"] == task.participants.tolist()
    assert sorted(report["node_of_client"]) == [str(i) for i in range(NODES)]
    for key in ("dataset", "iom", "sizes", "sim_time", "wall_time", "time_to_target", "final_accuracy"):
        assert key in report
    assert (out / "fl.png").stat().st_size > 0


@pytest.mark.slow
def test_deployment_used_tls_and_auth_and_left_nothing_running(deployed):
    rc, out = deployed
    assert rc == 0
    home = out / "deployment" / "flwr-home"
    conn = tomllib.loads((home / "config.toml").read_text())["superlink"]["local-deployment"]
    assert conn["root-certificates"].endswith("ca.crt") and not conn.get("insecure", False)
    link_log = (out / "deployment" / "logs" / "superlink.log").read_text()
    assert "running on https://127.0.0.1:" in link_log
    assert "SuperNode authentication is disabled" not in link_log  # --supernode-auth
    assert len(list((out / "deployment" / "keys").glob("supernode-*.pub"))) == NODES
    assert deployment_processes(home) == []
    assert not port_open(int(conn["address"].rsplit(":", 1)[1]))


@pytest.mark.slow
def test_each_supernode_had_one_clientapp_process_for_all_its_messages(deployed):
    # --isolation process (the default): one long-lived ClientApp process per SuperNode served the
    # client-id query and every round's train message; no flwr-clientapp process per message
    rc, out = deployed
    assert rc == 0
    logs = out / "deployment" / "logs"
    for k in range(NODES):
        worker_log = (logs / f"clientapp-{k}.log").read_text(errors="replace")
        served = re.search(r"ClientApp worker stops after (\d+) task", worker_log)
        assert served and int(served.group(1)) == 1 + ROUNDS, worker_log[-500:]


@pytest.mark.parametrize("argv, field", [
    (["--nodes", "0"], "--nodes"),
    (["--nodes", "2", "--rounds", "0"], "--rounds"),
    (["--nodes", "2", "--round-timeout", "-1"], "--round-timeout"),
    (["--nodes", "2", "--msp", "1"], "--msp"),
    (["--nodes", "2", "--insecure", "--supernode-auth"], "--supernode-auth"),
    (["--nodes", "2", "--dataset", "nope"], None),
])
def test_bad_input_exit_2_nothing_written(tmp_path, capsys, argv, field):
    out = tmp_path / "out"
    assert main(["fl-deploy", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # one line, from the toolkit's checks or from the command's argument parser (an unknown choice)
    assert len(err) == 1 and err[0].startswith(("metatrading: error: ", "metatrading fl-deploy: error: "))
    if field:
        assert f"error: {field}:" in err[0]
    assert not out.exists()


def test_nodes_must_match_the_allocation(tmp_path, capsys):
    # an allocation of 4 MUs x 1 MSP: 4 participants, so --nodes 3 is refused before any process starts
    from models.io import atomic_write_json
    from models.scenario import generate

    sc = generate(4, 1, seed=0)
    atomic_write_json(tmp_path / "eq.json", {"allocations": sc.F[:, None].tolist(), "scenario": sc.to_dict()})
    out = tmp_path / "out"
    assert main(["fl-deploy", "--nodes", "3", "--allocation", str(tmp_path / "eq.json"), "--out", str(out)]) == 2
    assert "--nodes: MSP 0 has 4 participants" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_stops_every_process(tmp_path):
    # Prepare: fl-deploy in its own process, interrupted (SIGINT, as Ctrl-C) once its SuperNodes joined
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", "fl-deploy", "--nodes", "2", "--rounds", "5",
                             "--epochs", "1", "--out", str(out), "--no-progress", "--timeout", "300"],
                            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            # Ctrl-C's default action, even when pytest itself was started with
                            # SIGINT ignored (a background job of a non-interactive shell)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = out / "deployment" / "logs" / "supernode-1.log"
    try:
        deadline = time.monotonic() + 180
        while not (log.exists() and "SuperNode ID" in log.read_text(errors="replace")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        # Execute
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Assert: exit 130 after stopping everything; nothing of the deployment survives
    assert rc == 130
    assert "interrupted" in proc.stderr.read().decode()
    assert deployment_processes(out / "deployment" / "flwr-home") == []
    assert not (out / "fl.json").exists()


@pytest.mark.slow
def test_resumed_deployment_continues_its_checkpoint(tmp_path, capsys):
    # Prepare: a 1-round deployment (it checkpoints after every round), then the same run asked
    # for 2 rounds with --resume
    out = tmp_path / "run"
    base = ["fl-deploy", "--nodes", "2", "--epochs", "1", "--seed", "3", "--out", str(out), "--insecure",
            "--no-progress", "--round-timeout", "120", "--timeout", "300"]
    assert main([*base, "--rounds", "1"]) == 0
    first = json.loads((out / "fl.json").read_text())
    first_run = re.search(r", run (\d+),", capsys.readouterr().out).group(1)
    # a changed setting is refused by its flag before any process starts, and nothing changes
    assert main([*base, "--rounds", "2", "--resume", "--lr", "0.1"]) == 2
    assert "error: --lr: the checkpoint" in capsys.readouterr().err
    assert json.loads((out / "fl.json").read_text()) == first
    # Execute
    assert main([*base, "--rounds", "2", "--resume"]) == 0
    # Assert: round 1 kept, round 2 trained from the checkpoint, as the built-in trainer's 2 rounds
    printed = capsys.readouterr().out
    assert "resuming from round 1 of 2" in printed
    assert re.search(r", run (\d+),", printed).group(1) != first_run  # its own run, not the log's first
    report = json.loads((out / "fl.json").read_text())
    assert report["resumed_from"] == 1 and report["accuracy"][0] == first["accuracy"][0]
    assert len(report["accuracy"]) == 2 and report["sim_time"][1] == pytest.approx(2 * report["sim_time"][0])
    sc, f = load_allocation(out / "allocation.json")
    cfg = FLConfig(rounds=2, seed=3, epochs=1, path="sequential")
    expected = run_fl(build_task(load_dataset("mnist5k"), sc, f, cfg), cfg)
    got = torch.load(out / "fl_params.pt", weights_only=True)
    assert max(float((got[k] - expected.params[k]).abs().max()) for k in got) < TOL
    assert np.allclose(report["accuracy"], expected.accuracy, atol=1e-9)
