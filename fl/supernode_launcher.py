"""Flower's own SuperNode, ``flower-supernode``, with the short polls of ``fl.flower_waits``.

``python fl/supernode_launcher.py [--poll-first S] [--poll-cap S] -- <flower-supernode args>``
runs exactly what the ``flower-supernode`` command runs (``flwr.supernode.cli.flower_supernode``,
the same arguments, the same process) after ``fl.flower_waits.shorten_supernode_waits``: the
SuperNode then asks the SuperLink for its next message, and looks for its ClientApp's reply,
after waits that start at ``--poll-first`` and double up to ``--poll-cap`` instead of Flower
1.42's fixed 3 s and 0.5 s. ``fl.deploy`` starts its SuperNodes this way (``--stock-waits``
starts the plain ``flower-supernode`` command instead).

Run it as a script: it loads ``fl/flower_waits.py`` by path and imports neither the ``fl``
package nor torch (a SuperNode does not train).
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


def load_waits_module():
    """``fl/flower_waits.py``, loaded by path (standard library only at import)."""
    if "metatrading_flower_waits" in sys.modules:
        return sys.modules["metatrading_flower_waits"]
    path = Path(__file__).resolve().with_name("flower_waits.py")
    spec = importlib.util.spec_from_file_location("metatrading_flower_waits", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    waits = load_waits_module()
    if "--" not in argv:
        raise SystemExit("usage: supernode_launcher.py [--poll-first S] [--poll-cap S] -- <flower-supernode args>")
    at = argv.index("--")
    p = argparse.ArgumentParser(prog="supernode_launcher.py",
                                description="flower-supernode with short polls (fl.flower_waits)")
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
    from flwr.supercore.logger import update_console_handler
    from flwr.supernode.cli import flower_supernode

    update_console_handler(timestamps=True, colored=False)  # the log is a file: times, no colour codes

    sys.argv = ["flower-supernode", *flower_args]
    return flower_supernode() or 0


if __name__ == "__main__":
    sys.exit(main())
