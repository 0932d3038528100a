"""The one version gate in front of every Flower internal this project uses.

Flower's public API is ``flwr.app``, ``flwr.clientapp``, ``flwr.serverapp`` (strategies
included), ``flwr.simulation.run_simulation`` and the command-line programs (``flwr``,
``flower-superlink``, ``flower-supernode``, ``flwr-clientapp``). Everything else under ``flwr``
is internal and may change in any minor release. Three things here use internals, each for a
measured speed-up (docs/fl-deployment.md, "What each Flower internal buys"), each with a public way out:

- the in-process simulation driver (``fl.flower.simulation``): Flower's ``_run_simulation``
  with a run config (the public ``run_simulation`` takes none); without it, run the App with
  ``flwr run`` (``metatrading fl-deploy``);
- the long-lived ClientApp process (``fl/flower/worker.py``): Flower's ClientApp task steps;
  without it, ``--isolation subprocess`` (Flower's own ``flwr-clientapp`` per message);
- the short polls (``fl.flower.waits``): module attributes of the SuperNode loop and of the
  ServerApp's Grid; without them, Flower's own waits (``--stock-waits``).

Every such import goes through :func:`internal` (the test ``tests/fl/test_flower_imports.py``
checks that no module imports a non-public ``flwr`` module otherwise); it refuses any Flower
version other than :data:`TESTED` with one line that names the public way out, and
:func:`matches` lets a caller fall back to it instead. Standard library only: the worker and
the SuperNode launcher load this file by path, without the ``fl`` package or torch.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["TESTED", "PUBLIC_MODULES", "FlowerVersionError", "installed", "matches", "internal", "optional",
           "sibling"]

#: The Flower release (major.minor) whose internals this project was written and measured against.
TESTED = "1.42"
#: ``flwr`` modules that are Flower's public API (imported without the gate).
PUBLIC_MODULES = ("flwr.app", "flwr.clientapp", "flwr.serverapp", "flwr.serverapp.strategy", "flwr.simulation")
#: Name under which a script loads this file by path (``sibling``).
GATE_MODULE = "metatrading_flower_gate"


class FlowerVersionError(RuntimeError):
    """The installed Flower is not the one whose internals a feature uses; the message says what to run instead."""


def installed() -> str:
    """The installed Flower's version ("" when flwr is not installed)."""
    try:
        import flwr
    except ImportError:
        return ""
    return str(getattr(flwr, "__version__", "?"))


def matches() -> bool:
    """Whether the installed Flower is the tested release (same major.minor)."""
    version = installed()
    return version == TESTED or version.startswith(TESTED + ".")


def internal(module: str, *, what: str, instead: str) -> ModuleType:
    """``module`` (an internal ``flwr`` module), imported only under the tested Flower release.

    Parameters
    ----------
    module : str
        Dotted name, e.g. ``"flwr.supernode.start_client_internal"``.
    what : str
        The feature that needs it (for the error).
    instead : str
        What to run instead, with Flower's public API (for the error).

    Raises
    ------
    FlowerVersionError
        Another Flower version, or the module is gone.
    """
    if not matches():
        raise FlowerVersionError(f"{what} uses Flower {TESTED}.x internals ({module}); this is Flower "
                                 f"{installed() or 'not installed'}: {instead}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlowerVersionError(f"{what} needs {module}, which this Flower {installed()} lacks ({exc}): "
                                 f"{instead}") from None


def optional(module: str) -> ModuleType | None:
    """``module`` under the tested Flower release, else None (for a cosmetic use the caller can skip)."""
    if not matches():
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def sibling(name: str) -> ModuleType:
    """``fl/flower/<name>.py`` loaded by path under ``metatrading_flower_<name>`` (for scripts that
    must not import the ``fl`` package); this gate itself is registered as ``GATE_MODULE``."""
    sys.modules.setdefault(GATE_MODULE, sys.modules[__name__])
    key = f"metatrading_flower_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                        f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses resolve the module by name
        spec.loader.exec_module(module)
    return sys.modules[key]
