"""Independent units of work in this process or as Ray tasks, with the same results.

A unit of work is one pure, module-level function of plain data returning a plain record (a
sweep path, :func:`epec.sweep.sweep_path`; a robustness scenario,
:func:`benchmarks.bench_robustness.solve_task`). :func:`map_tasks` runs it in-process, one task
after the other, with ``--workers 1`` and no ``--ray-address``; otherwise as Ray tasks
(``@ray.remote``), on a Ray instance started here with ``--workers`` CPUs or on the existing
cluster at ``--ray-address``, and hands the results back in the order of the tasks
(``ray.get`` in submission order), so the files a command writes do not depend on where or in
which order the tasks ran. Ctrl-C (or any error while the results are read) cancels the tasks
still running and shuts the connection down.

The worker processes import this project: on the local instance through ``PYTHONPATH`` (set
in the tasks' runtime environment to this checkout); on a cluster, each node needs the project
installed (``pip install -e .`` of the same version) or the same checkout at the same path.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from models.errors import InputError

__all__ = ["check_workers", "map_tasks", "task_overhead", "add_parallel_arguments"]


def add_parallel_arguments(parser: Any) -> None:
    """``--workers`` and ``--ray-address``, as every command with independent tasks has them."""
    parser.add_argument("--workers", type=int, default=1,
                        help="run the independent tasks as Ray tasks on a Ray instance started here with this many "
                             "CPUs (default 1: in this process, one after the other, no Ray)")
    parser.add_argument("--ray-address", default=None,
                        help="run the tasks on the existing Ray cluster at this address (host:port of its head, "
                             "started by ray start --head; its CPUs set the parallelism and --workers is not used)")


def check_workers(workers: int, address: str | None) -> None:
    """InputError naming ``--workers`` or ``--ray-address`` for values that cannot run."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError("--workers", f"must be an integer >= 1, got {workers!r}")
    if address is not None and not address.strip():
        raise InputError("--ray-address", "must be host:port of a running Ray cluster, got an empty string")
    if workers > 1 or address:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InputError("--workers" if not address else "--ray-address",
                             "needs Ray, which is not installed (pip install -e '.[flower]')") from None


def _runtime_env() -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def _connect(workers: int, address: str | None) -> Any:
    import logging

    # Ray 2.55 warns on every start that a future version stops overriding accelerator variables;
    # this project asks for no accelerator, so the future behaviour is taken now
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import ray

    if address:
        try:
            ray.init(address=address, runtime_env=_runtime_env(), log_to_driver=False,
                     logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise InputError("--ray-address", f"cannot connect to a Ray cluster at {address}: "
                                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    else:
        ray.init(num_cpus=workers, include_dashboard=False, runtime_env=_runtime_env(), log_to_driver=False,
                 logging_level=logging.WARNING)
    return ray


def map_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], *, workers: int = 1,
              address: str | None = None) -> Iterator[Any]:
    """``fn(task)`` for every task, the results in the order of ``tasks`` (a generator).

    In-process with ``workers == 1`` and no ``address``; otherwise as Ray tasks (module doc).
    Closing the generator early, an error or Ctrl-C cancels the tasks not yet read.
    """
    if workers == 1 and not address:
        for task in tasks:
            yield fn(task)
        return
    if not tasks:
        return
    ray = _connect(workers, address)
    refs: list = []
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [remote.remote(task) for task in tasks]
        for ref in refs:
            yield ray.get(ref)
    except BaseException:  # Ctrl-C, an error, or the caller closing the generator
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or gone
                pass
        raise
    finally:
        ray.shutdown()


def _noop(task: Any) -> Any:
    return task


def task_overhead(workers: int = 1, address: str | None = None, tasks: int = 50) -> dict[str, float]:
    """Seconds Ray adds: ``start`` (connecting, or starting the local instance), ``first_task``
    (a no-op task on a fresh worker) and ``per_task`` (a batch of ``tasks`` no-op tasks, per
    task, after that)."""
    ts = time.perf_counter()
    ray = _connect(max(workers, 1), address)
    start = time.perf_counter() - ts
    try:
        remote = ray.remote(num_cpus=1)(_noop)
        t0 = time.perf_counter()
        ray.get(remote.remote(0))
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        ray.get([remote.remote(k) for k in range(tasks)])
        per = (time.perf_counter() - t1) / tasks
    finally:
        ray.shutdown()
    return {"start": start, "first_task": first, "per_task": per}
