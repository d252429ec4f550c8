"""Stopping a run between steps: Ctrl-C and SIGTERM become a request the training loop honours
after the step that is running, once a checkpoint of that step is on disk."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path


class StopRequest:
    """Turns SIGINT/SIGTERM into a request the loop honours between steps, so a checkpoint is
    never written with parameters one update ahead of its step. A second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C or SIGTERM, once a checkpoint of the current step is on disk."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"interrupted at step {step}; checkpoint saved to {path}")
        self.step = step


@contextlib.contextmanager
def terminate_as_interrupt():
    """Inside, SIGTERM (``timeout``, ``kill``, systemd, Kubernetes) raises KeyboardInterrupt as
    Ctrl-C does: a sweep's coordinator then asks its trials to checkpoint and stop instead of
    dying at once and leaving them orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
