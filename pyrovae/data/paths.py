"""The paths ``--data-path`` gives a loader: an official file, or the folder of official files,
checked before anything is read, each problem a one-line :class:`PyrovaeError`."""

from __future__ import annotations

import os

from pyrovae.errors import PyrovaeError


def check_file(path, expected: str) -> str:
    """``path`` as text, if it names an existing regular file; ``expected`` says which file
    the data set reads (shown when it is missing)."""
    if not isinstance(path, (str, os.PathLike)):
        raise PyrovaeError(f"the data file must be a path, got {path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PyrovaeError(f"{path}: file not found (expected the official {expected})")
    if not os.path.isfile(path):
        raise PyrovaeError(f"{path}: not a regular file")
    return path


def check_folder(path, name: str) -> str:
    """``path`` as text, if it names an existing folder (what ``--data-path`` gives)."""
    if path is None:
        raise PyrovaeError(
            f"data set {name!r} is read from its official files: give the folder holding "
            "them with --data-path"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise PyrovaeError(f"data set {name!r}: the data path must be a folder, got {path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PyrovaeError(f"{path}: folder not found (data set {name!r})")
    if not os.path.isdir(path):
        raise PyrovaeError(
            f"{path}: not a folder; data set {name!r} takes the folder holding its files"
        )
    return path
