"""``metatrading bench fl``: throughput of the FL trainer's local training.

Measured side by side in one run, on real mnist5k images, for each K in ``--clients``:

- ``limit``: ONE model (the same CNN) trained on the same number of samples in large
  batches (``--limit-batch``, default 320) with ``torch.optim.SGD`` -- the machine's own
  limit for this network;
- ``vectorised``: a full FL round (K clients x local epochs, unequal client sizes) with
  ``fl.train.local_update_stacked`` plus aggregation;
- ``parallel``: the same round, the sequential update with clients spread over the CPU cores,
  one intra-op thread each (``local_update_parallel``);
- ``sequential``: the same round, one client after the other (``local_update_sequential``).

Each is timed ``--reps`` times in interleaved order and the best run is kept (robust to
other processes on a shared machine). Ratios are samples/s over the limit's samples/s.
Then: Flower's simulation engine running the App (``fl.flower.simulation``) on a generated task
(``--flower-clients`` MUs x 1 MSP, mnist5k) against the built-in trainer on the same task
(seconds per round); on CUDA, vectorised vs sequential for the
largest K; the deployment engine (``--deploy-rounds``): one generated task (``--flower-clients``
MUs x 1 MSP, mnist5k) run by the built-in trainer, Flower's simulation engine and a real local
deployment (``fl.flower.deployment``: SuperLink, one SuperNode per MU, ``flwr run``, TLS; ``--deploy-isolation``:
a long-lived ClientApp process per SuperNode, Flower's ClientApp process per message, or both;
``--deploy-waits``: short polling waits, Flower's own, or both), seconds per steady round (rounds
after the first) of each, same run (the built-in trainer runs before and after the deployments;
its faster steady round is the reference); and the accuracy run (mnist5k, 10
clients, time to 90% test accuracy).
Writes ``DIR/fl_throughput.json``, ``DIR/fl_throughput.png`` (samples/s of each path per K) and,
when the accuracy run ran, ``DIR/fl_accuracy.png`` (its test accuracy against simulated time),
and prints a table.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from models.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (writes fl_throughput.json and fl_throughput.png)")
    p.add_argument("--clients", type=int, nargs="+", default=[10, 50], help="K values (default 10 50)")
    p.add_argument("--samples", type=int, default=3000,
                   help="training samples of a round, split unequally over the K clients (default 3000)")
    p.add_argument("--epochs", type=int, default=2, help="local epochs (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="local batch size (default 32)")
    p.add_argument("--limit-batch", type=int, default=320, help="batch of the single-model limit (default 320)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions, best kept (default 3)")
    p.add_argument("--flower-rounds", type=int, default=2,
                   help="rounds of the comparison with Flower's simulation engine (default 2; 0 leaves the Flower "
                        "comparison out, which also saves Ray's start-up)")
    p.add_argument("--flower-clients", type=int, default=10, help="clients for the Flower comparison (default 10)")
    p.add_argument("--deploy-rounds", type=int, default=3,
                   help="rounds of the deployment-engine comparison (0 skips; default 3: 2 steady rounds)")
    p.add_argument("--deploy-isolation", default="process", choices=["process", "subprocess", "both"],
                   help="SuperNode isolation of the deployment row: process (a long-lived ClientApp process per "
                        "node, default), subprocess (Flower's default: a new ClientApp process per message) "
                        "or both, one deployment each, in the same run")
    p.add_argument("--deploy-waits", default="short", choices=["short", "stock", "both"],
                   help="polling of the deployment row: short (fl.flower.waits' short, doubling waits, fl-deploy's "
                        "default), stock (Flower's own: 3 s between a SuperNode's polls) or both, in the same run")
    p.add_argument("--deploy-poll-caps", type=float, nargs="+", default=None,
                   help="with short waits: the longest poll waits to measure, one deployment each (default: "
                        "fl.flower.waits' 0.2 s)")
    p.add_argument("--accuracy-rounds", type=int, default=30,
                   help="rounds of the accuracy run (default 30; 0 leaves the accuracy run out)")
    p.add_argument("--accuracy-clients", type=int, default=10, help="clients of the accuracy run (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every random draw: client sizes, partitions, initial models, batch orders and the "
                        "accuracy run's scenario (default 0)")


def _check(args: argparse.Namespace) -> None:
    for name in ("samples", "epochs", "batch_size", "limit_batch", "reps", "flower_clients", "accuracy_clients"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}", f"must be >= 1, got {getattr(args, name)}")
    for name in ("flower_rounds", "accuracy_rounds", "deploy_rounds"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name.replace('_', '-')}", f"must be >= 0, got {getattr(args, name)}")
    if args.deploy_poll_caps is not None:
        if args.deploy_waits == "stock":
            raise InputError("--deploy-poll-caps", "sets the short waits; --deploy-waits stock keeps Flower's own")
        bad = [c for c in args.deploy_poll_caps if not 0.005 <= c <= 60]
        if bad:
            raise InputError("--deploy-poll-caps", f"each must be in [0.005, 60] seconds, got {bad[0]}")
    if any(k < 1 for k in args.clients):
        raise InputError("--clients", f"each K must be >= 1, got {args.clients}")
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads", f"must be >= 1, got {args.threads}")
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    if args.samples < max(args.clients):
        raise InputError("--samples", f"need at least one sample per client ({max(args.clients)}), got {args.samples}")


def client_sizes(total: int, k: int, seed: int) -> list[int]:
    """``total`` samples split over k clients unequally (sizes in ratio 1 : 3 at the extremes)."""
    import numpy as np

    if total < k:
        raise InputError("--samples", f"need at least one sample per client ({k}), got {total}")
    w = np.linspace(1.0, 3.0, k)
    np.random.default_rng(seed).shuffle(w)
    sizes = np.maximum(1, np.floor(total * w / w.sum())).astype(int)
    sizes[np.argmax(sizes)] += total - sizes.sum()
    return sizes.tolist()


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _throughput(ds, k: int, args, device: str, kinds: tuple[str, ...]) -> dict:
    """Best samples/s of each kind for one round of k clients (interleaved repetitions)."""
    import numpy as np
    import torch

    from fl import IoMFedAvg, LocalTrainConfig, TrainPath, client_seed, dirichlet_partition, get_params, local_update, make_net

    sizes = client_sizes(args.samples, k, args.seed)
    idx = dirichlet_partition(ds.train_y.numpy(), sizes, 0.5, args.seed)
    xs = [ds.train_x[torch.as_tensor(i)].to(device) for i in idx]
    ys = [ds.train_y[torch.as_tensor(i)].to(device) for i in idx]
    cfg = LocalTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, momentum=0.0)  # as the loop below
    torch.manual_seed(args.seed)
    net = make_net(ds.shape, ds.num_classes).to(device)
    params = get_params(net)
    seeds = [client_seed(args.seed, 0, i) for i in range(k)]
    iom = np.ones(k)
    strategy = IoMFedAvg()
    n_samples = sum(sizes) * args.epochs
    allx, ally = torch.cat(xs), torch.cat(ys)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def limit():
        model = make_net(ds.shape, ds.num_classes).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        gen = torch.Generator().manual_seed(args.seed)
        for _ in range(args.epochs):
            for b in torch.randperm(allx.shape[0], generator=gen).split(args.limit_batch):
                b = b.to(device)
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(allx[b]), ally[b]).backward()
                opt.step()
        sync()

    def round_on(path):
        def run():
            strategy.aggregate(local_update(TrainPath(path), net, params, xs, ys, cfg, seeds), iom, sizes)
            sync()
        return run

    fns = {"limit": limit, **{p.value: round_on(p) for p in TrainPath if p is not TrainPath.AUTO}}
    best = {name: float("inf") for name in kinds}
    for name in kinds:  # warm-up (allocator, kernels)
        fns[name]()
    for _ in range(args.reps):
        for name in kinds:
            best[name] = min(best[name], _time(fns[name]))
    out = {"clients": k, "sizes_min": min(sizes), "sizes_max": max(sizes), "samples": n_samples}
    for name in kinds:
        out[f"{name}_s"] = best[name]
        out[f"{name}_samples_per_s"] = n_samples / best[name]
    for name in kinds:
        if name != "limit" and "limit" in kinds:
            out[f"{name}_ratio"] = best["limit"] / best[name]
    for name in ("vectorised", "parallel"):
        if name in kinds and "sequential" in kinds:
            out[f"{name}_over_sequential"] = best["sequential"] / best[name]
    return out


def _generated_task(k: int, args, folder: Path):
    """``(task, cfg, allocation file)``: K MUs x 1 MSP generated from ``--seed`` (every MU gives
    its CPU to the MSP), mnist5k, ``--epochs`` / ``--batch-size``; the allocation written to ``folder``."""
    from fl.data import load_dataset
    from fl.trainer import FLConfig, build_task
    from models.io import atomic_write_json
    from models.scenario import generate

    sc = generate(k, 1, seed=args.seed)
    f = sc.F[:, None].copy()
    cfg = FLConfig(rounds=1, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size)
    path = folder / "allocation.json"
    atomic_write_json(path, {"allocations": f.tolist(), "scenario": sc.to_dict()})
    return build_task(load_dataset("mnist5k"), sc, f, cfg), cfg, path.resolve()


def _app_run_config(args, allocation: Path, rounds: int, out: Path) -> dict:
    """The App's run config of the generated task (``fl.flower.runconfig``)."""
    return {"allocation": str(allocation), "rounds": rounds, "seed": args.seed, "epochs": args.epochs,
            "batch-size": args.batch_size, "out-dir": str(out.resolve())}


def _flower(ds, args) -> dict:
    """Seconds per round: Flower's simulation engine (the App, ``fl.flower.app``) vs the built-in
    trainer, same task (``--flower-clients`` MUs x 1 MSP generated from ``--seed``, mnist5k)."""
    import dataclasses
    import tempfile

    import numpy as np

    from fl.flower import gate

    if not gate.installed():
        return {"skipped": "flwr not installed; pip install -e '.[flower]'"}
    from fl.flower.simulation import FlowerOptions, run_flower_simulation
    from fl.trainer import run_fl

    k, rounds = args.flower_clients, args.flower_rounds
    with tempfile.TemporaryDirectory(prefix="bench-fl-") as tmp:
        task, cfg, allocation = _generated_task(k, args, Path(tmp))
        cfg = dataclasses.replace(cfg, rounds=rounds)
        t0 = time.perf_counter()
        builtin = run_fl(task, cfg)
        builtin_total_s = time.perf_counter() - t0
        try:
            res = run_flower_simulation(_app_run_config(args, allocation, rounds, Path(tmp) / "out"),
                                        options=FlowerOptions())
        except Exception as exc:  # the comparison is optional; say why it is missing
            return {"skipped": f"Flower simulation failed: {type(exc).__name__}: {exc}"}
    builtin_s = float(np.mean(builtin.wall_time))
    flower_round_s = float(np.mean([float(r["wall_s"]) for r in res.rounds]))
    diff = max(float((res.params[n] - builtin.params[n]).abs().max()) for n in builtin.params)
    return {
        "clients": k, "rounds": rounds, "samples_per_round": int(task.sizes.sum()) * task.local.epochs,
        "builtin_path": builtin.path, "builtin_round_s": builtin_s, "flower_round_s": flower_round_s,
        "builtin_total_s": builtin_total_s, "flower_total_s": res.wall_s,
        # the whole workload as a user waits for it (Flower's engine start-up included) ...
        "flower_over_builtin": res.wall_s / builtin_total_s,
        # ... and the rounds alone
        "flower_round_over_builtin_round": flower_round_s / builtin_s,
        "builtin_accuracy": builtin.accuracy[-1],
        "max_weight_difference": diff,
    }


def _steady(wall: list[float]) -> float:
    """Mean seconds of the rounds after the first (the first pays start-up), or of the only one."""
    import numpy as np

    return float(np.mean(wall[1:] if len(wall) > 1 else wall))


def _steady_cpu(cpu_by_round: list, rounds: int) -> dict[str, float] | None:
    """CPU seconds per steady round (after round 1) of each kind of deployment process."""
    first = next((c for done, c in cpu_by_round if done == 1), None)
    last = next((c for done, c in reversed(cpu_by_round) if done == rounds), None)
    if first is None or last is None or rounds < 2:
        return None
    per = {role: (last.get(role, 0.0) - first.get(role, 0.0)) / (rounds - 1) for role in last}
    return {**per, "all": sum(per.values())}


def _deployment(args, out: Path) -> dict:
    """Seconds per steady round: built-in trainer, simulation engine, deployment engine, one task."""
    from fl.flower import gate

    if not gate.installed():
        return {"skipped": "flwr not installed; pip install -e '.[flower]'"}
    from fl.flower.deployment import DeploymentError, NodeSpec, run_local_deployment
    from fl.flower.simulation import FlowerOptions, run_flower_simulation
    import dataclasses
    import json

    import torch

    from fl.trainer import run_fl

    k, rounds = args.flower_clients, args.deploy_rounds
    work = out / "deployment"
    task, cfg, allocation = _generated_task(k, args, work)
    cfg = dataclasses.replace(cfg, rounds=rounds)
    builtin = run_fl(task, cfg)
    try:
        sim = run_flower_simulation(_app_run_config(args, allocation, rounds, work / "simulation"),
                                    options=FlowerOptions())
        sim_round_s = _steady([float(r["wall_s"]) for r in sim.rounds])
        sim_diff = max(float((sim.params[n] - builtin.params[n]).abs().max()) for n in builtin.params)
    except Exception as exc:  # the comparison is optional; say why it is missing
        sim_round_s, sim_diff = None, None
        sim_error = f"{type(exc).__name__}: {exc}"
    else:
        sim_error = None
    nodes = [NodeSpec(i, k, int(n)) for i, n in enumerate(task.participants)]
    isolations = ["process", "subprocess"] if args.deploy_isolation == "both" else [args.deploy_isolation]
    waits = ["short", "stock"] if args.deploy_waits == "both" else [args.deploy_waits]
    caps = args.deploy_poll_caps or [None]
    modes = [(i, w, c) for i in isolations for w in waits for c in (caps if w == "short" else [None])]
    by_mode = {}
    for isolation, wait, cap in modes:
        mode = f"{isolation} isolation, {wait} waits" + ("" if cap is None else f" (poll cap {cap:g} s)")
        mode_dir = work / f"{isolation}-{wait}{'' if cap is None else f'-{cap:g}'}" if len(modes) > 1 else work
        run_config = _app_run_config(args, allocation, rounds, mode_dir / "out")
        try:
            dep = run_local_deployment(Path(__file__).resolve().parents[1], nodes, run_config, mode_dir,
                                       isolation=isolation, short_waits=wait == "short", poll_cap_s=cap,
                                       timeout_s=rounds * 600.0 + 300.0)
        except DeploymentError as exc:
            return {"skipped": f"deployment ({mode}) failed: {exc}"}
        report = json.loads((mode_dir / "out" / "fl.json").read_text())
        params = torch.load(mode_dir / "out" / "fl_params.pt", weights_only=True)
        round_s = _steady(report["wall_time"])
        by_mode[mode] = {
            "isolation": isolation, "waits": wait, "poll_cap_s": cap, "round_s": round_s,
            "cpu_s_per_steady_round": _steady_cpu(dep.cpu_by_round, rounds),
            "wall_s": report["wall_time"], "total_s": dep.wall_s, "processes": len(dep.pids),
            "max_weight_difference": max(float((params[n] - builtin.params[n]).abs().max()) for n in builtin.params),
        }
    # the built-in trainer again after the deployments: its faster steady round is the reference
    # (the ratios are then the least favourable to the deployment under a changing load)
    cpu0 = time.process_time()
    again = run_fl(task, cfg)
    builtin_cpu = (time.process_time() - cpu0) / rounds
    builtin_rounds = [_steady(builtin.wall_time), _steady(again.wall_time)]
    builtin_round_s = min(builtin_rounds)
    for m in by_mode.values():
        m["round_over_builtin_round"] = m["round_s"] / builtin_round_s
    first = next(iter(by_mode.values()))
    return {
        "clients": k, "rounds": rounds, "samples_per_round": int(task.sizes.sum()) * task.local.epochs,
        "builtin_path": builtin.path, "builtin_round_s": builtin_round_s,
        "simulation_round_s": sim_round_s, "simulation_error": sim_error,
        "builtin_round_s_before_after": builtin_rounds, "builtin_cpu_s_per_round": builtin_cpu,
        "isolation": modes[0][0], "waits": modes[0][1], "deployment_round_s": first["round_s"],
        "deployment_round_over_builtin_round": first["round_over_builtin_round"],
        "simulation_round_over_builtin_round": None if sim_round_s is None else sim_round_s / builtin_round_s,
        "builtin_wall_s": list(builtin.wall_time), "deployment_wall_s": first["wall_s"],
        "deployment_total_s": first["total_s"], "deployment_processes": first["processes"], "tls": True,
        "max_weight_difference_deployment": first["max_weight_difference"],
        "max_weight_difference_simulation": sim_diff,
        "by_mode": by_mode,
    }


def _accuracy(args) -> dict:
    """mnist5k, ``--accuracy-clients`` MUs (a generated 1-MSP scenario, equal split of F)."""
    import numpy as np

    from fl.data import load_dataset
    from fl.trainer import FLConfig, build_task, run_fl
    from models.scenario import generate

    sc = generate(args.accuracy_clients, 1, seed=args.seed)
    f = sc.F[:, None].copy()
    cfg = FLConfig(rounds=args.accuracy_rounds, seed=args.seed, target=0.9)
    task = build_task(load_dataset("mnist5k"), sc, f, cfg)
    t0 = time.perf_counter()
    res = run_fl(task, cfg)
    return {
        "dataset": "mnist5k", "clients": int(len(task.participants)), "samples": int(np.sum(task.sizes)),
        "local": {"epochs": task.local.epochs, "batch_size": task.local.batch_size, "lr": task.local.lr,
                  "momentum": task.local.momentum}, "alpha": cfg.alpha,
        "rounds": res.rounds, "target": 0.9, "rounds_to_target": res.rounds_to_target,
        "time_to_target": res.time_to_target, "final_accuracy": res.accuracy[-1],
        "accuracy": res.accuracy, "sim_time": res.sim_time, "wall_s": time.perf_counter() - t0,
    }


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from fl.data import load_dataset
    from models.io import atomic_write_json

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    ds = load_dataset("mnist5k")
    if args.samples > ds.n_train:
        raise InputError("--samples", f"mnist5k has {ds.n_train} training samples, got {args.samples}")
    report: dict = {
        "machine": {"cpu_threads": threads, "cpus": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version(), "cuda": torch.cuda.is_available()},
        "workload": {"dataset": ds.name, "samples": args.samples, "epochs": args.epochs,
                     "batch_size": args.batch_size, "limit_batch": args.limit_batch, "reps": args.reps},
        "cpu": [], "notes": [],
    }
    from fl.train import TrainPath
    from fl.trainer import resolve_path

    for k in args.clients:
        report["cpu"].append(_throughput(ds, k, args, "cpu", ("limit", "vectorised", "parallel", "sequential")))
    report["auto_path"] = {"cpu": resolve_path(TrainPath.AUTO, "cpu").value,
                           "cuda": resolve_path(TrainPath.AUTO, "cuda").value}
    if torch.cuda.is_available():
        report["gpu"] = _throughput(ds, max(args.clients), args, "cuda", ("limit", "vectorised", "sequential"))
    else:
        report["gpu"] = {"skipped": "no CUDA device on this machine"}
    if args.flower_rounds > 0:
        report["flower"] = _flower(ds, args)
    else:
        report["flower"] = {"skipped": "--flower-rounds 0"}
    out = Path(args.out)
    if args.deploy_rounds > 0:
        report["deployment"] = _deployment(args, out)
    else:
        report["deployment"] = {"skipped": "--deploy-rounds 0"}
    if args.accuracy_rounds > 0:
        report["accuracy"] = _accuracy(args)
    else:
        report["accuracy"] = {"skipped": "--accuracy-rounds 0"}
    atomic_write_json(out / "fl_throughput.json", report)
    _plot(out / "fl_throughput.png", report)
    _print(report)
    print(f"wrote {out / 'fl_throughput.json'} and {out / 'fl_throughput.png'}")
    return 0


def _plot(path: Path, rep: dict) -> None:
    """Throughput per path and K; the accuracy run's curve when it ran."""
    from benchmarks.plots import accuracy_plot, throughput_plot

    ks = [r["clients"] for r in rep["cpu"]]
    names = {"limit": "one model, large batches (limit)", "parallel": "parallel", "sequential": "sequential",
             "vectorised": "vectorised"}
    series = {label: [r[f"{key}_samples_per_s"] for r in rep["cpu"]] for key, label in names.items()}
    w = rep["workload"]
    throughput_plot(path, ks, series, title=f"FL local training on {w['dataset']}, CPU, "
                                            f"{rep['machine']['cpu_threads']} threads: {w['samples']} samples x "
                                            f"{w['epochs']} epochs per round, batch {w['batch_size']}")
    a = rep.get("accuracy", {})
    if "accuracy" in a:
        accuracy_plot(path.with_name("fl_accuracy.png"), a["sim_time"], a["accuracy"], a["target"],
                      f"FL accuracy run: {a['dataset']}, {a['clients']} clients")


def _print(rep: dict) -> None:
    print(f"{'K':>4} {'samples':>8} {'limit/s':>9} {'vect/s':>9} {'par/s':>9} {'seq/s':>9} {'vect/limit':>10} "
          f"{'par/limit':>9} {'seq/limit':>9}")
    for r in rep["cpu"]:
        print(f"{r['clients']:>4} {r['samples']:>8} {r['limit_samples_per_s']:>9.0f} "
              f"{r['vectorised_samples_per_s']:>9.0f} {r['parallel_samples_per_s']:>9.0f} "
              f"{r['sequential_samples_per_s']:>9.0f} {r['vectorised_ratio']:>10.2f} "
              f"{r['parallel_ratio']:>9.2f} {r['sequential_ratio']:>9.2f}")
    g = rep["gpu"]
    print("GPU: " + (g["skipped"] if "skipped" in g else
                     f"K={g['clients']} vectorised/sequential = {g['vectorised_over_sequential']:.2f}"))
    fl = rep["flower"]
    print("Flower: " + (fl["skipped"] if "skipped" in fl else
                        f"K={fl['clients']}, {fl['rounds']} rounds: {fl['flower_total_s']:.2f} s in all vs built-in "
                        f"{fl['builtin_total_s']:.2f} s (Flower/built-in = {fl['flower_over_builtin']:.1f}); "
                        f"steady rounds {fl['flower_round_s']:.2f} vs {fl['builtin_round_s']:.2f} s/round "
                        f"(= {fl['flower_round_over_builtin_round']:.2f})"))
    d = rep.get("deployment", {"skipped": "not run"})
    if "skipped" in d:
        print("Deployment: " + d["skipped"])
    else:
        sim = ("failed" if d["simulation_round_s"] is None else
               f"simulation {d['simulation_round_s']:.2f} s (= {d['simulation_round_over_builtin_round']:.2f}x)")
        print(f"Deployment: built-in trainer {d['builtin_cpu_s_per_round']:.2f} CPU s per round "
              f"(all rounds, its whole process)")
        for mode, m in d["by_mode"].items():
            print(f"Deployment: K={d['clients']}, {d['rounds']} rounds, TLS, {mode}: steady round "
                  f"{m['round_s']:.2f} s vs built-in {d['builtin_round_s']:.2f} s (= {m['round_over_builtin_round']:.2f}x), "
                  f"{sim}; max |weight diff| vs built-in {m['max_weight_difference']:.1e}")
            cpu = m.get("cpu_s_per_steady_round")
            if cpu:
                print("  CPU s per steady round: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items())))
    a = rep["accuracy"]
    if "skipped" in a:
        print("Accuracy: " + a["skipped"])
    else:
        hit = (f"reached in {a['rounds_to_target']} rounds, {a['time_to_target']:.1f} s simulated"
               if a["rounds_to_target"] else "not reached")
        print(f"Accuracy: mnist5k, {a['clients']} clients: target 0.9 {hit}; "
              f"final {a['final_accuracy']:.3f} after {a['rounds']} rounds")
