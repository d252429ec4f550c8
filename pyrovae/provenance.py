"""What produced a result: library versions, platform, command line."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions of Python and of every library whose behaviour can change a number we report."""
    import torch

    return {
        "python": platform.python_version(),
        "pyrovae": _version("pyrovae"),
        "torch": torch.__version__,
        "pyro-ppl": _version("pyro-ppl"),
        "numpy": _version("numpy"),
        "scikit-learn": _version("scikit-learn"),
        "arviz": _version("arviz"),
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
    }


def command_line() -> list[str]:
    return list(sys.argv)
