"""Progress of a long run, the one way every command shows it.

On a terminal (stderr is a TTY): a tqdm bar, redrawn in place. Anywhere else (stderr redirected
to a log file or a pipe, a batch job): one plain line on stderr per finished unit of work (a
round, a scheme-seed, a sweep, a scenario), so that ``metatrading compare --quick > log 2>&1``
shows how far it is instead of minutes of silence. ``--quiet`` (the caller passes
``enabled=False``) shows neither.

A line reads ``<desc>: <done>/<total> <unit>s [<postfix>] (<seconds> s)``, e.g.
``compare: 3/12 rounds [scheme=drl, seed=0] (41.2 s)``. ``min_interval`` (seconds) thins the
lines of fine-grained work (the certificate's checks); the last unit always gets its line.
"""
from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["progress_bar", "LineProgress", "on_terminal"]


def on_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default: stderr) is a terminal a person watches."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(*, total: int | None = None, initial: int = 0, desc: str = "", unit: str = "it",
                 enabled: bool = True, min_interval: float = 0.0, **tqdm_kwargs: Any) -> Any:
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere, a silent bar when not ``enabled``.

    Both have tqdm's ``update``, ``set_postfix``, ``set_postfix_str``, ``set_description``,
    ``refresh``, ``close``, ``n`` and ``total``, and work as context managers.
    """
    if enabled and not on_terminal():
        return LineProgress(total=total, initial=initial, desc=desc, unit=unit, min_interval=min_interval)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                **tqdm_kwargs)


class LineProgress:
    """One line on stderr per finished unit of work (see the module's docstring)."""

    def __init__(self, *, total: int | None = None, initial: int = 0, desc: str = "", unit: str = "it",
                 min_interval: float = 0.0, file: Any = None) -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.min_interval = min_interval
        self.postfix = ""
        self._file = file
        self._shown = initial
        self._t0 = time.perf_counter()
        self._last = float("-inf")

    # tqdm's interface -----------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        self._emit()

    def refresh(self) -> None:
        self._emit()

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def close(self) -> None:
        self._emit(final=True)

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # the line ---------------------------------------------------------------------------------
    def line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        unit = self.unit if self.n == 1 and self.total in (None, 1) else f"{self.unit}s"
        post = f" [{self.postfix}]" if self.postfix else ""
        return f"{self.desc}: {done} {unit}{post} ({time.perf_counter() - self._t0:.1f} s)"

    def _emit(self, final: bool = False) -> None:
        if self.n == self._shown:
            return
        now = time.perf_counter()
        last_unit = self.total is not None and self.n >= self.total
        if not (final or last_unit or now - self._last >= self.min_interval):
            return
        self._shown, self._last = self.n, now
        out = self._file if self._file is not None else sys.stderr
        print(self.line(), file=out, flush=True)
