"""Validation helpers shared by the epec modules (modes, options, responses, diagonalisation).

Each raises ``ValueError`` with one line that names the field, as every option check of the
package does.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["check_positive", "check_int"]


def check_positive(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite real number > 0 (not a bool).

    Parameters
    ----------
    name : str
        The field named in the message.
    value : Any
        The value checked.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")


def check_int(name: str, value: Any, low: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= ``low`` (not a bool).

    Parameters
    ----------
    name : str
        The field named in the message.
    value : Any
        The value checked.
    low : int
        The smallest value accepted.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
