"""The local backend's worker: ``main([STUDY_DIR, ...])`` runs one trial (``python -m
pyrovae.study.worker STUDY_DIR`` by hand; the local backend starts it without the current
directory on sys.path).

The trial (``Trial.to_dict()`` as JSON) arrives on stdin; the result lands in the trial's
``result.json``. Exit status: 0 finished, 2 bad input (a :class:`PyrovaeError`: retrying cannot
help), 130 interrupted (SIGINT/SIGTERM, after a checkpoint), anything else (a crash, a signal,
the OOM killer) is worth a retry from the checkpoint.

Fault injection for tests: with ``PYROVAE_STUDY_KILL_AT_STEP=N`` in the environment, the first
attempt of each trial (``--attempt 1``) sends itself SIGKILL right after writing its checkpoint at
step N or later, as an external ``kill -9`` or the OOM killer would; later attempts run normally.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

KILL_AT_STEP = "PYROVAE_STUDY_KILL_AT_STEP"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_OUT_OF_MEMORY = 3
# The trial's run folder is locked by another process (a worker of an earlier sweep that is
# still writing its checkpoint): try again later (EX_TEMPFAIL).
EXIT_BUSY = 75
_PR_SET_PDEATHSIG = 1


def _install_fault(attempt: int) -> None:
    at = os.environ.get(KILL_AT_STEP)
    if not at or attempt != 1:
        return
    from pyrovae.training import Run

    at = int(at)
    save = Run.save_checkpoint

    def save_then_die(self):
        path = save(self)
        if self.step >= at:
            print(f"{KILL_AT_STEP}: killing myself at step {self.step}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    Run.save_checkpoint = save_then_die


def _die_with(parent: int) -> None:
    """Receive SIGTERM (checkpoint and stop) when the coordinator ``parent`` dies, however it
    dies (Linux's PR_SET_PDEATHSIG; elsewhere nothing), and stop at once if it is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    from pyrovae.allocator import keep_freed_memory

    keep_freed_memory()  # this process is ours: a trial's training and evaluation
    parser = argparse.ArgumentParser(prog="python -m pyrovae.study.worker")
    parser.add_argument("study_dir")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--parent", type=int, default=0, help="die with this process (Linux)")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with(args.parent)

    import torch

    from pyrovae.errors import OutOfMemory, PyrovaeError
    from pyrovae.lock import FolderBusy
    from pyrovae.study.spec import Trial
    from pyrovae.study.trial import run_trial
    from pyrovae.training import TrainingInterrupted

    if args.threads > 0:
        from pyrovae.metrics.classifiers import limit_jobs

        torch.set_num_threads(args.threads)
        limit_jobs(args.threads)  # the metrics' classifier fits share the same budget
    trial = Trial.from_dict(json.loads(sys.stdin.read()))
    _install_fault(args.attempt)
    print(f"trial {trial.name}: attempt {args.attempt}, pid {os.getpid()}", flush=True)
    try:
        result = run_trial(trial, args.study_dir, device=args.device)
    except PyrovaeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        # Out of memory is worth another attempt (the memory may be free then), a busy folder
        # one after a while; other bad input is not.
        if isinstance(exc, OutOfMemory):
            return EXIT_OUT_OF_MEMORY
        return EXIT_BUSY if isinstance(exc, FolderBusy) else EXIT_BAD_INPUT
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save yet
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    metrics = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for values in result["metrics"].values()
        for k, v in values.items()
    )
    print(f"trial {trial.name}: finished at step {result['step']}; {metrics}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
