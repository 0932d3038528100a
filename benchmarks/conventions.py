"""What every ``metatrading`` command shares: the output-folder policy, the progress bars and the
comma-separated number lists of flags.

Output-folder policy (applied by :func:`benchmarks.cli.main` to every command with ``--out``,
before the command does any work):

- ``--out DIR`` must name a folder: not an empty string, not a file, not a path under a file,
  and its nearest existing parent must accept a new folder.
- A folder's files always describe one run. A ``DIR`` that already holds files is refused
  unless ``--force`` (replace the previous results) or, for a command that checkpoints,
  ``--resume`` (continue the run whose checkpoint is there). ``--resume`` on a missing or empty
  folder is refused too: there is nothing to continue.
- Every run lists what it wrote in ``DIR/.metatrading-manifest.json`` (:mod:`models.io`),
  claiming each file before writing it and listing the rest when it stops.
- ``--force``: only a folder whose every entry its manifest lists may be replaced; one holding
  anything else (a file of the user's, or no manifest at all: results written before manifests
  existed) is refused, naming a foreign entry. The previous results are moved aside (to a hidden
  sibling ``.DIR.previous-<pid>-*``), the command writes into a fresh empty ``DIR``, and the
  previous results are deleted once the command has finished (exit 0, or 1 with its status
  reported). If it stops on bad input (exit 2), an error, Ctrl-C, SIGTERM or SIGHUP, the new
  files are removed and the previous results are moved back, unchanged.
- A ``.DIR.previous-*`` left by a run killed with SIGKILL is moved back by the next run into
  ``DIR`` (when ``DIR`` holds only what the killed run wrote), or that run is refused with a
  message naming both folders; it is never left behind silently.
- A command that stops on bad input (exit 2) leaves nothing behind: a folder it created is
  removed. A run into a new folder stopped by Ctrl-C or an error keeps what it wrote (a
  checkpoint to ``--resume`` from).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from models.errors import InputError, Stopped
from models.io import MANIFEST, foreign_entry, read_manifest, record_into, stop_recording, write_manifest

__all__ = ["check_out", "output_folder", "parse_numbers", "recover_previous", "show_progress", "Stopped",
           "catch_signals", "stop_received", "check_grid", "mem_available", "check_memory", "MAX_GRID"]

#: the signals that stop a command cleanly (its --force swap undone), besides SIGINT
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


#: the stop signal received within :func:`catch_signals` (None: none yet)
_received: list[int] = []


def stop_received() -> int | None:
    """The signal (SIGINT, SIGTERM or SIGHUP) received within :func:`catch_signals`, or None.

    A signal can land anywhere, inside an import too, where Python wraps the :class:`Stopped` the
    handler raises into another error (``RuntimeError: Error calling __set_name__``); the caller
    asks this to tell a stop from a real error."""
    return _received[-1] if _received else None


@contextmanager
def catch_signals() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise :class:`Stopped` (once; a second one waits for the clean-up),
    Ctrl-C raises KeyboardInterrupt as usual; each is recorded for :func:`stop_received`."""
    def handler(signo: int, frame: object) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)  # the clean-up runs to its end
        _received.append(int(signo))
        raise Stopped(signo)

    def interrupt(signo: int, frame: object) -> None:
        _received.append(int(signo))
        raise KeyboardInterrupt

    _received.clear()  # a fresh run: no stop yet
    try:
        old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            old[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    except ValueError:  # not the main thread: leave the signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def _no_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while results are moved back (delivered afterwards)."""
    sigs = {signal.SIGINT, *STOP_SIGNALS}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)

#: the most deviation-grid points per MSP a certificate may take: each point is one exact solve
#: of the followers (milliseconds), so 1e5 points x M MSPs is already minutes to hours
MAX_GRID = 100_000


def check_grid(value: int, flag: str = "--grid", minimum: int = 2) -> None:
    """``minimum <= value <= MAX_GRID``, else an InputError naming ``flag``."""
    if value < minimum:
        raise InputError(flag, f"must be >= {minimum}, got {value}")
    if value > MAX_GRID:
        raise InputError(flag, f"at most {MAX_GRID} points, got {value}: each point is one exact solve of the "
                               f"followers per MSP (milliseconds each), so {value} points would run for "
                               f"~{value * 1e-3 / 3600:.0f} h or more per MSP")


def mem_available() -> int | None:
    """Bytes of memory available for new processes (``MemAvailable`` of /proc/meminfo; None where
    there is none to read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(flag: str, need: float, what: str) -> None:
    """Refuse a run that needs ``need`` bytes when less is available (InputError naming ``flag``
    with both figures); nothing is checked where the available memory cannot be read."""
    avail = mem_available()
    if avail is not None and need > avail:
        raise InputError(flag, f"{what} need about {need / 2**30:.1f} GiB of memory, {avail / 2**30:.1f} GiB is "
                               "available (MemAvailable)")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to show progress: not with ``--quiet`` (or ``--no-progress``). How it is shown is
    :func:`models.progress.progress_bar`'s rule: a bar on a terminal, one line per finished unit
    of work on stderr when it is redirected to a file or a pipe."""
    return not (getattr(args, "quiet", False) or getattr(args, "no_progress", False))


def parse_numbers(text: str, flag: str, kind: type = float, minimum: float | None = None) -> list:
    """The comma-separated numbers of ``flag`` (``kind``: float or int; spaces around items are
    allowed, an empty item such as the middle one of ``12,,9`` is refused; an empty text gives []).

    With ``minimum``: a non-empty list whose items are all ``>= minimum``. Anything else is an
    InputError naming ``flag``.
    """
    noun = "integers" if kind is int else "numbers"
    items = [x.strip() for x in text.split(",")] if text.strip() else []
    if "" in items:
        raise InputError(flag, f"item {items.index('') + 1} of {text!r} is empty (expected comma-separated {noun})")
    try:
        values = [kind(x) for x in items]
    except ValueError:
        raise InputError(flag, f"expected comma-separated {noun}, got {text!r}") from None
    if minimum is not None and (not values or min(values) < minimum):
        raise InputError(flag, f"expected {noun} >= {minimum}, got {text!r}")
    return values


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def _probe(folder: Path, message: str) -> None:
    """Create and remove a folder in ``folder``, or InputError(``--out``, message + the reason)."""
    try:  # os.access says yes to root even on a read-only file system: try it
        os.rmdir(tempfile.mkdtemp(prefix=".metatrading-probe-", dir=folder))
    except OSError as exc:
        raise InputError("--out", f"{message} ({exc.strerror or exc})") from None


def check_out(out: str, force: bool = False, resume: bool = False) -> None:
    """Refuse an ``--out`` that cannot hold this run's results (InputError naming the flag).

    Nothing is created or changed.
    """
    if force and resume:
        raise InputError("--force", "cannot be combined with --resume (replace the results, or continue them)")
    if not out or not out.strip():
        raise InputError("--out", "must name a folder, got an empty string")
    path = Path(out)
    try:  # a parent without search permission makes even exists() fail (PermissionError)
        if path.exists() and not path.is_dir():
            raise InputError("--out", f"not a folder: {out}")
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise InputError("--out", f"{out} is under a file ({parent}), not a folder")
        base = _nearest_existing(path.absolute())
        held = path.is_dir() and any(path.iterdir())
    except OSError as exc:
        where = exc.filename or out
        raise InputError("--out", f"cannot reach {where} ({exc.strerror or exc}: a folder above it may not be "
                                  "entered)") from None
    _probe(base, f"cannot create folders in {base}")
    if force and held:
        here, target = Path.cwd().resolve(), path.resolve()
        if target == here or target in here.parents:
            raise InputError("--force", f"will not replace {out}: it is the current folder or holds it")
        foreign = foreign_entry(path)
        if foreign is not None and read_manifest(path) is None:
            raise InputError("--force", f"will not replace {out}: it has no {MANIFEST} listing what metatrading "
                                        f"wrote there, so {path / foreign} may be yours (results written before "
                                        "manifests existed: delete them by hand, or choose another --out)")
        if foreign is not None:
            raise InputError("--force", f"will not replace {out}: {path / foreign} was not written by metatrading "
                                        f"(--force deletes only what {MANIFEST} lists; move it, or choose another --out)")
        # --force moves the previous results aside, next to them: their parent must take a folder
        parent = path.absolute().parent
        _probe(parent, f"cannot replace {out}: its parent folder {parent} does not accept the folder that "
                       "keeps the previous results until the run ends")
    if resume and not held:
        raise InputError("--resume", f"nothing to resume: {out} holds no checkpoint")
    if held and not force and not resume:
        raise InputError("--out", f"{out} already holds results; pass --force to replace them"
                                  " (or --resume where the command checkpoints)")


_PREVIOUS = re.compile(r"\.previous-(\d+)-")


def recover_previous(out: str) -> str | None:
    """Move back the previous results that a run killed with SIGKILL left in ``.DIR.previous-*``.

    Done when ``DIR`` is missing, empty, or holds only what its manifest lists (the killed run's
    partial output, deleted then). Returns a line saying what was moved back (None: nothing to
    do). Raises InputError("--out") naming both folders when it cannot be done safely.
    """
    if not out or not out.strip():
        return None
    path = Path(out).absolute()
    try:
        left = sorted(p for p in path.parent.glob(f".{path.name}.previous-*") if p.is_dir())
    except OSError:
        return None
    for p in list(left):
        m = _PREVIOUS.search(p.name[len(path.name) + 1:])
        if m and int(m.group(1)) != os.getpid() and _alive(int(m.group(1))):
            raise InputError("--out", f"another metatrading run (process {m.group(1)}) is replacing {out} "
                                      f"(its previous results are in {p}); wait for it to finish")
    if not left:
        return None
    if len(left) > 1:
        raise InputError("--out", f"several earlier results of {out} were left by killed runs ({', '.join(map(str, left))}); "
                                  "keep one by hand and delete the others (nothing was changed)")
    backup = left[0]
    if path.exists() and not path.is_dir():
        raise InputError("--out", f"earlier results of {out} were left in {backup} by a killed run, and {out} is now "
                                  "a file; move one of them by hand (nothing was changed)")
    if path.is_dir():
        foreign = foreign_entry(path)
        if foreign is not None:
            raise InputError("--out", f"earlier results of {out} were left in {backup} by a killed run, and {out} now "
                                      f"holds {path / foreign}, which metatrading did not write; move one of them "
                                      "by hand (nothing was changed)")
    with _no_signals():
        if path.is_dir():
            shutil.rmtree(path)
        os.rename(backup, path)
    return f"moved the previous results of {out} back from {backup}, where a killed run had left them"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextmanager
def output_folder(out: str, force: bool = False) -> Iterator[dict]:
    """Around a command's run: apply the ``--force`` swap, the no-trace-on-bad-input rule, and
    keep the folder's manifest of what the toolkit wrote there.

    Yields a dict; the caller sets ``state["rc"]`` to the command's exit code. ``state["restored"]``
    says, after an error or a signal, that the previous results were moved back.
    """
    path = Path(out)
    created = None if path.exists() else _first_missing(path)
    backup = None
    before: set[str] = set()
    listed: set[str] = set()
    if force and path.is_dir() and any(path.iterdir()):
        backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.previous-{os.getpid()}-", dir=path.absolute().parent))
        os.rmdir(backup)
        os.rename(path, backup)
        path.mkdir()
    elif path.is_dir():  # an empty folder, or the run --resume continues
        before, listed = _entries(path), read_manifest(path) or set()
    record_into(path, listed)
    state: dict = {"rc": None, "restored": False}
    try:
        yield state
        if stop_received() is not None:  # a stop the code it landed in swallowed: still a stop
            raise Stopped(stop_received())
    except BaseException:
        # an error, Ctrl-C or SIGTERM/SIGHUP: a --force run gives the previous results back; a
        # run into a new folder keeps what it wrote (its checkpoint, for --resume)
        with _no_signals():
            entries = stop_recording()
            if backup is not None:
                _undo(path, None, backup)
                state["restored"] = True
            else:
                _finish(path, entries, before)
        raise
    with _no_signals():
        entries = stop_recording()
        if state["rc"] == 2:
            _undo(path, created, backup)
        if state["rc"] != 2 or (backup is None and created is None):
            _finish(path, entries, before)
        if state["rc"] != 2 and backup is not None:
            shutil.rmtree(backup, ignore_errors=True)


def _entries(folder: Path) -> set[str]:
    """Every file and folder under ``folder`` (relative paths), the manifest and its temporaries aside."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            if name == MANIFEST or name.startswith(f".{MANIFEST}."):
                continue
            found.add(str((Path(dirpath) / name).relative_to(folder)))
    return found


def _finish(path: Path, claimed: set[str], before: set[str]) -> None:
    """Write the manifest, last: what this run claimed or created, and what was listed already."""
    if not path.is_dir():
        return
    now = _entries(path)
    entries = (claimed | (now - before)) & now
    if entries and entries != (read_manifest(path) or set()) & now:  # bad input (exit 2) changes nothing
        write_manifest(path, entries)


def _first_missing(path: Path) -> Path:
    """The outermost folder of ``path`` that does not exist yet (what a run would create)."""
    p = path.absolute()
    first = p
    while not p.exists():
        first = p
        if p.parent == p:
            break
        p = p.parent
    return first


def _undo(path: Path, created: Path | None, backup: Path | None) -> None:
    if backup is not None:
        shutil.rmtree(path, ignore_errors=True)
        os.rename(backup, path)
    elif created is not None and created.exists():
        shutil.rmtree(created, ignore_errors=True)


def import_user_module(spec: str, flag: str = "--plugin") -> None:
    """Import the user's module ``spec`` (the documented extension point: code the user names on
    purpose, which registers its own modes, data sets, aggregation rules or schemes): a ``.py``
    file's path, or a module name looked up in the current folder first, then on the usual
    path. Anything that stops the import is an InputError naming ``flag``.

    Parameters
    ----------
    spec : str
        A ``.py`` file's path or a module name.
    flag : str
        The flag named in an error (``--plugin``, ``--scheme-module``).
    """
    import importlib.util
    import sys

    path = Path(spec)
    as_file = spec.endswith(".py") or os.sep in spec or (os.altsep is not None and os.altsep in spec)
    try:
        if as_file:
            if not path.is_file():
                raise InputError(flag, f"no such Python file: {spec}")
            name = path.stem
            if not name.isidentifier():
                raise InputError(flag, f"{spec}: the file name must be a Python identifier (a module name)")
            known = sys.modules.get(name)
            if known is not None and getattr(known, "__file__", None) == str(path.resolve()):
                return  # imported already (what it registers is there)
            loader_spec = importlib.util.spec_from_file_location(name, path.resolve())
            if loader_spec is None or loader_spec.loader is None:
                raise InputError(flag, f"{spec}: not a Python module")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            here = os.getcwd()
            added = here not in sys.path and "" not in sys.path
            if added:  # a console script's path does not hold the current folder
                sys.path.insert(0, here)
            try:
                importlib.import_module(spec)
            finally:
                if added:
                    sys.path.remove(here)
    except InputError:
        raise
    except ImportError as exc:
        raise InputError(flag, f"cannot import {spec!r}: {exc}") from None
    except SyntaxError as exc:
        raise InputError(flag, f"{spec}: SyntaxError: {exc.msg} ({Path(exc.filename or spec).name}, "
                               f"line {exc.lineno})") from None
    except Exception as exc:  # the module's own code failed while it was imported
        raise InputError(flag, f"importing {spec!r} failed: {type(exc).__name__}: {exc}") from None


class RegistryChoices:
    """The ``choices`` of a flag read from a registry when first needed: parsing a command
    imports the registry's module only when the flag is given (or its help shown), so that
    building the parser stays cheap (``fl.data`` imports torch).

    Parameters
    ----------
    module : str
        The module holding the registry (``"fl.data"``).
    attr : str
        The registry: a dict whose keys are the names, values either an object with a ``help``
        attribute or a ``(factory, help)`` pair.
    """

    def __init__(self, module: str, attr: str) -> None:
        self.module, self.attr = module, attr

    def registry(self) -> dict:
        """The registry itself (imports its module)."""
        import importlib

        return getattr(importlib.import_module(self.module), self.attr)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.registry()))

    def __contains__(self, name: object) -> bool:
        return name in self.registry()

    def help(self, prefix: str) -> "RegistryHelp":
        """A help string ``prefix`` followed by ``name: help`` of every entry, built when shown."""
        return RegistryHelp(prefix, self)


class RegistryHelp(str):
    """A flag's help text that lists a registry's entries when argparse formats it."""

    def __new__(cls, prefix: str, choices: RegistryChoices) -> "RegistryHelp":
        obj = super().__new__(cls, prefix)
        obj.choices = choices
        return obj

    def __mod__(self, params):  # argparse expands help as ``help % params``
        entries = []
        for name, entry in self.choices.registry().items():
            text = getattr(entry, "help", None) or (entry[1] if isinstance(entry, tuple) else "")
            entries.append(f"{name}: {text}" if text else name)
        return str.__mod__(self, params) + " " + "; ".join(entries)
