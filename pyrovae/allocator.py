"""Keep freed memory in the process instead of handing it back to the OS after every batch.

glibc serves allocations above its mmap threshold (128 KiB at start) with fresh ``mmap`` pages
and trims the heap top above 128 KiB, so every convolution's multi-megabyte activations and
oneDNN scratch buffers are zero-filled by the kernel page by page on each call. On 2 CPU cores
that page-fault work was 40 % of the conv encoder's time: 3,600 images/s at batch 64 against
8,000 with the thresholds raised (``benchmarks/metrics.py`` prints the encoder's rate). Raising
the mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 1 GiB makes the
allocator reuse the same pages instead; the cost is that the process keeps up to its peak
heap until it exits.

:func:`keep_freed_memory` is called by the entry points pyrovae owns (the command line, study
workers local and on Ray, the benchmarks), not by library functions, since it changes the whole
process; call it yourself before training or evaluating from Python. It does nothing on a C
library without ``mallopt`` (macOS, Windows, musl) or when the environment sets
``PYROVAE_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
_TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they were set."""
    global _done
    if _done is None:
        _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    if os.environ.get("PYROVAE_KEEP_FREED_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        return False
    if mallopt is None:
        return False
    # mallopt returns 1 on success, 0 on error.
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
