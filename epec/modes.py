"""The registry of MPEC reformulation modes: a name -> a :class:`~epec.reformulation.Reformulation`.

Every mode registers itself with :func:`register_mode` (the built-in ones in
:mod:`epec.scholtes`, :mod:`epec.smoothing` and :mod:`epec.penalty`), and a user's mode does the
same from the user's own code; wherever the toolkit takes a mode (``solve_nash``,
``solve_bilevel``, ``solve_epec``, ``solve_scenario``, ``metatrading solve --mode``) it takes a
registered name or an instance. This module imports the base class only, never a mode.

Register your own::

    from dataclasses import dataclass
    from epec import ScholtesRelaxation, register_mode

    @register_mode("scholtes-fine", help="Scholtes relaxation down to eps = 1e-12")
    @dataclass(frozen=True)
    class FineScholtes(ScholtesRelaxation):
        eps_end: float = 1e-12

and solve with ``solve_nash(model, players, mode="scholtes-fine")``.
"""
from __future__ import annotations

from typing import Any, Callable

from .reformulation import Reformulation

__all__ = ["MODES", "register_mode", "make_mode", "mode_names", "mode_help"]

#: name -> (mode class, one-line help); :func:`register_mode` adds to it
MODES: dict[str, tuple[type[Reformulation], str]] = {}


def register_mode(name: str, cls: type[Reformulation] | None = None, *, help: str = "",
                  replace: bool = False) -> Any:
    """Register the mode class ``cls`` under ``name`` (also usable as a class decorator).

    Parameters
    ----------
    name : str
        The mode's name: non-empty, without ``,`` or spaces. Set as the class's ``kind``.
    cls : type, optional
        A subclass of :class:`~epec.reformulation.Reformulation` whose constructor takes no
        required argument. Omitted: returns a decorator.
    help : str
        One line shown by ``metatrading solve --help``.
    replace : bool
        Allow replacing a name already registered with another class. Default False.

    Returns
    -------
    type or callable
        ``cls`` itself (or the decorator that registers and returns it).

    Raises
    ------
    ValueError
        A bad name, a class that is not a Reformulation, or a name already taken.
    """
    if not isinstance(name, str) or not name or "," in name or any(c.isspace() for c in name):
        raise ValueError(f"mode: a mode name must be a non-empty string without ',' or spaces, got {name!r}")

    def add(klass: type[Reformulation]) -> type[Reformulation]:
        if not (isinstance(klass, type) and issubclass(klass, Reformulation)):
            raise ValueError(f"mode {name!r}: {klass!r} is not a subclass of epec.Reformulation")
        known = MODES.get(name)
        if known is not None and known[0] is not klass and not replace:
            raise ValueError(f"mode {name!r} is already registered ({known[0].__name__}); pass replace=True")
        klass.kind = name
        MODES[name] = (klass, help or (klass.__doc__ or name).strip().splitlines()[0])
        return klass

    return add if cls is None else add(cls)


def mode_names() -> tuple[str, ...]:
    """The registered mode names, in registration order (the built-in ones first)."""
    return tuple(MODES)


def mode_help() -> str:
    """``name: help; ...`` of every registered mode (the CLI's ``--mode`` help)."""
    return "; ".join(f"{name}: {h}" for name, (_, h) in MODES.items())


def make_mode(mode: Any) -> Reformulation:
    """A :class:`~epec.reformulation.Reformulation` from an instance or a registered name.

    Parameters
    ----------
    mode : str or Reformulation
        A registered name (its class built with default parameters) or an instance (returned
        as is).

    Returns
    -------
    Reformulation

    Raises
    ------
    ValueError
        An unknown name (the message lists the registered ones).
    """
    if isinstance(mode, Reformulation):
        return mode
    entry = MODES.get(getattr(mode, "value", mode)) if isinstance(mode, str) else None
    if entry is None:
        raise ValueError(f"mode: unknown {mode!r}; use one of {list(MODES)} or a Reformulation "
                         "(register your own with epec.register_mode)")
    factory: Callable[[], Reformulation] = entry[0]
    return factory()
