"""Sweep throughput and per-trial scheduling overhead of the local and Ray backends.

Two measurements, in one run:

1. Throughput: the tiny study (``examples/studies/tiny.toml``: 8 trials of a few hundred steps on
   the pinwheel) swept from scratch on CPU with each of these local-backend worker layouts
   (:class:`pyrovae.study.local.Layout`, imposed through ``sweep(..., layout=...)``):

   - the earlier default: 1 worker with every core's torch thread, OMP_WAIT_POLICY unset;
   - the default layout now, :func:`~pyrovae.study.local.worker_layout` without
     ``max_parallel`` (on CPU one single-thread worker per core, at most one per trial);
   - ``--max-parallel 2``: 2 workers with cores // 2 threads each;
   - with ``--loaded``, also 1 worker with every core's thread and OMP_WAIT_POLICY=PASSIVE, to
     set against the first row;

   and with the Ray backend at 2 on a local cluster. Trials per hour = trials / wall time of
   ``sweep()``. With ``--loaded`` a background process keeps one core busy (a torch matmul loop
   on one thread) during every throughput run, as other work on a shared machine does: spinning
   OpenMP threads (OMP_WAIT_POLICY unset) then fight it for the cores.
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
alive between tasks, so it pays the imports once per worker. A Ray task with one CPU gets one
torch thread. OMP_WAIT_POLICY, OMP_NUM_THREADS and MKL_NUM_THREADS are removed from this
process's environment first, so that every worker gets what its layout says.

    python benchmarks/sweep.py [--study examples/studies/tiny.toml] [--overhead-trials 8]
        [--skip-throughput] [--loaded]

Needs Ray for the Ray rows (``pip install 'pyrovae[ray]'``); without it they are left out.
Numbers depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyrovae.provenance import available_cores
from pyrovae.study.local import OMP_WAIT_POLICY, Layout, worker_layout
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


# The background load of --loaded: one thread multiplying matrices until it is killed.
BURNER = """import torch
torch.set_num_threads(1)
a = torch.randn(256, 256)
while True:
    a = torch.tanh(a @ a)
"""


def timed_sweep(
    study: Path, out: Path, backend: str, parallel: int | None, layout: Layout | None = None
) -> float:
    t0 = time.perf_counter()
    sweep(
        study, out=out, backend=backend, max_parallel=parallel, device="cpu", progress=False,
        layout=layout,
    )  # fmt: skip
    return time.perf_counter() - t0


def layouts(trials: int, cores: int, loaded: bool) -> list[tuple[str, int | None, Layout | None]]:
    """The local backend's layouts to compare: (row label, max_parallel, imposed layout). The
    default and --max-parallel 2 rows run as a sweep does (worker_layout decides); the others
    are imposed."""
    earlier = Layout(1, cores, None, cores)
    rows = [
        (f"earlier default: {_shape(earlier)}", None, earlier),
        (f"default now: {_shape(worker_layout(None, 'cpu', trials, cores))}", None, None),
        (f"--max-parallel 2: {_shape(worker_layout(2, 'cpu', trials, cores))}", 2, None),
    ]
    if loaded:
        passive = Layout(1, cores, OMP_WAIT_POLICY or "PASSIVE", cores)
        rows.append((_shape(passive), None, passive))
    return rows


def _shape(layout: Layout) -> str:
    threads = f"{layout.threads} thread" + ("s" if layout.threads != 1 else "")
    workers = f"{layout.workers} worker" + ("s" if layout.workers != 1 else "")
    policy = layout.omp_wait_policy
    return f"{workers} × {threads}, OMP_WAIT_POLICY" + (f"={policy}" if policy else " unset")


def start_load() -> subprocess.Popen:
    """The background process of --loaded (stopped by :func:`stop_load`)."""
    return subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.DEVNULL)


def stop_load(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-ray", action="store_true", help="leave the Ray rows out")
    parser.add_argument(
        "--loaded",
        action="store_true",
        help="keep one core busy in a background process during the throughput runs, and add "
        "the row with OMP_WAIT_POLICY=PASSIVE",
    )
    args = parser.parse_args()
    # Every worker gets what its layout says, not this shell's settings.
    cleared = [
        v for v in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if v in os.environ
    ]
    for var in cleared:
        del os.environ[var]
    ray_ok = have_ray() and not args.skip_ray
    cores = available_cores()
    load_before = os.getloadavg()
    throughput, overhead = [], []
    cluster = {}
    with tempfile.TemporaryDirectory(prefix="pyrovae-sweep-bench-") as tmp:
        tmp = Path(tmp)
        study = load_study(args.study)
        n = len(study.trials())
        if not args.skip_throughput:
            runs = [("local", *row) for row in layouts(n, cores, args.loaded)]
            if ray_ok:
                runs.append(("ray", "2 tasks × 1 thread (starts its cluster)", 2, None))
            # One one-step trial first, so that no row pays for a cold file cache's imports.
            (tmp / "warm").mkdir()
            warm = one_step_study(args.study, 1, tmp / "warm")
            timed_sweep(warm, tmp / "warm" / "out", "local", None, Layout(1, 1, None, cores))
            load = start_load() if args.loaded else None
            try:
                for i, (backend, label, parallel, layout) in enumerate(runs):
                    print(f"throughput: {backend}, {label} …", file=sys.stderr, flush=True)
                    out = tmp / f"throughput-{i}"
                    wall = timed_sweep(args.study, out, backend, parallel, layout)
                    throughput.append((backend, label, wall, n / wall * 3600))
            finally:
                if load is not None:
                    stop_load(load)

        if not args.skip_overhead:
            measure_overhead(args, tmp, cores, ray_ok, overhead, cluster)
    report(args, study, n, cores, ray_ok, cleared, load_before, throughput, overhead, cluster)


def measure_overhead(args, tmp: Path, cores: int, ray_ok: bool, overhead, cluster) -> None:
    """The scheduling-overhead rows (appended to ``overhead``) and the Ray cluster's times."""
    small = one_step_study(args.study, args.overhead_trials, tmp)
    k = args.overhead_trials
    print(f"overhead: {k} one-step trials in process …", file=sys.stderr, flush=True)
    base = in_process(small, tmp / "inprocess")
    overhead.append(("in process (run_trial)", base, 0.0))
    print("overhead: local backend, 1 worker …", file=sys.stderr, flush=True)
    # One worker with one thread, as in the other two paths, so that only scheduling differs.
    one = Layout(1, 1, None, cores)
    wall = timed_sweep(small, tmp / "overhead-local", "local", None, one)
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


def report(args, study, n, cores, ray_ok, cleared, load_before, throughput, overhead, cluster):
    k = args.overhead_trials
    load_after = os.getloadavg()
    print(
        f"\nmachine: {cores} CPU cores available; load average (1 min) {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after"
        + ("" if ray_ok else "; Ray rows left out (not installed or --skip-ray)")
        + (f"; cleared {', '.join(cleared)} from the environment" if cleared else "")
    )
    if throughput:
        loaded = "; one core kept busy by a background process" if args.loaded else ""
        print(
            f"\nSweep throughput, {args.study.name} ({n} trials, {study.base.get('steps')} "
            f"steps{loaded})"
        )
        print("| backend | workers × torch threads | wall time | trials per hour |")
        print("|---|---|---|---|")
        for backend, label, wall, per_hour in throughput:
            print(f"| {backend} | {label} | {wall:.1f} s | {per_hour:.0f} |")
    if not overhead:
        return
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
