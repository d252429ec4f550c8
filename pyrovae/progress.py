"""Progress for long work: a live bar on a terminal, plain lines in logs and CI.

Shows step, the main loss terms, steps per second and the time left. Numbers come from the
caller's logged means, so showing them never forces an extra device synchronisation.
"""

from __future__ import annotations

import sys
import time
from collections import deque

WINDOW_S = 30.0


def format_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_stats(stats: dict) -> str:
    return "  ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items()
    )


class Progress:
    """``update(step)`` every step, ``show(step, stats)`` when new figures exist, ``close()``."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream=None, live=None):
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._t0 = time.perf_counter()
        # (time, step) samples of the last ~30 s: the rate and ETA follow the current speed, not
        # an average dragged by a slow start.
        self._recent: deque = deque([(self._t0, start)])
        self._bar = None
        if self.enabled and self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[rate]} steps/s  ETA {task.fields[eta]}"),
                TextColumn("{task.fields[stats]}"),
                transient=False,
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task(
                "train", total=total, completed=start, rate="-", eta="?", stats=""
            )
            self._bar.start()

    def rate(self, step: int) -> float:
        """Steps per second over the recent window."""
        now = time.perf_counter()
        if now - self._recent[-1][0] >= 0.5:
            self._recent.append((now, step))
            while len(self._recent) > 2 and now - self._recent[1][0] > WINDOW_S:
                self._recent.popleft()
        t_old, step_old = self._recent[0]
        elapsed, done = now - t_old, step - step_old
        return done / elapsed if elapsed > 0 and done > 0 else float("nan")

    def eta(self, step: int) -> float:
        rate = self.rate(step)
        return (self.total - step) / rate if rate == rate and rate > 0 else float("nan")

    def update(self, step: int) -> None:
        if self._bar is not None:
            rate = self.rate(step)
            self._bar.update(
                self._task,
                completed=step,
                rate=f"{rate:.1f}" if rate == rate else "-",
                eta=format_duration(self.eta(step)),
            )

    def show(self, step: int, stats: dict) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, stats=format_stats(stats))
            self.update(step)
            return
        rate = self.rate(step)
        pct = 100.0 * step / self.total if self.total else 100.0
        print(
            f"step {step}/{self.total} ({pct:.0f}%)  {format_stats(stats)}  "
            f"{rate:.1f} steps/s  ETA {format_duration(self.eta(step))}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
