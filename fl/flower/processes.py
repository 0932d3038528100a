"""Process supervision of a local Flower deployment: start, follow and stop its processes.

``ProcessSet`` starts each process in its own session (so a Ctrl-C in the terminal reaches only
the command, which then stops them in order) and remembers it by pid and start time (a reused
pid is never signalled). Flower starts helpers of its own (the SuperLink's SuperExec in a new
session, the ServerApp and ClientApp processes); their pids are collected from ``/proc`` (as
descendants, and by a marker variable in the environment they inherit,
``METATRADING_DEPLOYMENT_ID``), so they are stopped too even when their parent is already
gone. Stop order: SIGTERM to everything, a grace period, then SIGKILL to what is left. Also
here: free ports, waiting for a port, and reading the processes' logs. Linux only (``/proc``);
imports no ``flwr``.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from models.errors import Stopped

__all__ = ["DeploymentError", "ProcessSet", "deployment_processes", "free_ports", "port_open", "wait_for_port",
           "terminate_as_interrupt", "uninterrupted", "read_from", "tail", "log_size", "port_taken",
           "LOOPBACK", "MARKER_VAR", "LISTENING_TEXT"]

LOOPBACK = "127.0.0.1"
#: Environment variable that marks every process of one deployment (a fresh value per ProcessSet).
MARKER_VAR = "METATRADING_DEPLOYMENT_ID"
#: what uvicorn logs once it listens (SuperLink and SuperNode)
LISTENING_TEXT = "running on"


class DeploymentError(RuntimeError):
    """The deployment failed; the message says where (and the logs folder)."""


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
def terminate_as_interrupt() -> Iterator[None]:
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
def uninterrupted() -> Iterator[None]:
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
    """Whether something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def log_size(log: Path) -> int:
    """Bytes in ``log`` so far (0 when absent): where this start's lines begin."""
    return log.stat().st_size if log.is_file() else 0


def port_taken(log: Path, start: int) -> bool:
    """Whether ``log`` (from byte ``start``) says the port was already in use."""
    try:
        return "address already in use" in read_from(log, start).lower()
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
            return ready_text is None or ready_text in read_from(log, log_start)
        except FileNotFoundError:
            return False

    while not ready():
        if proc.poll() is not None:
            raise DeploymentError(f"{what} exited with code {proc.returncode} before listening on port {port}: "
                                  f"{tail(log)}")
        if time.monotonic() > deadline:
            raise DeploymentError(f"{what} did not listen on port {port} within {timeout:g} s (log {log})")
        time.sleep(0.2)


def tail(log: Path, lines: int = 6) -> str:
    """The last ``lines`` non-empty lines of ``log``, on one line, and where the log is."""
    try:
        text = [ln for ln in _strip_ansi(log.read_text(errors="replace")).splitlines() if ln.strip()]
    except FileNotFoundError:
        return f"(no log at {log})"
    return " | ".join(text[-lines:]) + f" (log {log})"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def read_from(log: Path, start: int) -> str:
    """The log from byte ``start`` on (a resumed deployment appends to the logs of the first)."""
    with open(log, "rb") as fh:
        fh.seek(start)
        return _strip_ansi(fh.read().decode(errors="replace"))
