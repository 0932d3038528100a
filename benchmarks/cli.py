"""The metatrading command line.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches, importing the module lazily so
that ``metatrading solve`` never pays for importing torch. The conventions every
command shares (``--out`` checked before any work, ``--force``, ``--quiet``) are
added here, for every registered command (see :mod:`benchmarks.conventions`).

Exit codes: 0 success, 1 a solve/run that failed (status reported), 2 bad input.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
from typing import Sequence

from models.errors import InputError

#: sub-command -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("benchmarks.solve_cmd", "compute and certify the EPEC equilibrium of a scenario"),
    "fl": ("benchmarks.fl_cmd", "run federated learning driven by an allocation"),
    "presets": ("benchmarks.presets_cmd", "list the scenario presets with their sizes"),
    "plot-fl": ("benchmarks.plot_fl_cmd", "overlay the accuracy curves of several fl.json runs"),
    "compare": ("benchmarks.compare_cmd", "compare pricing schemes on dynamic markets with FL on real images"),
    "train-pricing": ("benchmarks.train_pricing_cmd", "train independent PPO pricing agents (one per MSP)"),
    "validate": ("benchmarks.validate_cmd", "gaps of learned or given rewards to the certified EPEC"),
    "fl-deploy": ("benchmarks.fl_deploy_cmd", "the FL run on a local Flower deployment (SuperLink, SuperNodes, TLS)"),
    "sweep": ("benchmarks.sweep_cmd", "certified equilibria along one or two parameters, with their sensitivities"),
}
#: bench target -> (module, help)
BENCHES: dict[str, tuple[str, str]] = {
    "epec": ("benchmarks.bench_epec", "EPEC solve time against the rebuild-every-step approach"),
    "fl": ("benchmarks.bench_fl", "FL trainer throughput (vectorised, sequential, Flower)"),
    "derivatives": ("benchmarks.bench_derivatives", "exact-derivative back ends: CasADi vs Pyomo symbolic"),
    "robustness": ("benchmarks.bench_robustness", "EPEC solves over random scenarios from the model's whole range"),
    "pricing": ("benchmarks.bench_pricing", "batched follower equilibria per second and market rounds per second"),
    "peers": ("benchmarks.bench_peers", "bilevel, EPEC and Nash instances with published answers (BASBLib, MacMPEC, ...)"),
    "certificate": ("benchmarks.bench_certificate", "the batched certificate against the sequential one, side by side"),
    "sweep": ("benchmarks.bench_sweep", "a sweep by continuation against cold solves of its points, interleaved"),
}

DESCRIPTION = ("MetaTrading: exact equilibria of FL incentive mechanisms for vehicular metaverse services, "
               "and FL training driven by them. Exit codes: 0 success, 1 a run that failed (status "
               "reported), 2 bad input.")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the flag (exit 2), like every other
    input error of the toolkit."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metatrading")
    except PackageNotFoundError:  # run from a checkout that was never pip-installed
        return "unknown (not installed)"


def _add_conventions(p: argparse.ArgumentParser) -> None:
    """``--quiet`` for every command; ``--force`` for every command that writes into ``--out``."""
    flags = p._option_string_actions
    if "--quiet" not in flags:
        p.add_argument("--quiet", action="store_true",
                       help="no progress bar (there is none either when stderr is not a terminal)")
    if "--out" in flags and "--force" not in flags:
        p.add_argument("--force", action="store_true",
                       help="replace the results already in --out (a non-empty --out is refused without it)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="metatrading", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"metatrading {_version()}")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE before the command (a module name, found in the current folder too, or a "
                             ".py file's path; repeatable): it registers its own MPEC modes (epec.register_mode), "
                             "data sets (fl.data.register_dataset), aggregation rules "
                             "(fl.aggregate.register_aggregation) or schemes, which the command's choices then list")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
        _add_conventions(p)
    bench = sub.add_parser("bench", help="scripted benchmarks", description="scripted benchmarks")
    bsub = bench.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, (module, help_) in BENCHES.items():
        p = bsub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
        _add_conventions(p)
    return parser


def _glue_negative_lists(argv: list[str]) -> list[str]:
    """``--rewards -1,9,13`` as ``--rewards=-1,9,13``: argparse takes a value that starts with a
    dash and is not a single number for an option, and says "expected one argument"; the command
    then checks the numbers and names the flag."""
    out: list[str] = []
    for tok in argv:
        if (out and out[-1].startswith("--") and "=" not in out[-1] and "," in tok
                and re.match(r"-\.?\d", tok)):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def _import_plugins(argv: list[str]) -> None:
    """Import every ``--plugin MODULE`` given before the command, before the parser reads the
    registries (so their choices hold what the plugins register)."""
    from benchmarks.conventions import import_user_module

    for k, tok in enumerate(argv):
        if tok in COMMANDS or tok == "bench":
            return
        if tok == "--plugin" and k + 1 < len(argv):
            import_user_module(argv[k + 1], "--plugin")
        elif tok.startswith("--plugin="):
            import_user_module(tok.split("=", 1)[1], "--plugin")


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.conventions import (Stopped, catch_signals, check_out, output_folder, recover_previous,
                                       stop_received)

    argv = _glue_negative_lists(list(sys.argv[1:] if argv is None else argv))
    try:
        _import_plugins(argv)
    except InputError as err:
        print(f"metatrading: error: {err}", file=sys.stderr)
        return 2
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (one line, already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    state: dict = {}
    out = getattr(args, "out", None)
    try:
        with catch_signals():
            if out is None:
                return int(importlib.import_module(args._module).run(args) or 0)
            # every command's output folder, checked before any work
            note = recover_previous(out)
            if note is not None:
                print(f"metatrading: {note}", file=sys.stderr)
            check_out(out, force=getattr(args, "force", False), resume=getattr(args, "resume", False))
            error = None
            with output_folder(out, force=getattr(args, "force", False)) as state:
                try:
                    state["rc"] = int(importlib.import_module(args._module).run(args) or 0)
                except InputError as err:  # found by the command: undo what it wrote, then report
                    state["rc"], error = 2, err
            if error is not None:
                raise error
            return state["rc"]
    except InputError as err:
        if err.field == "scenario" and getattr(args, "scenario", None) is not None:
            err = InputError("--scenario", err.reason)  # models.load_scenario's field is this flag
        print(f"metatrading: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed by the reader (`metatrading solve ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141  # 128 + SIGPIPE, as a shell tool killed by it
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (Stopped)
        return _stopped(exc, state, out)
    except Exception:
        if stop_received() is None:
            raise
        # the stop, wrapped by the code it landed in (an import raises RuntimeError, say)
        return _stopped(Stopped(stop_received()), state, out)


def _stopped(exc: KeyboardInterrupt, state: dict, out: object) -> int:
    """Report a Ctrl-C, SIGTERM or SIGHUP; the conventional exit code 128 + signal."""
    from benchmarks.conventions import Stopped

    signo = exc.signo if isinstance(exc, Stopped) else signal.SIGINT
    what = "interrupted" if signo == signal.SIGINT else f"stopped by {signal.Signals(signo).name}"
    if state.get("restored"):
        print(f"metatrading: {what}; the previous results in {out} are back unchanged", file=sys.stderr)
    else:
        print(f"metatrading: {what}; results already written are intact", file=sys.stderr)
    return 128 + int(signo)


if __name__ == "__main__":
    sys.exit(main())
