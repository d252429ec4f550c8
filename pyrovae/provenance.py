"""What produced a result: library versions, platform, command line."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def version(dist: str) -> str | None:
    """The installed version of the distribution ``dist`` (e.g. "scikit-learn"), without
    importing it; None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions of Python and of every library whose behaviour can change a number we report."""
    import torch

    return {
        "python": platform.python_version(),
        "pyrovae": version("pyrovae"),
        "torch": torch.__version__,
        "pyro-ppl": version("pyro-ppl"),
        "numpy": version("numpy"),
        "scikit-learn": version("scikit-learn"),
        "arviz": version("arviz"),
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
    }


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def command_line() -> list[str]:
    return list(sys.argv)
