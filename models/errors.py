"""Errors shared by every layer of the toolkit."""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input. ``str(err)`` is one line: ``<field>: <reason>``.

    Parameters
    ----------
    field : str
        Dotted name of the offending field (``"D"``, ``"scenario.Rmax[2]"``, ``"--rounds"``).
    reason : str
        Why the value is rejected, in a few words.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that every
    clean-up written for Ctrl-C runs for them too; ``signo`` gives the exit code 128 + signo."""

    def __init__(self, signo: int) -> None:
        import signal

        self.signo = int(signo)
        super().__init__(signal.Signals(self.signo).name)
