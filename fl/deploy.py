"""A local Flower deployment: a real SuperLink, one real SuperNode per MU, and ``flwr run``.

``run_local_deployment`` starts ``flower-superlink`` and K ``flower-supernode`` processes on
loopback (TLS with a CA and a SuperLink certificate made for the run, unless ``insecure``),
submits the packaged App (``fl.flower_app``, ``[tool.flwr.app]`` of ``pyproject.toml``) with
``flwr run --stream``, follows the ServerApp's ``progress.json`` round by round, and stops
every process it started, on success, failure, timeout or interrupt.

By default each SuperNode runs with ``--isolation process`` next to one long-lived ClientApp
process of its own (``fl/clientapp_worker.py``) that serves all its messages; Flower's default
(``isolation="subprocess"``) starts a new ``flwr-clientapp`` process for every message, which
costs each node a Python start, the imports of flwr and torch and a data-set load per round.
The SuperNodes are Flower's own entry point started through ``fl/supernode_launcher.py``, with
the short poll waits of ``fl.flower_waits`` (``short_waits=False``: the stock command).

Processes: each is started in its own session (so a Ctrl-C in the terminal reaches only this
process, which then stops them in order) and remembered by pid and start time. Flower starts
helpers of its own (the SuperLink's SuperExec in a new session, the ServerApp and ClientApp
processes); their pids are collected from ``/proc`` (as descendants, and by a marker variable
in the environment they inherit, ``METATRADING_DEPLOYMENT_ID``), so they are stopped too even
when their parent is already gone. Stop order: SIGTERM to everything, a grace
period, then SIGKILL to what is left. Linux only (``/proc``).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import InputError, Stopped

from .flower_waits import DEFAULT_CAP_S, DEFAULT_FIRST_S
from .tls import make_local_certificates, make_supernode_key

__all__ = ["DeploymentError", "DeploymentResult", "NodeSpec", "ProcessSet", "deployment_processes", "flower_env",
           "free_ports",
           "port_open", "register_supernode", "run_local_deployment", "wait_for_port", "write_connection",
           "CONNECTION_NAME"]

#: Name of the SuperLink connection written into the deployment's own FLWR_HOME.
CONNECTION_NAME = "local-deployment"
LOOPBACK = "127.0.0.1"
#: Environment variable that marks every process of one deployment (a fresh value per ProcessSet).
MARKER_VAR = "METATRADING_DEPLOYMENT_ID"
#: SuperNode isolation modes: a long-lived ClientApp process per node, or Flower's default.
ISOLATION_PROCESS, ISOLATION_SUBPROCESS = "process", "subprocess"
ISOLATION_MODES = (ISOLATION_PROCESS, ISOLATION_SUBPROCESS)
#: The long-lived ClientApp process, run as a script (see its docstring).
WORKER_SCRIPT = Path(__file__).resolve().parent / "clientapp_worker.py"
#: Flower's ``flower-supernode`` entry point with the short polls of ``fl.flower_waits``
SUPERNODE_LAUNCHER = Path(__file__).resolve().parent / "supernode_launcher.py"


class DeploymentError(RuntimeError):
    """The deployment failed; the message says where (and the logs folder)."""


@dataclass(frozen=True)
class NodeSpec:
    """One SuperNode: its ``--node-config`` (``partition-id``, ``num-partitions``, ``mu-id``)."""

    partition_id: int
    num_partitions: int
    mu_id: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def node_config(self) -> str:
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


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/pid/stat`` after the process name (state, ppid, ...), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2:].split()  # the name may hold spaces or parentheses


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time in clock ticks)`` of a live pid, None if gone (or a zombie)."""
    rest = _stat_fields(pid)
    if rest is None or rest[0] in ("Z", "X"):
        return None
    return int(rest[1]), int(rest[19])


#: what a deployment's process is, by a piece of its command line (first match wins)
_ROLES = (("flwr-serverapp", "serverapp"), ("flower-superlink", "superlink"), ("flower-superexec", "superexec"),
          ("clientapp", "clientapps"), ("supernode", "supernodes"), ("flwr run", "flwr-run"))


class ProcessSet:
    """Processes of one deployment, by pid and start time (a reused pid is never signalled)."""

    def __init__(self) -> None:
        import uuid

        self.roots: dict[str, subprocess.Popen] = {}
        self.seen: dict[int, int] = {}  # pid -> start time, everything started here or below
        #: inherited by every process below the ones started here: finds them after reparenting
        self.marker = f"{MARKER_VAR}={uuid.uuid4().hex}".encode()

    def start(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen:
        env = {**env, MARKER_VAR: self.marker.split(b"=", 1)[1].decode()}
        with open(log, "ab") as fh:
            proc = subprocess.Popen(list(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=str(cwd), start_new_session=True)
        self.roots[name] = proc
        stat = _proc_stat(proc.pid)
        if stat is not None:
            self.seen[proc.pid] = stat[1]
        return proc

    def refresh(self) -> None:
        """Record the descendants of every known process (Flower's own helper processes)."""
        children: dict[int, list[tuple[int, int]]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _proc_stat(int(entry))
                if stat is not None:
                    children.setdefault(stat[0], []).append((int(entry), stat[1]))
                    if int(entry) not in self.seen and _has_env(int(entry), self.marker):
                        self.seen[int(entry)] = stat[1]
        stack = [p for p in self.seen if self._alive(p)]
        while stack:
            pid = stack.pop()
            for child, start in children.get(pid, []):
                if child not in self.seen:
                    self.seen[child] = start
                    stack.append(child)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of the live processes, summed by what they are."""
        self.refresh()
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        for pid in self.alive():
            rest = _stat_fields(pid)
            if rest is None:
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            role = next((r for key, r in _ROLES if key in argv), "other")
            out[role] = out.get(role, 0.0) + (int(rest[11]) + int(rest[12])) / tick
        return out

    def _alive(self, pid: int) -> bool:
        stat = _proc_stat(pid)
        return stat is not None and stat[1] == self.seen.get(pid)

    def alive(self) -> list[int]:
        return [p for p in self.seen if self._alive(p)]

    def _signal(self, pids: Sequence[int], sig: int) -> None:
        for pid in pids:
            if self._alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    def _reap(self) -> None:
        for proc in self.roots.values():
            with contextlib.suppress(ChildProcessError, OSError):
                proc.poll()

    def _wait_gone(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            self._reap()
            left = self.alive()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def stop(self, grace_s: float = 5.0) -> list[int]:
        """SIGTERM every process, wait ``grace_s``, SIGKILL the rest; returns pids still alive."""
        self.refresh()
        self._signal(self.alive(), signal.SIGTERM)
        left = self._wait_gone(grace_s)
        self.refresh()  # a helper started during shutdown
        left = self.alive()
        if left:
            self._signal(left, signal.SIGKILL)
            left = self._wait_gone(5.0)
        for proc in self.roots.values():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                proc.wait(timeout=1.0)
        return left


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM / SIGHUP raise KeyboardInterrupt while the deployment runs (so it cleans up)."""
    def handler(signum, frame):  # noqa: ARG001
        raise Stopped(signum)  # a KeyboardInterrupt; the command exits 128 + signum

    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live there
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _has_env(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def deployment_processes(flwr_home: str | os.PathLike) -> list[int]:
    """Live pids whose environment has ``FLWR_HOME=flwr_home``: every process of one deployment
    (each inherits it: SuperLink, SuperNodes, ``flwr``, SuperExec, ServerApp, ClientApps)."""
    needle = f"FLWR_HOME={Path(flwr_home).resolve()}".encode()
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and _proc_stat(int(e)) is not None and _has_env(int(e), needle)]


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C (or SIGTERM) while the processes are being stopped must not cut that short."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """``n`` distinct ports that were free on ``host`` a moment ago (bound, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


#: tries of the SuperLink's start on fresh ports when its port was taken meanwhile
PORT_TRIES = 3
#: what uvicorn logs once it listens (SuperLink and SuperNode)
LISTENING_TEXT = "running on"


def _size(log: Path) -> int:
    return log.stat().st_size if log.is_file() else 0


def _port_taken(log: Path, start: int) -> bool:
    try:
        return "address already in use" in _read_from(log, start).lower()
    except FileNotFoundError:
        return False


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, what: str, log: Path,
                  ready_text: str | None = None, log_start: int = 0) -> None:
    """Until ``port`` accepts connections and, if given, ``ready_text`` is in ``log`` (after byte
    ``log_start``): the port alone could be another program's. DeploymentError if ``proc`` exits
    or time runs out."""
    deadline = time.monotonic() + timeout

    def ready() -> bool:
        if not port_open(port):
            return False
        try:
            return ready_text is None or ready_text in _read_from(log, log_start)
        except FileNotFoundError:
            return False

    while not ready():
        if proc.poll() is not None:
            raise DeploymentError(f"{what} exited with code {proc.returncode} before listening on port {port}: "
                                  f"{_tail(log)}")
        if time.monotonic() > deadline:
            raise DeploymentError(f"{what} did not listen on port {port} within {timeout:g} s (log {log})")
        time.sleep(0.2)


def _tail(log: Path, lines: int = 6) -> str:
    try:
        text = [ln for ln in _strip_ansi(log.read_text(errors="replace")).splitlines() if ln.strip()]
    except FileNotFoundError:
        return f"(no log at {log})"
    return " | ".join(text[-lines:]) + f" (log {log})"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# ---------------------------------------------------------------------------------------------
# The deployment
# ---------------------------------------------------------------------------------------------

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


def run_local_deployment(app_dir: str | os.PathLike, nodes: Sequence[NodeSpec], run_config: Mapping[str, Any],
                         work_dir: str | os.PathLike, *, insecure: bool = False, supernode_auth: bool = False,
                         isolation: str = "process",
                         short_waits: bool = True,
                         poll_cap_s: float | None = None,
                         timeout_s: float = 3600.0,
                         start_timeout_s: float = 60.0,
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
        ClientApp process beside it (``fl/clientapp_worker.py``, log ``clientapp-k.log``) that
        serves every message of the run; ``subprocess``: Flower's default, a new
        ``flwr-clientapp`` process per message.
    short_waits : bool
        True (default): the SuperNodes run Flower's ``flower-supernode`` entry point through
        ``fl/supernode_launcher.py``, and they, the ClientApp processes and the ServerApp poll
        with short, doubling waits (``fl.flower_waits``; the run config's ``short-waits``
        follows this flag unless it sets the key itself). False: the stock ``flower-supernode``
        command and Flower's own waits (3 s between a SuperNode's polls).
    poll_cap_s : float, optional
        With ``short_waits``: the longest wait of the SuperNodes' and ClientApp processes' polls
        (default ``fl.flower_waits.DEFAULT_CAP_S``). Every idle SuperNode asks the SuperLink about
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
    work = Path(work_dir).resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    flwr_home = work / "flwr-home"
    certs = None if insecure else make_local_certificates(work / "tls")
    env = flower_env(flwr_home)
    procs = processes if processes is not None else ProcessSet()
    progress_file = out_dir / "progress.json"
    result_file = out_dir / "fl.json"
    old_result = _stamp(result_file)  # a resumed run's folder may hold an earlier fl.json
    cpu_by_round: list[tuple[int, dict[str, float]]] = []
    t0 = time.perf_counter()
    run_id: int | None = None

    def status(text: str) -> None:
        if on_status is not None:
            on_status(text)

    with _terminate_as_interrupt():
        try:
            tls = ["--insecure"] if certs is None else [
                "--ssl-ca-certfile", str(certs.ca_cert), "--ssl-certfile", str(certs.server_cert),
                "--ssl-keyfile", str(certs.server_key)]
            link_log = logs / "superlink.log"
            auth = ["--enable-supernode-auth"] if supernode_auth else []
            for attempt in range(1, PORT_TRIES + 1):
                # free ports can be taken by another program before the SuperLink binds them
                ports = free_ports(1 + len(nodes))
                link_port, node_ports = ports[0], ports[1:]
                write_connection(flwr_home, link_port, None if certs is None else certs.ca_cert)
                start = _size(link_log)
                link = procs.start("superlink", ["flower-superlink", "--host", LOOPBACK, "--port", str(link_port),
                                                 "--disable-runtime-dependency-installation", *auth, *tls],
                                   link_log, env, work)
                try:
                    wait_for_port(link_port, link, start_timeout_s, "flower-superlink", link_log,
                                  ready_text=LISTENING_TEXT, log_start=start)
                    break
                except DeploymentError:
                    if attempt == PORT_TRIES or link.poll() is None or not _port_taken(link_log, start):
                        raise
                    status(f"port {link_port} was taken; the SuperLink tries other ports")
            status(f"SuperLink up on {LOOPBACK}:{link_port}")
            node_tls = ["--insecure"] if certs is None else ["--root-certificates", str(certs.ca_cert)]
            supernodes: list[subprocess.Popen] = []
            node_log_start: list[int] = []
            for spec, port in zip(nodes, node_ports):
                node_auth = []
                if supernode_auth:
                    key, pub = make_supernode_key(work / "keys" / f"supernode-{spec.partition_id}")
                    register_supernode(pub, procs, env, work, logs / "register.log", start_timeout_s)
                    node_auth = ["--auth-supernode-private-key", str(key)]
                command = ([sys.executable, str(SUPERNODE_LAUNCHER), "--poll-cap", str(cap), "--"] if short_waits
                           else ["flower-supernode"])
                node_log_start.append(_size(logs / f"supernode-{spec.partition_id}.log"))
                supernodes.append(procs.start(
                    f"supernode-{spec.partition_id}",
                    [*command, "--superlink", f"{LOOPBACK}:{link_port}", *node_tls, *node_auth,
                     "--host", LOOPBACK, "--port", str(port), "--node-config", spec.node_config(),
                     "--max-wait-time", str(start_timeout_s), "--isolation", isolation],
                    logs / f"supernode-{spec.partition_id}.log", env, work))
            if isolation == ISOLATION_PROCESS:  # each SuperNode's long-lived ClientApp process
                for spec, port, node, start in zip(nodes, node_ports, supernodes, node_log_start):
                    log = logs / f"supernode-{spec.partition_id}.log"
                    wait_for_port(port, node, start_timeout_s, f"flower-supernode {spec.partition_id}", log,
                                  ready_text=LISTENING_TEXT, log_start=start)
                    procs.start(f"clientapp-{spec.partition_id}",
                                [sys.executable, str(WORKER_SCRIPT), "--runtime-api-address", f"{LOOPBACK}:{port}",
                                 "--insecure", "--supernode-pid", str(node.pid),
                                 *(["--poll", str(cap)] if short_waits else ["--poll", "1.0", "--poll-first", "1.0"])],
                                logs / f"clientapp-{spec.partition_id}.log", env, work)
            status(f"{len(nodes)} SuperNodes started ({isolation} isolation)")
            overrides = work / "run_config.toml"
            import tomli_w

            overrides.write_text(tomli_w.dumps({"short-waits": bool(short_waits), **dict(run_config)}))
            run_log = logs / "flwr-run.log"
            run_log_start = _size(run_log)
            runner = procs.start("flwr-run", ["flwr", "run", str(app_dir), CONNECTION_NAME,
                                              "--run-config", str(overrides), "--stream"], run_log, env, work)
            if on_started is not None:
                on_started(procs)
            deadline = time.monotonic() + timeout_s
            last = None
            while runner.poll() is None:
                procs.refresh()
                if run_id is None:
                    run_id = _run_id(run_log, run_log_start)
                    if run_id is not None:
                        status(f"run {run_id} submitted")
                if link.poll() is not None:  # a dead SuperNode is the strategy's to report
                    raise DeploymentError(f"flower-superlink exited with code {link.returncode}: {_tail(link_log)}")
                last = _poll_progress(progress_file, last, on_progress, procs, cpu_by_round)
                if time.monotonic() > deadline:
                    raise DeploymentError(f"the run did not finish within {timeout_s:g} s "
                                          f"(logs in {logs})")
                time.sleep(0.25)
            run_id = run_id if run_id is not None else _run_id(run_log, run_log_start)
            _poll_progress(progress_file, last, on_progress, procs, cpu_by_round)
            if runner.returncode != 0 or run_id is None:
                raise DeploymentError(f"flwr run failed (exit {runner.returncode}): {_tail(run_log)}")
            if _stamp(result_file) in (None, old_result):
                raise DeploymentError(f"run {run_id} ended without a result: {_run_failure(run_log, run_log_start)}")
        finally:
            with _uninterrupted():
                left = procs.stop()
            if left:  # pragma: no cover - reported, never expected
                print(f"warning: processes {left} did not stop", file=sys.stderr)
    return DeploymentResult(out_dir=out_dir, run_id=run_id, wall_s=time.perf_counter() - t0,
                            pids=sorted(procs.seen), logs=logs, cpu_by_round=cpu_by_round)


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
        raise DeploymentError(f"flwr supernode register {public_key.name} failed (exit {code}): {_tail(log)}")


def _read_from(log: Path, start: int) -> str:
    """The log from byte ``start`` on (a resumed deployment appends to the logs of the first)."""
    with open(log, "rb") as fh:
        fh.seek(start)
        return _strip_ansi(fh.read().decode(errors="replace"))


def _run_id(log: Path, start: int = 0) -> int | None:
    try:
        m = re.search(r"Successfully started run (\d+)", _read_from(log, start))
    except FileNotFoundError:
        return None
    return int(m.group(1)) if m else None


def _run_failure(log: Path, start: int = 0) -> str:
    """The ServerApp's error out of the streamed run log (its last ERROR lines)."""
    try:
        text = _read_from(log, start)
    except FileNotFoundError:
        return f"(no log at {log})"
    # the exception's own line ("RuntimeError: round 1: ..."), else Flower's last ERROR line
    raised = [ln.strip() for ln in text.splitlines() if re.match(r"^[\w.]*(Error|Exception): ", ln)]
    errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR")]
    return (raised or errors or [_tail(log)])[-1] + f" (log {log})"


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
