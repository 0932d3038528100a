"""fl/flower/deployment.py, fl/flower/processes.py and fl/tls.py: real SuperLink / SuperNode processes on loopback.

- a SuperNode killed in the middle of a round: the run stops with a clear error, in bounded time;
- a SuperNode without the deployment's CA certificate cannot join, nor one whose key is not
  registered when SuperNode authentication is on (one with both can);
- after each test, no process it started (or that Flower started below them) is alive.
"""
from __future__ import annotations

import re
import threading
import time

import pytest

pytest.importorskip("flwr", reason="the deployment needs the 'flower' extra")
pytest.importorskip("cryptography")

from fl.flower.deployment import (DeploymentError, NodeSpec, ProcessSet, deployment_processes,  # noqa: E402
                                  flower_env, free_ports, register_supernode, run_local_deployment, wait_for_port,
                                  write_connection)
from fl.tls import make_local_certificates, make_supernode_key  # noqa: E402
from models.io import atomic_write_json  # noqa: E402
from models.scenario import generate  # noqa: E402

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def wait_for_text(path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_supernode_killed_mid_round_stops_the_run_with_a_clear_error(tmp_path):
    # Prepare: 2 MUs x 1 MSP; SuperNode 1 is killed (SIGKILL) once its first train message arrives
    sc = generate(2, 1, seed=0)
    atomic_write_json(tmp_path / "eq.json", {"allocations": sc.F[:, None].tolist(), "scenario": sc.to_dict()})
    # a short round timeout keeps the test short; the SuperNodes' connection and the client-id
    # query still get fl.flower.app.CONNECT_TIMEOUT_S
    run_config = {"allocation": str(tmp_path / "eq.json"), "rounds": 1, "epochs": 1, "round-timeout": 8.0,
                  "out-dir": str(tmp_path / "out")}
    procs = ProcessSet()
    killed = threading.Event()

    def kill_node_1(ps: ProcessSet) -> None:
        def watch():
            if wait_for_text(tmp_path / "work" / "logs" / "supernode-1.log", "Receiving: train message", 200):
                ps.roots["supernode-1"].kill()
                killed.set()
        threading.Thread(target=watch, daemon=True).start()

    # Execute (with the stock flower-supernode command and Flower's own waits: the other deployment
    # tests run the default, fl/flower/supernode_launcher.py)
    t0 = time.monotonic()
    with pytest.raises(DeploymentError) as err:
        run_local_deployment(REPO, [NodeSpec(k, 2, k) for k in range(2)], run_config, tmp_path / "work",
                             timeout_s=240, on_started=kill_node_1, processes=procs, short_waits=False)
    # Assert: it was killed mid-round, the error names the round and the client, nothing hangs or survives
    assert killed.is_set()
    # the killed client is named (with its MU); on a loaded machine the live one may miss the
    # short timeout too and be named beside it
    assert re.search(r"round 1: no reply from client\(s\) \[(0, )?1\] \(MU (0, )?1\)", str(err.value)), str(err.value)
    assert time.monotonic() - t0 < 240
    assert not (tmp_path / "out" / "fl.json").exists()
    assert procs.alive() == []
    assert deployment_processes(tmp_path / "work" / "flwr-home") == []


def test_clientapp_worker_refuses_a_bad_poll_interval(capsys):
    from fl.flower.worker import parse_args

    assert parse_args(["--runtime-api-address", "127.0.0.1:1", "--insecure"]).poll > 0
    with pytest.raises(SystemExit) as exc:
        parse_args(["--runtime-api-address", "127.0.0.1:1", "--insecure", "--poll", "0"])
    assert exc.value.code == 2
    assert "--poll" in capsys.readouterr().err


@pytest.mark.slow
def test_only_supernodes_with_the_ca_and_a_registered_key_join(tmp_path):
    # Prepare: a TLS SuperLink with SuperNode authentication; the deployment's CA and a foreign CA
    certs = make_local_certificates(tmp_path / "tls")
    foreign = make_local_certificates(tmp_path / "other")
    home = tmp_path / "home"
    env = flower_env(home)
    link_port, *node_ports = free_ports(5)
    write_connection(home, link_port, certs.ca_cert)
    procs = ProcessSet()
    try:
        link = procs.start("superlink", ["flower-superlink", "--host", "127.0.0.1", "--port", str(link_port),
                                         "--disable-runtime-dependency-installation", "--enable-supernode-auth",
                                         "--ssl-ca-certfile", str(certs.ca_cert), "--ssl-certfile",
                                         str(certs.server_cert), "--ssl-keyfile", str(certs.server_key)],
                           tmp_path / "superlink.log", env, tmp_path)
        wait_for_port(link_port, link, 60, "flower-superlink", tmp_path / "superlink.log")
        keys = {}
        for name in ("good", "foreign", "system", "unregistered"):
            keys[name], pub = make_supernode_key(tmp_path / "keys" / name)
            if name != "unregistered":
                register_supernode(pub, procs, env, tmp_path, tmp_path / "register.log", 120)
        # Execute: registered keys with the CA, a foreign CA, the system's roots only; the CA but
        # an unregistered key
        cases = {"good": ["--root-certificates", str(certs.ca_cert)],
                 "foreign": ["--root-certificates", str(foreign.ca_cert)],
                 "system": [],
                 "unregistered": ["--root-certificates", str(certs.ca_cert)]}
        for (name, tls), port in zip(cases.items(), node_ports):
            procs.start(name, ["flower-supernode", "--superlink", f"127.0.0.1:{link_port}", *tls,
                               "--auth-supernode-private-key", str(keys[name]),
                               "--host", "127.0.0.1", "--port", str(port), "--max-retries", "2",
                               "--max-wait-time", "20", "--node-config", "partition-id=0 num-partitions=1 mu-id=0"],
                        tmp_path / f"{name}.log", env, tmp_path)
        # Assert: only the node with the CA and a registered key joins; the others give up
        assert wait_for_text(tmp_path / "good.log", "SuperNode ID", 90)
        for name in ("foreign", "system", "unregistered"):
            procs.roots[name].wait(timeout=90)
            log = (tmp_path / f"{name}.log").read_text(errors="replace")
            assert "SuperNode ID" not in log
            if name != "unregistered":
                assert "CERTIFICATE_VERIFY_FAILED" in log or "certificate verify failed" in log
    finally:
        left = procs.stop()
    assert left == [] and procs.alive() == []
    assert deployment_processes(home) == []


@pytest.mark.slow
def test_superlink_port_taken_before_it_binds_is_retried_on_other_ports(tmp_path, monkeypatch):
    # Prepare: the first ports handed out include one another program listens on by then
    import socket

    import fl.flower.deployment as deploy

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = deploy.free_ports
    calls = []

    def ports(n, host="127.0.0.1"):
        calls.append(n)
        got = real(n, host)
        return [taken, *got[1:]] if len(calls) == 1 else got

    monkeypatch.setattr(deploy, "free_ports", ports)
    sc = generate(1, 1, seed=0)
    atomic_write_json(tmp_path / "eq.json", {"allocations": sc.F[:, None].tolist(), "scenario": sc.to_dict()})
    run_config = {"allocation": str(tmp_path / "eq.json"), "rounds": 1, "epochs": 1, "out-dir": str(tmp_path / "out")}
    said = []
    try:
        # Execute
        res = run_local_deployment(REPO, [NodeSpec(0, 1, 0)], run_config, tmp_path / "work", insecure=True,
                                   timeout_s=240, on_status=said.append)
    finally:
        squatter.close()
    # Assert: the SuperLink gave up the taken port, came up on others, and the run finished
    assert len(calls) == 2 and (tmp_path / "out" / "fl.json").is_file()
    assert any(f"port {taken} was taken" in s for s in said), said
    assert "address already in use" in (res.logs / "superlink.log").read_text().lower()
    assert deployment_processes(tmp_path / "work" / "flwr-home") == []


@pytest.mark.slow
def test_another_flower_release_runs_on_flowers_public_programs(tmp_path, monkeypatch):
    # Prepare: this process sees another Flower release (the processes it starts run the real one)
    import flwr

    monkeypatch.setattr(flwr, "__version__", "1.99.0")
    sc = generate(1, 1, seed=0)
    atomic_write_json(tmp_path / "eq.json", {"allocations": sc.F[:, None].tolist(), "scenario": sc.to_dict()})
    run_config = {"allocation": str(tmp_path / "eq.json"), "rounds": 1, "epochs": 1, "out-dir": str(tmp_path / "out")}
    said = []
    procs = ProcessSet()
    # Execute: the default asks for the worker and the short waits, both Flower internals
    res = run_local_deployment(REPO, [NodeSpec(0, 1, 0)], run_config, tmp_path / "work", insecure=True,
                               timeout_s=300, on_status=said.append, processes=procs)
    # Assert: it said so, started Flower's own SuperNode and no worker, and the run finished
    assert any("1.99.0 is not the tested 1.42" in s and "subprocess isolation" in s for s in said), said
    assert "supernode-0" in procs.roots and "clientapp-0" not in procs.roots
    assert procs.roots["supernode-0"].args[0] == "flower-supernode"
    assert (tmp_path / "out" / "fl.json").is_file() and not (res.logs / "clientapp-0.log").exists()
    assert deployment_processes(tmp_path / "work" / "flwr-home") == []
