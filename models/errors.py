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
