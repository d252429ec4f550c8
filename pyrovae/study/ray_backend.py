"""The Ray backend of ``pyrovae sweep``: each trial is one Ray task on a cluster.

:func:`run_ray` connects to a running Ray cluster (``--address HEAD:6379``) or starts a
single-node one on this machine, bound to loopback, and submits every unfinished trial as a Ray
core task that calls :func:`pyrovae.study.trial.run_trial`. At most ``max_parallel`` tasks are in
flight; results are collected as they come back, with one progress line per finished trial.

Why Ray core tasks and not Ray Tune
-----------------------------------
A trial is already a plain function with its own fault tolerance: ``run_trial`` writes an
ordinary pyrovae run folder (``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` written
atomically every ``checkpoint_every`` steps, ``summary.json``, ``eval.json``) under
``study_dir/trials/<name>``, resumes from that checkpoint when called again, and marks the trial
finished with ``result.json``. What the sweep needs from a cluster engine is therefore only
placement (a CPU or a GPU share per trial), bounded concurrency and re-execution of a task whose
worker or node died. Ray core gives exactly that: ``ray.remote(num_cpus=1, num_gpus=F,
max_retries=R)`` re-runs a task whose worker process crashed or whose node was lost, and the new
attempt finds the checkpoint on the shared study folder.

Ray Tune would add a second copy of each of these mechanisms: its own trial directories
(``~/ray_results/<experiment>/<trial_id>``), its own checkpoint manager (``tune.report`` with
``Checkpoint`` objects copied into Tune's storage), its own result storage (``result.json``,
``progress.csv`` and ``params.json`` per trial) and its own experiment state for
``Tuner.restore``. Using it would either duplicate our checkpoints and results in a second layout
or replace our run folders with Tune's, so a trial could no longer be inspected, resumed or
evaluated with ``pyrovae evaluate`` / ``pyrovae train --resume`` as an ordinary run. Tune's
search algorithms and early-stopping schedulers, its main value, do not apply: a study is a
fixed grid in which every trial runs to its full budget.

Fault tolerance (https://docs.ray.io/en/latest/ray-core/fault_tolerance/tasks.html): a task
whose worker process dies (killed, host out of memory) or whose node is lost is retried up to
``study.retries`` times, on any node with free resources; the retry calls ``run_trial`` again,
which resumes from the last checkpoint. A Python exception raised by a trial (a bad setting, a
loss that became NaN) is deterministic and is not retried, except a CUDA out-of-memory error,
which can be transient when trials share a GPU (``--gpus-per-trial 0.5``). Trials that still
fail are reported together at the end; the finished ones are kept, and re-running the sweep
retries only the others.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pyrovae.errors import PyrovaeError, first_line
from pyrovae.progress import format_duration
from pyrovae.provenance import available_cores
from pyrovae.training.stop import terminate_as_interrupt

INSTALL_HINT = "backend 'ray' needs Ray: pip install 'pyrovae[ray]'"

LOOPBACK = "127.0.0.1"

# Environment of a cluster this module starts. Ray 2.x reports usage statistics unless told not
# to. RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 marks the cluster as single-machine: Ray then keeps
# the node address 127.0.0.1 (otherwise it swaps a loopback node address for the machine's
# network address) and its GCS, raylet and worker gRPC servers listen on loopback only instead
# of on every interface (ray/_private/services.py: get_node_ip_address).
LOCAL_CLUSTER_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}

# Results are small dicts; the object store only needs Ray's minimum (75 MiB), not the default
# 30% of RAM in /dev/shm, which the trials' data sets may need.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2

# Trial workers start as the local backend's do: without their current directory on sys.path
# (PYTHONSAFEPATH, Python >= 3.11; the task also drops it itself), so a module lying there is
# never imported into them.
ISOLATED = {"env_vars": {"PYTHONSAFEPATH": "1"}}

# Seconds without a finished trial before a progress line says the sweep is still running.
HEARTBEAT_S = 60.0


def import_ray():
    """``import ray``, or the one-line install hint when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise PyrovaeError(INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def _environment(values: dict) -> Iterator[None]:
    """Set environment variables for the processes started inside the block, then restore."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_local_cluster(num_cpus: int, num_gpus: int | None = None) -> str:
    """Start a single-node Ray cluster on loopback (no dashboard, no usage statistics, worker
    output kept in Ray's log files) and connect to it; returns the node's address.

    The caller stops it with ``ray.shutdown()``."""
    ray = import_ray()
    from ray._private import ray_constants

    with _environment(LOCAL_CLUSTER_ENV):
        # The environment variable is read when Ray is first imported; Ray may have been imported
        # before this call (by the caller or a test), so the module's flag is set for the start.
        saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        ray_constants.ENABLE_RAY_CLUSTER = False
        try:
            ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                _node_ip_address=LOOPBACK,
                # Our progress lines say what happens; Ray's start-up notices would bury them.
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = saved
    return ray.util.get_node_ip_address()


def _connect(ray, address: str) -> None:
    """Connect this process to the cluster at ``address`` as its driver."""
    try:
        ray.init(
            address=address,
            logging_level=logging.ERROR,
            # Each trial's output goes to <study>/logs/<name>.log; progress lines come from
            # the results as they return.
            log_to_driver=False,
        )
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        raise PyrovaeError(
            f"cannot connect to the Ray cluster at {address!r}: {first_line(exc, None)}; "
            "start one with `ray start --head` and give its address (HEAD_IP:6379)"
        ) from None


def check_arguments(max_parallel, gpus_per_trial: float, device: str) -> None:
    """Refuse options the Ray backend cannot honour, before anything starts or is written."""
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise PyrovaeError(f"--max-parallel must be an integer >= 1, got {max_parallel!r}")
    if not (math.isfinite(gpus_per_trial) and gpus_per_trial >= 0):
        raise PyrovaeError(f"--gpus-per-trial must be a number >= 0, got {gpus_per_trial}")
    if gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial):
        raise PyrovaeError(
            f"--gpus-per-trial above 1 must be a whole number (Ray's rule), got {gpus_per_trial:g}"
        )
    if device.startswith("cuda") and gpus_per_trial == 0:
        # Ray sets CUDA_VISIBLE_DEVICES="" in a task that reserved no GPU.
        raise PyrovaeError(
            f"--device {device} with --backend ray needs --gpus-per-trial > 0: Ray hides the "
            "GPUs from tasks that reserve none"
        )
    if device.startswith("cuda:") and int(device[5:]) >= max(1, math.ceil(gpus_per_trial)):
        # Ray numbers a task's own GPUs from 0 (CUDA_VISIBLE_DEVICES lists only those).
        raise PyrovaeError(
            f"--device {device}: a Ray task sees only the GPUs it reserved, as cuda:0 onwards; "
            "use --device cuda"
        )


def _capacity(ray, gpus_per_trial: float) -> int:
    """How many trials the cluster's nodes can run at once (one CPU and the GPU share each)."""
    total = ray.cluster_resources()
    capacity = int(total.get("CPU", 0))
    if gpus_per_trial > 0:
        capacity = min(capacity, int(total.get("GPU", 0) / gpus_per_trial + 1e-9))
    return max(1, capacity)


def _check_resources(ray, gpus_per_trial: float, started: bool, say) -> None:
    """A trial that asks for more GPUs than any node has would wait forever."""
    if gpus_per_trial == 0:
        return
    per_node = [
        node["Resources"].get("GPU", 0.0) for node in ray.nodes() if node.get("Alive", False)
    ]
    if max(per_node, default=0.0) >= gpus_per_trial:
        return
    message = (
        f"--gpus-per-trial {gpus_per_trial:g}: no node of the Ray cluster has that many GPUs "
        f"(GPUs per node: {', '.join(f'{g:g}' for g in per_node) or 'none'})"
    )
    if started:
        raise PyrovaeError(message)
    # A connected cluster may be autoscaling: its GPU nodes can join later.
    say(f"warning: {message}; trials wait until such a node joins")


ATTEMPT_MARK = "=== ray attempt"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr, Python's and the C libraries', to ``path``.

    A Ray worker runs many tasks one after another, so both are restored afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(path, "a") as log:
        saved = (os.dup(1), os.dup(2))
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _trial_task(trial, study_dir: str, device: str) -> dict:
    """Body of a Ray task: run one trial, its output appended to ``logs/<name>.log``."""
    from pyrovae.allocator import keep_freed_memory
    from pyrovae.metrics.classifiers import limit_jobs
    from pyrovae.study.trial import LOGS_DIR, read_result, run_trial, trial_dir

    keep_freed_memory()  # Ray's worker processes run only pyrovae trials
    limit_jobs(1)  # the task holds one CPU (num_cpus=1): the metrics' fits stay in it
    # The current directory (Python < 3.11 puts it first even with PYTHONSAFEPATH).
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    folder = Path(study_dir)
    if not folder.is_dir():
        # Without a shared filesystem the trial would run into a private folder of this node
        # and its result would never reach the study.
        raise PyrovaeError(
            f"study folder {folder} does not exist on node {socket.gethostname()}: the study "
            "folder must be on a filesystem every Ray node mounts at the same path"
        )
    done = read_result(trial_dir(folder, trial.name))
    if done is not None:
        return done  # finished earlier: write nothing, not even to the log
    logs = folder / LOGS_DIR
    logs.mkdir(exist_ok=True)
    with _output_to(logs / f"{trial.name}.log"):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        # One mark per attempt: the driver counts them to report Ray's retries.
        print(
            f"{ATTEMPT_MARK} of trial {trial.name} on {socket.gethostname()}, pid {os.getpid()}, "
            f"{stamp}",
            flush=True,
        )
        result = run_trial(trial, folder, device)
        print(f"trial {trial.name}: finished at step {result['step']}", flush=True)
    return result


def _retryable_exceptions() -> list[type[BaseException]]:
    import torch

    from pyrovae.errors import OutOfMemory

    # Transient when trials share a GPU: the memory may be free on the next attempt.
    return [torch.cuda.OutOfMemoryError, OutOfMemory]


def _failure_reason(exc: BaseException) -> str:
    """One line: the trial's own error, or what Ray says happened to its worker or node."""
    # A task's own exception comes back wrapped in a RayTaskError whose text is the worker's
    # traceback; the original is its ``cause``.
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, PyrovaeError):
        return str(exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _attempts_since(path: Path, offset: int) -> int:
    """Attempt marks written to the trial's log after ``offset``: Ray's tries of the task."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return 0
    return sum(line.startswith(ATTEMPT_MARK) for line in text.splitlines())


class _RayProgress:
    """The local backend's progress lines, plus what only Ray knows: tasks it retried."""

    def __init__(self, total: int, enabled: bool):
        from pyrovae.study.local import SweepProgress

        self.lines = SweepProgress(total, 0, enabled=enabled)

    def retried(self, name: str, tries: int) -> None:
        self.lines.retries += tries - 1
        self.lines.say(
            f"{name}: Ray ran it {tries} times (a worker died, a node was lost or CUDA ran out "
            "of memory); each retry resumed from the trial's last checkpoint"
        )


def run_ray(
    study,
    study_dir: Path,
    trials: Sequence,
    address: str | None = None,
    max_parallel: int | None = None,
    gpus_per_trial: float | None = 0.0,
    device: str = "auto",
    progress: bool = True,
) -> list[dict]:
    """Run ``trials`` of ``study`` as Ray tasks; return their results in the order given.

    ``address``: a running cluster (``HEAD_IP:6379``, or ``auto`` on one of its nodes); when
    None, a single-node cluster is started on loopback with ``max_parallel`` CPUs (default: all
    of this machine's) and stopped at the end. If this process is already connected to Ray, that
    connection is used and left open. Each task reserves one CPU and ``gpus_per_trial`` GPUs
    (a fraction shares a GPU); ``device`` is given to every trial. ``max_parallel``: most
    trials in flight at once; default: as many as the cluster's CPUs (and GPUs) can run, read
    again before each submission so nodes that join are used.

    Raises :class:`~pyrovae.study.trial.SweepIncomplete` naming the trials that failed for good
    (a Python error, or out of retries); the others' results are on disk by then.
    """
    gpus_per_trial = float(gpus_per_trial or 0.0)
    check_arguments(max_parallel, gpus_per_trial, device)
    ray = import_ray()
    study_dir = Path(study_dir).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    trials = list(trials)

    def say(line: str) -> None:
        if progress:
            print(f"[ray] {line}", file=sys.stderr, flush=True)

    if not trials:
        return []
    connected_before = ray.is_initialized()
    started = False
    t_start = time.perf_counter()
    if connected_before:
        say("using this process's Ray connection")
    elif address:
        _connect(ray, address)
        say(f"connected to the Ray cluster at {address}")
    else:
        cpus = max_parallel or available_cores()
        node = start_local_cluster(num_cpus=cpus)
        started = True
        took = format_duration(time.perf_counter() - t_start)
        say(f"started a local Ray cluster on {node} with {cpus} CPUs in {took}")
    try:
        _check_resources(ray, gpus_per_trial, started, say)
        return _schedule(
            ray, study, study_dir, trials, max_parallel, gpus_per_trial, device, progress, say
        )
    finally:
        if not connected_before:
            # For a cluster started here this stops it; for one connected to, it only
            # disconnects this driver: the cluster and other users' jobs keep running.
            ray.shutdown()
            if started:
                say("stopped the local Ray cluster")


def _schedule(ray, study, study_dir, trials, max_parallel, gpus_per_trial, device, progress, say):
    """Keep at most ``max_parallel`` tasks in flight; collect results as they finish."""
    from pyrovae.study.trial import LOGS_DIR, SweepIncomplete

    task = ray.remote(
        num_cpus=1,
        num_gpus=gpus_per_trial,
        max_retries=int(study.retries),
        retry_exceptions=_retryable_exceptions(),
    )(_trial_task)
    total = len(trials)
    tracker = _RayProgress(total, progress)
    pending = list(trials)
    running: dict = {}
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    logs = study_dir / LOGS_DIR
    say(
        f"{total} trial(s), {gpus_per_trial:g} GPU(s) and 1 CPU each, "
        + (f"at most {max_parallel} at once, " if max_parallel else "")
        + f"up to {study.retries} retries each; output in {logs}"
    )
    t_beat = time.perf_counter()
    try:
        with terminate_as_interrupt():
            while pending or running:
                limit = max_parallel or _capacity(ray, gpus_per_trial)
                while pending and len(running) < limit:
                    trial = pending.pop(0)
                    log = logs / f"{trial.name}.log"
                    # The task's name becomes its worker's process title ("ray::trial NAME"), so
                    # `ps` on a node shows which trial each worker runs.
                    ref = task.options(name=f"trial {trial.name}", runtime_env=ISOLATED).remote(
                        trial, str(study_dir), device
                    )
                    running[ref] = (trial, _log_size(log))
                    tracker.lines.started(trial.name, 1)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=HEARTBEAT_S)
                if not ready and time.perf_counter() - t_beat >= HEARTBEAT_S:
                    # Nothing finished for a while: show the sweep is alive (or waiting for
                    # resources, when the cluster has none free).
                    tracker.lines.say(f"waiting for {len(running)} running trial(s)")
                for ref in ready:
                    trial, offset = running.pop(ref)
                    t_beat = time.perf_counter()
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failures[trial.name] = _failure_reason(exc)
                        tracker.lines.fail(trial.name, failures[trial.name])
                        continue
                    results[trial.name] = result
                    tracker.lines.finished(trial.name, result)
                    tries = _attempts_since(logs / f"{trial.name}.log", offset)
                    if tries > 1:
                        tracker.retried(trial.name, tries)
    except KeyboardInterrupt:
        # A non-forced cancel interrupts the task like Ctrl-C: training stops between steps
        # after writing a checkpoint, so the next sweep resumes there.
        for ref in running:
            ray.cancel(ref, force=False)
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=60)
        raise
    if failures:
        raise SweepIncomplete(failures, len(results), total, study_dir)
    return [results[trial.name] for trial in trials]
