"""Shorter waits on Flower 1.42's message path, for the processes ``fl.flower.deployment`` starts.

Flower's deployment engine moves every message by polling, and on loopback the polls, not the
transfers, set the pace of a round (measured: docs/fl-deployment.md, "Running on several machines"):

- a SuperNode without a message asks the SuperLink again after ``time.sleep(3)``
  (``flwr.supernode.start_client_internal``), and waits for its ClientApp's reply and for the
  reply's objects in steps of ``time.sleep(0.5)``;
- a SuperNode, ServerApp or ClientApp asking for an object that is still on its way waits 1 s,
  then 2 s, ... up to 10 s (``inflatable_utils.pull_objects``' ``initial_backoff`` /
  ``backoff_cap``).

``Backoff`` replaces each of those fixed waits with a short one that doubles while nothing
happens: ``first``, ``2 first``, ... up to ``cap`` (never longer than the wait it replaces).
A busy poll gets its answer within ``cap`` of it being ready; an idle one settles at one
request per ``cap``. Nothing else changes: the same requests, in the same order, with the
same results (the deployment tests check the weights against the built-in trainer).

How they are put in place, all by replacing a module attribute of Flower 1.42 in a process
this project starts (no file of Flower is changed; the version gate ``fl.flower.gate`` refuses
another Flower version, whose internals may differ):

- ``shorten_supernode_waits``: in a SuperNode process (``fl/flower/supernode_launcher.py`` runs
  Flower's own ``flower-supernode`` entry point after it), ``start_client_internal.time``
  becomes a ``ShortSleeps`` and ``start_client_internal.pull_objects`` gets short backoffs;
- ``shorten_grid_waits``: in the ServerApp process, ``http_grid.pull_objects`` gets short
  backoffs (the ServerApp's reply poll is ``fl.flower.strategy.PromptGrid``, public API);
- the long-lived ClientApp process (``fl/flower/worker.py``) polls with a ``Backoff`` of
  its own.

This module imports only the standard library (and the gate) at import time, so the SuperNode
launcher and the ClientApp worker load it by path without importing the ``fl`` package (and torch).
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field

try:
    from . import gate
except ImportError:  # loaded by path by a script (gate.sibling), which loaded the gate first
    gate = sys.modules["metatrading_flower_gate"]

__all__ = ["Backoff", "ShortSleeps", "DEFAULT_FIRST_S", "DEFAULT_CAP_S", "FLOWER_VERSION",
           "check_flower_version", "shorten_supernode_waits", "shorten_grid_waits"]

#: the Flower version whose internals these patches address
FLOWER_VERSION = gate.TESTED + "."
#: what to run instead under another Flower version
STOCK = "run the stock flower-supernode (fl-deploy --stock-waits)"
#: first wait and longest wait of a poll (seconds)
DEFAULT_FIRST_S, DEFAULT_CAP_S = 0.005, 0.2


def _check_waits(first: float, cap: float) -> None:
    if not (isinstance(first, (int, float)) and isinstance(cap, (int, float)) and 0 < first <= cap <= 60):
        raise ValueError(f"poll waits: need 0 < first <= cap <= 60 seconds, got first={first!r}, cap={cap!r}")


@dataclass
class Backoff:
    """A poll's waits: ``first``, then doubling up to ``cap``; ``reset()`` after progress."""

    first: float = DEFAULT_FIRST_S
    cap: float = DEFAULT_CAP_S
    _next: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_waits(self.first, self.cap)
        self._next = self.first

    def reset(self) -> None:
        self._next = self.first

    def delay(self, longest: float | None = None) -> float:
        """The next wait (and advance); at most ``longest`` when given."""
        d = self._next if longest is None else min(self._next, longest)
        self._next = min(self._next * 2.0, self.cap)
        return d

    def wait(self, longest: float | None = None) -> float:
        d = self.delay(longest)
        time.sleep(d)
        return d


class ShortSleeps:
    """Stands in for the ``time`` module of a module whose ``time.sleep(s)`` calls are polls.

    ``sleep(s)`` waits ``Backoff`` steps instead, one backoff per requested ``s`` (each call
    site of Flower's SuperNode asks for its own fixed wait). A poll's backoff starts again at
    ``first`` when another wait was asked for in between, i.e. after the poll's loop moved on.
    Every other attribute is the real ``time`` module's.
    """

    def __init__(self, first: float = DEFAULT_FIRST_S, cap: float = DEFAULT_CAP_S) -> None:
        _check_waits(first, cap)
        self.first, self.cap = first, cap
        self._polls: dict[float, Backoff] = {}
        self._last: float | None = None

    def __getattr__(self, name: str):
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        poll = self._polls.get(seconds)
        if poll is None:
            poll = self._polls[seconds] = Backoff(self.first, self.cap)
        elif self._last != seconds:
            poll.reset()
        self._last = seconds
        poll.wait(longest=seconds)


def check_flower_version() -> str:
    """Flower's version, if it is the one whose internals these patches address (else
    ``gate.FlowerVersionError``, a RuntimeError)."""
    if not gate.matches():
        raise gate.FlowerVersionError(f"fl.flower.waits addresses Flower {FLOWER_VERSION}x internals; this is "
                                      f"Flower {gate.installed()}: {STOCK}")
    return gate.installed()


def _short_pulls(pull_objects, first: float, cap: float):
    return functools.partial(pull_objects, initial_backoff=first, backoff_cap=cap)


def shorten_supernode_waits(first: float = DEFAULT_FIRST_S, cap: float = DEFAULT_CAP_S) -> None:
    """In this process, Flower's SuperNode loop polls with ``Backoff(first, cap)`` steps."""
    _check_waits(first, cap)
    check_flower_version()
    sci = gate.internal("flwr.supernode.start_client_internal", what="the SuperNode's short waits", instead=STOCK)

    for name in ("time", "pull_objects", "start_client_internal"):
        if not hasattr(sci, name):
            raise RuntimeError(f"flwr.supernode.start_client_internal has no {name!r}: cannot shorten its waits")
    sci.time = ShortSleeps(first, cap)
    sci.pull_objects = _short_pulls(sci.pull_objects, first, cap)


def shorten_grid_waits(first: float = DEFAULT_FIRST_S, cap: float = DEFAULT_CAP_S) -> bool:
    """In this process (a ServerApp), the Grid's object pulls back off from ``first`` to ``cap``.

    Returns False (and changes nothing) under another Flower version or without the module.
    """
    _check_waits(first, cap)
    http_grid = gate.optional("flwr.superlink.grid.http_grid")
    if http_grid is None:
        return False
    pull_objects = getattr(http_grid, "pull_objects", None)
    if pull_objects is None:
        return False
    if not isinstance(pull_objects, functools.partial):  # a partial: shortened already
        http_grid.pull_objects = _short_pulls(pull_objects, first, cap)
    return True
