"""Flower's own SuperNode, ``flower-supernode``, with the short polls of ``fl.flower.waits``.

``python fl/flower/supernode_launcher.py [--poll-first S] [--poll-cap S] -- <flower-supernode args>``
runs exactly what the ``flower-supernode`` command runs (``flwr.supernode.cli.flower_supernode``,
the same arguments, the same process) after ``fl.flower.waits.shorten_supernode_waits``: the
SuperNode then asks the SuperLink for its next message, and looks for its ClientApp's reply,
after waits that start at ``--poll-first`` and double up to ``--poll-cap`` instead of Flower
1.42's fixed 3 s and 0.5 s. ``fl.flower.deployment`` starts its SuperNodes this way
(``--stock-waits`` starts the plain ``flower-supernode`` command instead). Both Flower modules it
uses are internal: they go through the version gate (``fl/flower/gate.py``).

Run it as a script: it loads ``fl/flower/gate.py`` and ``waits.py`` by path and imports neither
the ``fl`` package nor torch (a SuperNode does not train).
"""
from __future__ import annotations

import sys

if __name__ == "__main__":  # run as a script: its folder (fl/) must not shadow top-level modules
    import os

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import importlib.util
from pathlib import Path


def load_gate_module():
    """``fl/flower/gate.py``, loaded by path (standard library only)."""
    name = "metatrading_flower_gate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name("gate.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def load_waits_module():
    """``fl/flower/waits.py``, loaded by path (standard library and the gate only)."""
    return load_gate_module().sibling("waits")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    waits = load_waits_module()
    if "--" not in argv:
        raise SystemExit("usage: supernode_launcher.py [--poll-first S] [--poll-cap S] -- <flower-supernode args>")
    at = argv.index("--")
    p = argparse.ArgumentParser(prog="supernode_launcher.py",
                                description="flower-supernode with short polls (fl.flower.waits)")
    p.add_argument("--poll-first", type=float, default=waits.DEFAULT_FIRST_S,
                   help=f"first wait of a poll in seconds (default {waits.DEFAULT_FIRST_S})")
    p.add_argument("--poll-cap", type=float, default=waits.DEFAULT_CAP_S,
                   help=f"longest wait of a poll in seconds (default {waits.DEFAULT_CAP_S})")
    args = p.parse_args(argv[:at])
    if not (0 < args.poll_first <= args.poll_cap <= 60):
        p.error(f"need 0 < --poll-first <= --poll-cap <= 60, got {args.poll_first} and {args.poll_cap}")
    return args, argv[at + 1:]


def main(argv: list[str] | None = None) -> int:
    args, flower_args = parse_args(sys.argv[1:] if argv is None else argv)
    load_waits_module().shorten_supernode_waits(args.poll_first, args.poll_cap)
    gate = load_gate_module()
    instead = "start the stock flower-supernode (fl-deploy --stock-waits)"
    flower_supernode = gate.internal("flwr.supernode.cli", what="the SuperNode launcher", instead=instead).flower_supernode
    logger = gate.internal("flwr.supercore.logger", what="the SuperNode launcher", instead=instead)
    logger.update_console_handler(timestamps=True, colored=False)  # the log is a file: times, no colour codes

    sys.argv = ["flower-supernode", *flower_args]
    return flower_supernode() or 0


if __name__ == "__main__":
    sys.exit(main())
