"""The ``metatrading`` command.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches, importing the module lazily so
that ``metatrading solve`` never pays for importing torch.

Exit codes: 0 success, 1 a solve/run that failed (status reported), 2 bad input.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

from models.errors import InputError

#: sub-command -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("benchmarks.solve_cmd", "compute and certify the EPEC equilibrium of a scenario"),
    "fl": ("benchmarks.fl_cmd", "run federated learning driven by an allocation"),
    "fl-deploy": ("benchmarks.fl_deploy_cmd", "the FL run on a local Flower deployment (SuperLink, SuperNodes, TLS)"),
}
#: bench target -> (module, help)
BENCHES: dict[str, tuple[str, str]] = {
    "epec": ("benchmarks.bench_epec", "EPEC solve time against the rebuild-every-step approach"),
    "fl": ("benchmarks.bench_fl", "FL trainer throughput (vectorised, sequential, Flower)"),
    "derivatives": ("benchmarks.bench_derivatives", "exact-derivative back ends: CasADi vs Pyomo symbolic"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metatrading", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    bench = sub.add_parser("bench", help="scripted benchmarks", description="scripted benchmarks")
    bsub = bench.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, (module, help_) in BENCHES.items():
        p = bsub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        out = getattr(args, "out", None)  # every command's output folder, checked before any work
        if out and Path(out).exists() and not Path(out).is_dir():
            raise InputError("--out", f"not a folder: {out}")
        return int(importlib.import_module(args._module).run(args) or 0)
    except InputError as err:
        print(f"metatrading: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("metatrading: interrupted; results already written are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
