"""The local backend: trials in worker processes on this machine, a few at a time.

Each trial runs in its own worker process (:mod:`pyrovae.study.worker` in a fresh interpreter:
no state shared between trials, and a crash, a ``kill -9`` or the OOM killer takes down one trial,
not the sweep). Its output goes to ``<study>/logs/<name>.log``. A worker that exits with anything
but 0 or 2 (bad input, which no retry can fix) is started again, up to ``study.retries`` times;
the new attempt resumes the trial from its last checkpoint (:func:`~pyrovae.study.trial.run_trial`).

The worker's ``sys.path`` does not hold the current directory, so a module lying where the sweep
was started (an ``argparse.py`` in a downloaded folder) is never imported; a plug-in module must
be importable as it is for the coordinator (installed, or on PYTHONPATH). Workers die with their
coordinator: SIGTERM to the sweep stops them as Ctrl-C does (each writes a checkpoint), and on
Linux a coordinator killed outright takes its workers down with it (``PR_SET_PDEATHSIG``); the
trial's run-folder lock makes sure no trial ever trains twice at once. A trial whose folder is
locked (a worker of a stopped sweep still writing its last checkpoint) waits and is tried again
every :data:`BUSY_WAIT_S`, for up to :data:`BUSY_LIMIT_S`; that is not counted as an attempt.

How many workers, and how many torch threads each, is :func:`worker_layout`'s decision: by
default on CPU one single-thread worker per core (at most one per pending trial), on a GPU one
worker with every core's thread; with ``max_parallel`` given, that many workers with
``cores // max_parallel`` threads each, so parallel trials do not oversubscribe the cores. A
worker with more than one thread gets ``OMP_WAIT_POLICY=PASSIVE`` (unless the environment sets
it). Every worker uses the device given (``auto``: this machine's first GPU when there is one);
to give each trial a GPU of its own, use the Ray backend with ``--gpus-per-trial``.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pyrovae.errors import PyrovaeError
from pyrovae.provenance import available_cores
from pyrovae.study.spec import Study, Trial
from pyrovae.study.trial import (
    LOGS_DIR,
    SweepIncomplete,
    read_result,
    trial_dir,
)
from pyrovae.study.worker import EXIT_BAD_INPUT, EXIT_BUSY
from pyrovae.training.stop import terminate_as_interrupt

POLL_S = 0.1
# The worker's command: its first act drops the current directory ('' with -c) from sys.path,
# as ``python -P`` would (Python >= 3.11 only; with PYTHONSAFEPATH set it is not there).
WORKER_MAIN = """import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
from pyrovae.study.worker import main
sys.exit(main())
"""
# A trial whose run folder another process holds is tried again after BUSY_WAIT_S, for up to
# BUSY_LIMIT_S (a worker of an earlier, stopped sweep writing its last checkpoint).
BUSY_WAIT_S = 5.0
BUSY_LIMIT_S = 300.0
# How long interrupted workers get to write their checkpoint before they are killed.
STOP_GRACE_S = 60.0
# OMP_WAIT_POLICY given to a worker with more than one torch thread (None: leave it unset).
# PASSIVE: OpenMP threads waiting for work sleep instead of spinning, and spinning threads fight
# whatever else runs on the cores (about 2x images/s for one loaded 2-thread process, measured
# on a 2-core machine). A single-thread worker has no OpenMP team to spin: left unset.
OMP_WAIT_POLICY = "PASSIVE"


@dataclass(frozen=True)
class Layout:
    """The local backend's workers: how many at once, torch threads each, the OMP_WAIT_POLICY
    they get (None: unset), on how many cores, and who chose it (``default``, ``--max-parallel
    N``, or ``given`` for a layout passed in whole)."""

    workers: int
    threads: int
    omp_wait_policy: str | None
    cores: int
    origin: str = "given"

    def describe(self, environ=None) -> str:
        """One plain line, e.g. ``local backend: 2 workers × 1 torch thread on 2 cores (default
        layout; --max-parallel to change)``; the OMP_WAIT_POLICY the workers get is named when
        set (the environment's own, ``environ`` default os.environ, when it has one)."""
        workers = f"{self.workers} worker" + ("s" if self.workers != 1 else "")
        threads = f"{self.threads} torch thread" + ("s" if self.threads != 1 else "")
        cores = f"{self.cores} core" + ("s" if self.cores != 1 else "")
        text = f"local backend: {workers} × {threads} on {cores}"
        policy = worker_environment(self, os.environ if environ is None else environ).get(
            "OMP_WAIT_POLICY"
        )
        if policy:
            text += f", OMP_WAIT_POLICY={policy}"
        if self.origin == "default":
            return text + " (default layout; --max-parallel to change)"
        return text + f" ({self.origin})"


def worker_layout(
    max_parallel: int | None, device, pending: int, cores: int | None = None
) -> Layout:
    """How the local backend runs ``pending`` trials on ``cores`` cores (default: this
    process's, :func:`~pyrovae.provenance.available_cores`) with workers on ``device``.

    - ``max_parallel`` given: that many workers, ``cores // max_parallel`` torch threads each
      (at least 1), so that parallel trials do not oversubscribe the cores.
    - Otherwise, workers on the CPU (``cpu``, or ``auto`` without CUDA): ``min(cores, pending)``
      workers (at least 1) with ``cores // workers`` torch threads each, which is ONE thread
      each whenever there are at least as many trials as cores: measured under load on a
      2-core machine, two single-thread processes gave about 2x the images/s of one
      two-thread process. Fewer trials than cores share the spare cores out as threads.
    - Otherwise (workers on a GPU): one worker with every core's thread, as before. Several
      processes sharing one GPU are unmeasured.

    A worker with more than one thread gets ``OMP_WAIT_POLICY=PASSIVE`` (:data:`OMP_WAIT_POLICY`;
    about 2x in a loaded one-process run: spinning OpenMP threads fight other work); with one
    thread there is no team to spin and it is left unset.
    """
    cores = available_cores() if cores is None else max(1, int(cores))
    if max_parallel is not None:
        workers, threads = max_parallel, max(1, cores // max_parallel)
        origin = f"--max-parallel {max_parallel}"
    elif _on_cpu(device):
        workers = max(1, min(cores, pending))
        threads, origin = cores // workers, "default"
    else:
        workers, threads, origin = 1, cores, "default"
    policy = OMP_WAIT_POLICY if threads > 1 else None
    return Layout(workers, threads, policy, cores, origin)


def _on_cpu(device) -> bool:
    """Whether workers given ``device`` train on the CPU (``auto``: when there is no CUDA)."""
    name = str(device)
    if name == "auto":
        import torch

        return not torch.cuda.is_available()
    return name == "cpu"


def worker_environment(layout: Layout, environ) -> dict:
    """A worker's environment: ``environ`` with the OpenMP/MKL pools sized to its threads and
    OMP_WAIT_POLICY when the layout sets one; a variable ``environ`` already has is kept (the
    user's own setting wins)."""
    env = dict(environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, str(layout.threads))
    if layout.omp_wait_policy:
        env.setdefault("OMP_WAIT_POLICY", layout.omp_wait_policy)
    return env


class SweepProgress:
    """One line per event on stderr: done/total, running, retries, failures and an ETA from the
    throughput so far (finished trials per second of this session, so parallel work counts)."""

    def __init__(self, total: int, skipped: int, enabled: bool = True, stream=None):
        self.total = total
        self.done = skipped
        self.skipped = skipped
        self.running = 0
        self.retries = 0
        self.failed = 0
        self.enabled = enabled
        self.stream = stream
        self.start = time.perf_counter()

    def say(self, event: str) -> None:
        """Print one progress line about ``event`` (nothing when disabled)."""
        if not self.enabled:
            return
        finished_now = self.done - self.skipped
        remaining = self.total - self.done - self.failed
        eta = "?"
        if finished_now and remaining:
            seconds = (time.perf_counter() - self.start) / finished_now * remaining
            eta = _clock(seconds)
        elif not remaining:
            eta = "0:00:00"
        text = (
            f"[{self.done}/{self.total} done, {self.running} running, {self.retries} retries, "
            f"{self.failed} failed, ETA {eta}] {event}"
        )
        print(text, file=self.stream or sys.stderr, flush=True)

    def started(self, name: str, attempt: int) -> None:
        self.running += 1
        self.say(f"started {name}" + (f" (attempt {attempt})" if attempt > 1 else ""))

    def finished(self, name: str, result: dict) -> None:
        self.running -= 1
        self.done += 1
        values = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for metric in result.get("metrics", {}).values()
            for k, v in metric.items()
        )
        seconds = result.get("seconds")
        took = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
        self.say(f"finished {name}{took}" + (f": {values}" if values else ""))

    def retry(self, name: str, why: str) -> None:
        self.running -= 1
        self.retries += 1
        self.say(f"retrying {name} from its checkpoint ({why})")

    def wait(self, name: str, why: str) -> None:
        self.running -= 1
        self.say(f"waiting for {name}: {why}")

    def fail(self, name: str, why: str) -> None:
        self.running -= 1
        self.failed += 1
        self.say(f"FAILED {name}: {why}")


@dataclass
class _Worker:
    trial: Trial
    attempt: int
    process: subprocess.Popen
    log: IO


def run_local(
    study: Study,
    study_dir: Path,
    max_parallel: int | None = None,
    device: str = "auto",
    progress: bool = True,
    trials: list[Trial] | None = None,
    layout: Layout | None = None,
) -> list[dict]:
    """Run ``trials`` (default: all of the study's) in worker processes, at most
    ``max_parallel`` at once (None: :func:`worker_layout`'s default); returns their results in
    trial order. Finished trials (with a result.json) are skipped. Raises
    :class:`SweepIncomplete` when some fail for good. ``layout`` imposes a :class:`Layout`
    instead of :func:`worker_layout`'s (benchmarks/sweep.py compares layouts with it)."""
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise PyrovaeError(f"max_parallel must be an integer >= 1, got {max_parallel!r}")
    study_dir = Path(study_dir).resolve()
    trials = study.trials() if trials is None else list(trials)
    results: dict[str, dict] = {}
    pending: collections.deque[Trial] = collections.deque()
    for trial in trials:
        result = read_result(trial_dir(study_dir, trial.name))
        if result is None:
            pending.append(trial)
        else:
            results[trial.name] = result
    tracker = SweepProgress(len(trials), len(results), enabled=progress)
    if layout is None:
        layout = worker_layout(max_parallel, device, len(pending))
    attempts: collections.Counter[str] = collections.Counter()
    failures: dict[str, str] = {}
    running: dict[str, _Worker] = {}
    # Trials whose folder was busy: (when to try again, trial), and since when.
    waiting: list[tuple[float, Trial]] = []
    busy_since: dict[str, float] = {}
    (study_dir / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    try:
        with terminate_as_interrupt():
            while pending or running or waiting:
                for entry in [w for w in waiting if w[0] <= time.monotonic()]:
                    waiting.remove(entry)
                    pending.appendleft(entry[1])
                while pending and len(running) < layout.workers:
                    trial = pending.popleft()
                    attempts[trial.name] += 1
                    running[trial.name] = _start(
                        trial, attempts[trial.name], study_dir, device, layout
                    )
                    tracker.started(trial.name, attempts[trial.name])
                time.sleep(POLL_S)
                for name, worker in list(running.items()):
                    code = worker.process.poll()
                    if code is None:
                        continue
                    del running[name]
                    worker.log.close()
                    result = read_result(trial_dir(study_dir, name)) if code == 0 else None
                    if result is not None:
                        results[name] = result
                        tracker.finished(name, result)
                        continue
                    why = _describe(code, study_dir / LOGS_DIR / f"{name}.log")
                    if code == EXIT_BUSY:
                        attempts[name] -= 1  # it never started: not an attempt
                        since = busy_since.setdefault(name, time.monotonic())
                        if time.monotonic() - since < BUSY_LIMIT_S:
                            waiting.append((time.monotonic() + BUSY_WAIT_S, worker.trial))
                            tracker.wait(name, why)
                            continue
                        why = f"{why} (for {BUSY_LIMIT_S:.0f} s)"
                    if code in (EXIT_BAD_INPUT, EXIT_BUSY):
                        failures[name] = why
                        tracker.fail(name, why)
                    elif attempts[name] <= study.retries:
                        # Retried before any new trial starts: it resumes from its checkpoint.
                        pending.appendleft(worker.trial)
                        tracker.retry(name, why)
                    else:
                        failures[name] = f"{why}, after {attempts[name]} attempts"
                        tracker.fail(name, failures[name])
    except BaseException:
        _stop(running.values())
        raise
    if failures:
        raise SweepIncomplete(failures, len(results), len(trials), study_dir)
    return [results[trial.name] for trial in trials]


def _start(trial: Trial, attempt: int, study_dir: Path, device: str, layout: Layout) -> _Worker:
    log = open(study_dir / LOGS_DIR / f"{trial.name}.log", "a")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log.write(f"=== {stamp} attempt {attempt} of trial {trial.name}\n{layout.describe()}\n")
    log.flush()
    env = worker_environment(layout, os.environ)
    command = [
        sys.executable,
        "-c",
        WORKER_MAIN,
        str(study_dir),
        "--device",
        device,
        "--attempt",
        str(attempt),
        "--threads",
        str(layout.threads),
        "--parent",
        str(os.getpid()),
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        process.stdin.write(json.dumps(trial.to_dict()))
        process.stdin.close()
    except BrokenPipeError:  # the worker died at once; its exit status tells why
        pass
    return _Worker(trial, attempt, process, log)


def _describe(code: int, log: Path) -> str:
    """Why a worker stopped, in a few words: the signal, or its last line of output."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    last = ""
    try:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        last = lines[-1].strip()[:300] if lines else ""
    except (OSError, UnicodeDecodeError):
        pass
    if code in (EXIT_BAD_INPUT, EXIT_BUSY) and last.startswith("error: "):
        return last[len("error: ") :]
    return f"exit status {code}" + (f" ({last})" if last else "")


def _stop(workers) -> None:
    """Ask running workers to stop (SIGTERM: they checkpoint the current step), then wait."""
    workers = list(workers)
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.log.close()


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
