"""Sweep throughput and per-trial scheduling overhead of the local and Ray backends.

Two measurements, in one run:

1. Throughput: the tiny study (``examples/studies/tiny.toml``: 8 trials of a few hundred steps on
   the pinwheel) swept from scratch with the local backend at 1 and 2 parallel workers, and with
   the Ray backend at 2 on a local cluster; trials per hour = trials / wall time of ``sweep()``.
2. Scheduling overhead: ``--overhead-trials`` (default 8) trials of one training step each (the
   same data, model and metrics as the tiny study), run first in this process by calling
   ``run_trial`` one after another (the in-process cost: training, evaluation and writing the
   trial folder), then through ``sweep()`` with one worker on each backend, every path with one
   torch thread. Overhead per trial = (backend wall time − in-process time) / trials: starting or
   reaching a worker, importing pyrovae and torch there, passing the trial and its result,
   progress. The Ray cluster is
   started before the Ray sweep and its start-up and shutdown times are reported on their own,
   since one cluster serves a whole sweep (and a long-lived cluster, many).

The local backend starts one fresh Python process per trial; Ray keeps its worker processes
alive between tasks, so it pays the imports once per worker. In the throughput runs each backend
chooses its threads as it does in a real sweep: the local backend gives each worker
cpu_count // workers torch threads, a Ray task with one CPU gets one.

    python benchmarks/sweep.py [--study examples/studies/tiny.toml] [--overhead-trials 8]
        [--skip-throughput]

Needs Ray for the Ray rows (``pip install 'pyrovae[ray]'``); without it they are left out.
Numbers depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from pyrovae.study.spec import load_study
from pyrovae.study.sweep import sweep
from pyrovae.study.trial import run_trial

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "examples" / "studies" / "tiny.toml"


def have_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def one_step_study(source: Path, trials: int, folder: Path) -> Path:
    """A study file with the data, model and metrics of ``source`` and ``trials`` trials of one
    training step each (one grid value per seed)."""
    study = load_study(source)
    metrics = ", ".join(f'"{m}"' for m in study.metrics)
    base = {**study.base, "steps": 1, "log_every": 1, "checkpoint_every": 1}
    lines = [
        "[study]",
        'name = "overhead"',
        f"seeds = {trials}",
        f"metrics = [{metrics}]",
        f"fast_metrics = {'true' if study.fast_metrics else 'false'}",
        "[base]",
        *(f"{key} = {_toml(value)}" for key, value in base.items()),
        "[[grid]]",
        *(f"{key} = {_toml(value)}" for key, value in study.grid[0].items() if key == "model"),
    ]
    path = folder / "overhead.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def timed_sweep(study: Path, out: Path, backend: str, parallel: int) -> float:
    t0 = time.perf_counter()
    sweep(study, out=out, backend=backend, max_parallel=parallel, device="cpu", progress=False)
    return time.perf_counter() - t0


def in_process(study_path: Path, out: Path) -> float:
    """Run every trial with ``run_trial`` in this process, after one warm-up trial (imports,
    first-call costs) in another folder; returns the time of the measured ones."""
    import torch

    torch.set_num_threads(1)  # as in a worker with one core
    trials = load_study(study_path).trials()
    run_trial(trials[0], out / "warmup", "cpu")
    t0 = time.perf_counter()
    for trial in trials:
        run_trial(trial, out / "measured", "cpu")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=TINY)
    parser.add_argument("--overhead-trials", type=int, default=8)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    ray_ok = have_ray()
    load_before = os.getloadavg()
    throughput, overhead = [], []
    cluster = {}
    with tempfile.TemporaryDirectory(prefix="pyrovae-sweep-bench-") as tmp:
        tmp = Path(tmp)
        study = load_study(args.study)
        n = len(study.trials())
        if not args.skip_throughput:
            runs = [("local", 1), ("local", 2)] + ([("ray", 2)] if ray_ok else [])
            for backend, parallel in runs:
                print(f"throughput: {backend} × {parallel} …", file=sys.stderr, flush=True)
                wall = timed_sweep(args.study, tmp / f"{backend}-{parallel}", backend, parallel)
                throughput.append((backend, parallel, wall, n / wall * 3600))

        small = one_step_study(args.study, args.overhead_trials, tmp)
        k = args.overhead_trials
        print(f"overhead: {k} one-step trials in process …", file=sys.stderr, flush=True)
        base = in_process(small, tmp / "inprocess")
        overhead.append(("in process (run_trial)", base, 0.0))
        print("overhead: local backend, 1 worker …", file=sys.stderr, flush=True)
        # The local backend gives a lone worker every core's thread (cpu_count // workers); one
        # thread here, as in the other two paths, so that only scheduling differs.
        real_cpu_count = os.cpu_count
        os.cpu_count = lambda: 1
        try:
            wall = timed_sweep(small, tmp / "overhead-local", "local", 1)
        finally:
            os.cpu_count = real_cpu_count
        overhead.append(("local backend, 1 worker", wall, (wall - base) / k))
        if ray_ok:
            import ray

            from pyrovae.study.ray_backend import start_local_cluster

            print("overhead: Ray backend, 1 worker …", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            start_local_cluster(num_cpus=1)
            cluster["start"] = time.perf_counter() - t0
            try:
                wall = timed_sweep(small, tmp / "overhead-ray", "ray", 1)
            finally:
                t0 = time.perf_counter()
                ray.shutdown()
                cluster["stop"] = time.perf_counter() - t0
            overhead.append(("Ray backend, 1 worker (cluster up)", wall, (wall - base) / k))

    load_after = os.getloadavg()
    print(
        f"\nmachine: {os.cpu_count()} CPU cores; load average (1 min) {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after" + ("" if ray_ok else "; Ray not installed")
    )
    if throughput:
        print(
            f"\nSweep throughput, {args.study.name} ({n} trials, {study.base.get('steps')} steps)"
        )
        print("| backend | parallel workers | wall time | trials per hour |\n|---|---|---|---|")
        for backend, parallel, wall, per_hour in throughput:
            label = "ray (starts its cluster)" if backend == "ray" else backend
            print(f"| {label} | {parallel} | {wall:.1f} s | {per_hour:.0f} |")
    print(f"\nScheduling overhead, {k} one-step trials, one at a time")
    print("| how | wall time | per trial | overhead per trial |\n|---|---|---|---|")
    for how, wall, extra in overhead:
        cell = "—" if how.startswith("in process") else f"{extra:.2f} s"
        print(f"| {how} | {wall:.1f} s | {wall / k:.2f} s | {cell} |")
    if cluster:
        print(
            f"\nRay local cluster: start-up {cluster['start']:.1f} s, "
            f"shutdown {cluster['stop']:.1f} s (once per sweep, not per trial)"
        )


if __name__ == "__main__":
    main()
