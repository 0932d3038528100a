"""Ray tasks (benchmarks/parallel.py) give the sequential run's results: sweep paths and robustness
scenarios on a Ray cluster that the test starts on loopback and stops by process id, against the
same pure functions run in this process."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks.parallel import check_workers, map_tasks
from models.errors import InputError

ray = pytest.importorskip("ray")

#: keys of a record that measure time, not the result
TIMING = {"seconds", "solve_seconds", "sensitivity_seconds", "timings", "task_seconds"}


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs, every port chosen free and its own
    temporary folder (so it meets no other Ray instance on the machine); stopped by its process id
    (and its process group, which holds what it started)."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed beside this Python")
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    gcs, client, agent, agent_grpc, env_agent, metrics, node_mgr, obj_mgr = _free_ports(8)
    worker_lo = 20000 + (os.getpid() % 2000) * 20
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    cmd = [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", tmp,
           "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
           "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(env_agent),
           "--metrics-export-port", str(metrics), "--node-manager-port", str(node_mgr),
           "--object-manager-port", str(obj_mgr), "--min-worker-port", str(worker_lo),
           "--max-worker-port", str(worker_lo + 19)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    address = f"127.0.0.1:{gcs}"
    try:
        deadline = time.monotonic() + 60
        while True:  # the head is up once its GCS port accepts connections
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", gcs), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the Ray head did not come up in 60 s")
                time.sleep(0.5)
        yield address
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything the head started and left behind: its own process group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_sweep_paths_on_the_cluster_are_the_sequential_ones(cluster):
    from epec.sweep import SweepOptions, sweep
    from models import preset

    opts = SweepOptions(grid=11)
    args = (preset("tiny"), "rho", [0.4, 0.45])
    kw = dict(param2="lam", values2=[40.0, 50.0], options=opts)
    sequential = sweep(*args, **kw)
    on_ray = sweep(*args, **kw, map_paths=lambda fn, tasks: map_tasks(fn, tasks, address=cluster))
    assert all(r["ok"] for r in sequential)
    assert _strip(on_ray) == _strip(sequential)  # same floats, same order


def test_robustness_scenarios_on_the_cluster_are_the_sequential_ones(cluster):
    from benchmarks.bench_robustness import solve_task

    tasks = [{"seed": s, "grid": 11, "verify_grid": 0} for s in (0, 1, 2)]
    sequential = [solve_task(t) for t in tasks]
    on_ray = list(map_tasks(solve_task, tasks, address=cluster))
    assert [r["seed"] for r in on_ray] == [0, 1, 2]
    assert _strip(on_ray) == _strip(sequential)


def test_the_sweep_command_on_the_cluster_resumes_and_matches(cluster, tmp_path):
    from benchmarks.cli import main

    flags = ["sweep", "--scenario", "tiny", "--param", "rho", "--values", "0.4,0.45", "--param2", "lam",
             "--values2", "40,50", "--grid", "11", "--quiet"]
    assert main(flags + ["--out", str(tmp_path / "seq")]) == 0
    # a run stopped after its first path: the checkpoint holds that path only
    seq = json.loads((tmp_path / "seq" / "sweep.json").read_text())
    part = tmp_path / "ray"
    part.mkdir()
    (part / "sweep.json").write_text(json.dumps({**seq, "complete": False, "points": seq["points"][:2]}))
    assert main(flags + ["--out", str(part), "--resume", "--ray-address", cluster]) == 0
    got = json.loads((part / "sweep.json").read_text())
    assert got["complete"] and _strip(got["points"]) == _strip(seq["points"])


@pytest.mark.parametrize("workers, address, flag", [(0, None, "--workers"), (1, " ", "--ray-address")])
def test_bad_parallel_flags_are_refused_naming_the_flag(workers, address, flag):
    with pytest.raises(InputError) as err:
        check_workers(workers, address)
    assert err.value.field == flag


def test_one_worker_runs_in_this_process_in_order():
    pid = os.getpid()
    assert list(map_tasks(lambda t: (t, os.getpid()), [3, 1, 2])) == [(3, pid), (1, pid), (2, pid)]
