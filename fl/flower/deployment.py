"""A local Flower deployment: a real SuperLink, one real SuperNode per MU, and ``flwr run``.

``run_local_deployment`` starts ``flower-superlink`` and K ``flower-supernode`` processes on
loopback (TLS with a CA and a SuperLink certificate made for the run, unless ``insecure``),
gives them a Flower home folder of their own (``flwr-home/``, with the SuperLink connection),
submits the App (``fl.flower.app``, ``[tool.flwr.app]`` of ``pyproject.toml``) with ``flwr run
--stream``, follows the ServerApp's ``progress.json`` round by round, and stops every process
it started, on success, failure, timeout or interrupt (``fl.flower.processes``).

By default each SuperNode runs with ``--isolation process`` next to one long-lived ClientApp
process of its own (``fl/flower/worker.py``) that serves all its messages; Flower's default
(``isolation="subprocess"``) starts a new ``flwr-clientapp`` process for every message, which
costs each node a Python start, the imports of flwr and torch and a data-set load per round.
The SuperNodes are Flower's own entry point started through ``fl/flower/supernode_launcher.py``,
with the short poll waits of ``fl.flower.waits`` (``short_waits=False``: the stock command).
Both use Flower internals: under another Flower release than the tested one (``fl.flower.gate``)
the deployment falls back to Flower's public programs (subprocess isolation, stock waits) and
says so.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import InputError

from ..tls import make_local_certificates, make_supernode_key
from . import gate
from .processes import (LISTENING_TEXT, LOOPBACK, DeploymentError, ProcessSet, deployment_processes, free_ports,
                        log_size, port_open, port_taken, read_from, tail, terminate_as_interrupt, uninterrupted,
                        wait_for_port)
from .runconfig import PROGRESS_FILE, RESULT_FILE
from .waits import DEFAULT_CAP_S, DEFAULT_FIRST_S

__all__ = ["DeploymentError", "DeploymentResult", "NodeSpec", "ProcessSet", "deployment_processes", "flower_env",
           "free_ports", "port_open", "register_supernode", "run_local_deployment", "wait_for_port",
           "write_connection", "CONNECTION_NAME"]

#: Name of the SuperLink connection written into the deployment's own FLWR_HOME.
CONNECTION_NAME = "local-deployment"
#: SuperNode isolation modes: a long-lived ClientApp process per node, or Flower's default.
ISOLATION_PROCESS, ISOLATION_SUBPROCESS = "process", "subprocess"
ISOLATION_MODES = (ISOLATION_PROCESS, ISOLATION_SUBPROCESS)
#: The long-lived ClientApp process, run as a script (see its docstring).
WORKER_SCRIPT = Path(__file__).resolve().parent / "worker.py"
#: Flower's ``flower-supernode`` entry point with the short polls of ``fl.flower.waits``
SUPERNODE_LAUNCHER = Path(__file__).resolve().parent / "supernode_launcher.py"
#: tries of the SuperLink's start on fresh ports when its port was taken meanwhile
PORT_TRIES = 3


@dataclass(frozen=True)
class NodeSpec:
    """One SuperNode: its ``--node-config`` (``partition-id``, ``num-partitions``, ``mu-id``)."""

    partition_id: int
    num_partitions: int
    mu_id: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def node_config(self) -> str:
        """The ``--node-config`` argument."""
        items = {"partition-id": self.partition_id, "num-partitions": self.num_partitions,
                 "mu-id": self.mu_id, **self.extra}
        return " ".join(f"{k}={json.dumps(v)}" for k, v in items.items())


@dataclass
class DeploymentResult:
    """What a finished local deployment leaves: the ServerApp's output and the bookkeeping."""

    out_dir: Path
    run_id: int | None
    wall_s: float
    pids: list[int]  #: every process seen (started here, or by Flower below them)
    logs: Path
    #: ``(rounds done, ProcessSet.cpu_by_role())`` each time the ServerApp's progress moved
    cpu_by_round: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def flower_env(flwr_home: Path) -> dict[str, str]:
    """This environment, with Flower's executables on PATH, its own FLWR_HOME and no telemetry."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)  # flower-superlink, flower-superexec, flwr-* live here
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["FLWR_HOME"] = str(flwr_home)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def write_connection(flwr_home: Path, port: int, ca_cert: Path | None) -> None:
    """``flwr_home/config.toml`` with the SuperLink connection ``CONNECTION_NAME`` (the default)."""
    import tomli_w  # flwr's dependency: imported when a deployment starts, not with fl

    conn: dict[str, Any] = {"address": f"{LOOPBACK}:{port}"}
    if ca_cert is None:
        conn["insecure"] = True
    else:
        conn["root-certificates"] = str(ca_cert)
    flwr_home.mkdir(parents=True, exist_ok=True)
    (flwr_home / "config.toml").write_text(tomli_w.dumps({"superlink": {"default": CONNECTION_NAME,
                                                                        CONNECTION_NAME: conn}}))


@dataclass
class _Launch:
    """What every start-up step of one deployment shares."""

    work: Path
    logs: Path
    env: dict[str, str]
    procs: ProcessSet
    certs: Any  # LocalCertificates or None (insecure)
    start_timeout_s: float
    status: Callable[[str], None]

    @property
    def flwr_home(self) -> Path:
        return self.work / "flwr-home"


def _start_superlink(launch: _Launch, n_nodes: int, supernode_auth: bool) -> tuple[subprocess.Popen, int, list[int]]:
    """The SuperLink, up and listening: ``(process, its port, ports for the SuperNodes)``."""
    certs = launch.certs
    tls = ["--insecure"] if certs is None else [
        "--ssl-ca-certfile", str(certs.ca_cert), "--ssl-certfile", str(certs.server_cert),
        "--ssl-keyfile", str(certs.server_key)]
    link_log = launch.logs / "superlink.log"
    auth = ["--enable-supernode-auth"] if supernode_auth else []
    for attempt in range(1, PORT_TRIES + 1):
        # free ports can be taken by another program before the SuperLink binds them
        link_port, *node_ports = free_ports(1 + n_nodes)
        write_connection(launch.flwr_home, link_port, None if certs is None else certs.ca_cert)
        start = log_size(link_log)
        link = launch.procs.start("superlink", ["flower-superlink", "--host", LOOPBACK, "--port", str(link_port),
                                                "--disable-runtime-dependency-installation", *auth, *tls],
                                  link_log, launch.env, launch.work)
        try:
            wait_for_port(link_port, link, launch.start_timeout_s, "flower-superlink", link_log,
                          ready_text=LISTENING_TEXT, log_start=start)
            return link, link_port, node_ports
        except DeploymentError:
            if attempt == PORT_TRIES or link.poll() is None or not port_taken(link_log, start):
                raise
            launch.status(f"port {link_port} was taken; the SuperLink tries other ports")
    raise AssertionError("unreachable")  # pragma: no cover


def _start_supernodes(launch: _Launch, nodes: Sequence[NodeSpec], link_port: int, node_ports: Sequence[int],
                      supernode_auth: bool, isolation: str, short_waits: bool, cap: float) -> None:
    """One SuperNode per node spec and, with process isolation, its long-lived ClientApp process."""
    node_tls = ["--insecure"] if launch.certs is None else ["--root-certificates", str(launch.certs.ca_cert)]
    started = []
    for spec, port in zip(nodes, node_ports):
        node_auth = []
        if supernode_auth:
            key, pub = make_supernode_key(launch.work / "keys" / f"supernode-{spec.partition_id}")
            register_supernode(pub, launch.procs, launch.env, launch.work, launch.logs / "register.log",
                               launch.start_timeout_s)
            node_auth = ["--auth-supernode-private-key", str(key)]
        command = ([sys.executable, str(SUPERNODE_LAUNCHER), "--poll-cap", str(cap), "--"] if short_waits
                   else ["flower-supernode"])
        log = launch.logs / f"supernode-{spec.partition_id}.log"
        start = log_size(log)
        proc = launch.procs.start(
            f"supernode-{spec.partition_id}",
            [*command, "--superlink", f"{LOOPBACK}:{link_port}", *node_tls, *node_auth,
             "--host", LOOPBACK, "--port", str(port), "--node-config", spec.node_config(),
             "--max-wait-time", str(launch.start_timeout_s), "--isolation", isolation], log, launch.env, launch.work)
        started.append((spec, port, proc, log, start))
    if isolation != ISOLATION_PROCESS:
        return
    for spec, port, proc, log, start in started:  # each SuperNode's long-lived ClientApp process
        wait_for_port(port, proc, launch.start_timeout_s, f"flower-supernode {spec.partition_id}", log,
                      ready_text=LISTENING_TEXT, log_start=start)
        launch.procs.start(f"clientapp-{spec.partition_id}",
                           [sys.executable, str(WORKER_SCRIPT), "--runtime-api-address", f"{LOOPBACK}:{port}",
                            "--insecure", "--supernode-pid", str(proc.pid),
                            *(["--poll", str(cap)] if short_waits else ["--poll", "1.0", "--poll-first", "1.0"])],
                           launch.logs / f"clientapp-{spec.partition_id}.log", launch.env, launch.work)


def _check_arguments(app_dir, run_config, insecure: bool, supernode_auth: bool, isolation: str,
                     poll_cap_s: float | None) -> tuple[Path, Path, float]:
    """``(app_dir, out_dir, poll cap)`` once the arguments are valid (InputError names the bad one)."""
    if supernode_auth and insecure:
        raise InputError("supernode_auth", "needs TLS (Flower refuses SuperNode authentication when insecure)")
    cap = DEFAULT_CAP_S if poll_cap_s is None else poll_cap_s
    if not (isinstance(cap, (int, float)) and DEFAULT_FIRST_S <= cap <= 60):
        raise InputError("poll_cap_s", f"must be in [{DEFAULT_FIRST_S}, 60] seconds, got {poll_cap_s!r}")
    if isolation not in ISOLATION_MODES:
        raise InputError("isolation", f"must be one of {', '.join(ISOLATION_MODES)}, got {isolation!r}")
    app_dir = Path(app_dir).resolve()
    if not (app_dir / "pyproject.toml").is_file():
        raise InputError("app_dir", f"no pyproject.toml in {app_dir}")
    out_dir = Path(str(run_config.get("out-dir", "")))
    if not out_dir.is_absolute():
        raise InputError("run_config.out-dir", f"must be an absolute path, got {str(out_dir)!r}")
    return app_dir, out_dir, cap


def run_local_deployment(app_dir: str | os.PathLike, nodes: Sequence[NodeSpec], run_config: Mapping[str, Any],
                         work_dir: str | os.PathLike, *, insecure: bool = False, supernode_auth: bool = False,
                         isolation: str = "process", short_waits: bool = True, poll_cap_s: float | None = None,
                         timeout_s: float = 3600.0, start_timeout_s: float = 60.0,
                         on_progress: Callable[[dict], None] | None = None,
                         on_status: Callable[[str], None] | None = None,
                         on_started: Callable[[ProcessSet], None] | None = None,
                         processes: ProcessSet | None = None) -> DeploymentResult:
    """Start a SuperLink and ``len(nodes)`` SuperNodes on loopback, run the App, stop them all.

    Parameters
    ----------
    app_dir : path
        Folder of the Flower App (its ``pyproject.toml`` has ``[tool.flwr.app]``).
    nodes : sequence of NodeSpec
        One SuperNode each.
    run_config : mapping
        Run-config overrides (``flwr run --run-config``); ``out-dir`` must be an absolute path,
        where the ServerApp writes ``fl.json``, ``fl_params.pt`` and ``progress.json``.
    work_dir : path
        Certificates (``tls/``), the deployment's own FLWR_HOME (``flwr-home/``) and the
        processes' logs (``logs/``).
    insecure : bool
        Plain HTTP instead of TLS (loopback only).
    supernode_auth : bool
        SuperNode authentication: the SuperLink accepts only the nodes whose public keys are
        registered (``flwr supernode register``); each node gets its key pair in ``keys/``.
    isolation : {"process", "subprocess"}
        ``process`` (default): each SuperNode runs ``--isolation process`` with one long-lived
        ClientApp process beside it (``fl/flower/worker.py``, log ``clientapp-k.log``) that
        serves every message of the run; ``subprocess``: Flower's default, a new
        ``flwr-clientapp`` process per message.
    short_waits : bool
        True (default): the SuperNodes run Flower's ``flower-supernode`` entry point through
        ``fl/flower/supernode_launcher.py``, and they, the ClientApp processes and the ServerApp
        poll with short, doubling waits (``fl.flower.waits``; the run config's ``short-waits``
        follows this flag unless it sets the key itself). False: the stock ``flower-supernode``
        command and Flower's own waits (3 s between a SuperNode's polls).
    poll_cap_s : float, optional
        With ``short_waits``: the longest wait of the SuperNodes' and ClientApp processes' polls
        (default ``fl.flower.waits.DEFAULT_CAP_S``). Every idle SuperNode asks the SuperLink about
        once per ``poll_cap_s``: shorter answers sooner and costs the SuperLink more CPU.
    timeout_s : float
        Bound on the whole run after the processes are up (DeploymentError past it).
    start_timeout_s : float
        Bound on the SuperLink's start.
    on_progress : callable(dict), optional
        Called with the ServerApp's ``progress.json`` content whenever it changes.
    on_status : callable(str), optional
        Called with a few words at each start-up step (SuperLink up, SuperNodes started, run
        submitted), for a progress display.
    on_started : callable(ProcessSet), optional
        Called once the run is submitted (tests use it to kill a SuperNode).
    processes : ProcessSet, optional
        Where the processes are recorded (a test can check afterwards that none is alive).

    Raises
    ------
    DeploymentError
        A process failed to start, the run failed, or it timed out (the message says which).
    KeyboardInterrupt
        Ctrl-C, SIGTERM or SIGHUP (every process is stopped first).
    """
    app_dir, out_dir, cap = _check_arguments(app_dir, run_config, insecure, supernode_auth, isolation, poll_cap_s)
    status = on_status if on_status is not None else (lambda text: None)
    if not gate.matches() and (isolation == ISOLATION_PROCESS or short_waits):
        status(f"Flower {gate.installed()} is not the tested {gate.TESTED}: Flower's own ClientApp processes "
               f"and waits (subprocess isolation, stock waits)")
        isolation, short_waits = ISOLATION_SUBPROCESS, False
    work = Path(work_dir).resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    launch = _Launch(work=work, logs=work / "logs", env=flower_env(work / "flwr-home"),
                     procs=processes if processes is not None else ProcessSet(),
                     certs=None if insecure else make_local_certificates(work / "tls"),
                     start_timeout_s=start_timeout_s, status=status)
    old_result = _stamp(out_dir / RESULT_FILE)  # a resumed run's folder may hold an earlier fl.json
    cpu_by_round: list[tuple[int, dict[str, float]]] = []
    t0 = time.perf_counter()
    run_id = None
    with terminate_as_interrupt():
        try:
            link, link_port, node_ports = _start_superlink(launch, len(nodes), supernode_auth)
            status(f"SuperLink up on {LOOPBACK}:{link_port}")
            _start_supernodes(launch, nodes, link_port, node_ports, supernode_auth, isolation, short_waits, cap)
            status(f"{len(nodes)} SuperNodes started ({isolation} isolation)")
            run_id = _run_app(launch, app_dir, {"short-waits": bool(short_waits), **dict(run_config)}, link,
                              out_dir, old_result, timeout_s, on_started, on_progress, cpu_by_round)
        finally:
            with uninterrupted():
                left = launch.procs.stop()
            if left:  # pragma: no cover - reported, never expected
                print(f"warning: processes {left} did not stop", file=sys.stderr)
    return DeploymentResult(out_dir=out_dir, run_id=run_id, wall_s=time.perf_counter() - t0,
                            pids=sorted(launch.procs.seen), logs=launch.logs, cpu_by_round=cpu_by_round)


def _run_app(launch: _Launch, app_dir: Path, run_config: Mapping[str, Any], link: subprocess.Popen, out_dir: Path,
             old_result, timeout_s: float, on_started, on_progress, cpu_by_round: list) -> int:
    """``flwr run`` the App, follow its progress until it ends; its run id (DeploymentError on failure)."""
    import tomli_w

    overrides = launch.work / "run_config.toml"
    overrides.write_text(tomli_w.dumps(dict(run_config)))
    run_log = launch.logs / "flwr-run.log"
    run_log_start = log_size(run_log)
    procs = launch.procs
    runner = procs.start("flwr-run", ["flwr", "run", str(app_dir), CONNECTION_NAME, "--run-config", str(overrides),
                                      "--stream"], run_log, launch.env, launch.work)
    if on_started is not None:
        on_started(procs)
    deadline = time.monotonic() + timeout_s
    last, run_id = None, None
    progress_file = out_dir / PROGRESS_FILE
    while runner.poll() is None:
        procs.refresh()
        if run_id is None:
            run_id = _run_id(run_log, run_log_start)
            if run_id is not None:
                launch.status(f"run {run_id} submitted")
        if link.poll() is not None:  # a dead SuperNode is the strategy's to report
            raise DeploymentError(f"flower-superlink exited with code {link.returncode}: "
                                  f"{tail(launch.logs / 'superlink.log')}")
        last = _poll_progress(progress_file, last, on_progress, procs, cpu_by_round)
        if time.monotonic() > deadline:
            raise DeploymentError(f"the run did not finish within {timeout_s:g} s (logs in {launch.logs})")
        time.sleep(0.25)
    run_id = run_id if run_id is not None else _run_id(run_log, run_log_start)
    _poll_progress(progress_file, last, on_progress, procs, cpu_by_round)
    if runner.returncode != 0 or run_id is None:
        raise DeploymentError(f"flwr run failed (exit {runner.returncode}): {tail(run_log)}")
    if _stamp(out_dir / RESULT_FILE) in (None, old_result):
        raise DeploymentError(f"run {run_id} ended without a result: {_run_failure(run_log, run_log_start)}")
    return run_id


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """``(inode, size, mtime ns)`` of a file, None when absent: tells a new file from an old one."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def register_supernode(public_key: Path, procs: ProcessSet, env: Mapping[str, str], cwd: Path, log: Path,
                       timeout: float, connection: str = CONNECTION_NAME) -> None:
    """``flwr supernode register public_key connection``, bounded by ``timeout``."""
    proc = procs.start(f"register-{public_key.stem}", ["flwr", "supernode", "register", str(public_key), connection],
                       log, env, cwd)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"flwr supernode register {public_key.name} took over {timeout:g} s") from None
    if code != 0:
        raise DeploymentError(f"flwr supernode register {public_key.name} failed (exit {code}): {tail(log)}")


def _run_id(log: Path, start: int = 0) -> int | None:
    try:
        m = re.search(r"Successfully started run (\d+)", read_from(log, start))
    except FileNotFoundError:
        return None
    return int(m.group(1)) if m else None


def _run_failure(log: Path, start: int = 0) -> str:
    """The ServerApp's error out of the streamed run log (its last ERROR lines)."""
    try:
        text = read_from(log, start)
    except FileNotFoundError:
        return f"(no log at {log})"
    # the exception's own line ("RuntimeError: round 1: ..."), else Flower's last ERROR line
    raised = [ln.strip() for ln in text.splitlines() if re.match(r"^[\w.]*(Error|Exception): ", ln)]
    errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR")]
    return (raised or errors or [tail(log)])[-1] + f" (log {log})"


def _poll_progress(path: Path, last: Any, on_progress: Callable[[dict], None] | None, procs: ProcessSet,
                   cpu_by_round: list) -> Any:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return last
    if data != last:
        if isinstance(data, dict) and isinstance(data.get("done"), int):
            cpu_by_round.append((data["done"], procs.cpu_by_role()))
        if on_progress is not None:
            on_progress(data)
    return data
