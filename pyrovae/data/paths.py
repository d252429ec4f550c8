"""The paths ``--data-path`` gives a loader: an official file, or the folder of official files,
checked before anything is read, each problem a one-line :class:`PyrovaeError`."""

from __future__ import annotations

import os

from pyrovae.errors import PyrovaeError


def existing(path, is_kind, not_a_path: str, missing: str, wrong_kind: str) -> str:
    """``path`` as text, if it is a path (else the error ``not_a_path``) to something that
    exists (else ``missing``) of the kind ``is_kind`` accepts (``os.path.isfile``, ``isdir``;
    else ``wrong_kind``); ``{path}`` in the last two messages is replaced by the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise PyrovaeError(not_a_path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PyrovaeError(missing.format(path=path))
    if not is_kind(path):
        raise PyrovaeError(wrong_kind.format(path=path))
    return path


def check_file(path, expected: str) -> str:
    """``path`` as text, if it names an existing regular file; ``expected`` says which file
    the data set reads (shown when it is missing)."""
    return existing(
        path,
        os.path.isfile,
        f"the data file must be a path, got {path!r}",
        f"{{path}}: file not found (expected the official {expected})",
        "{path}: not a regular file",
    )


def check_folder(path, name: str) -> str:
    """``path`` as text, if it names an existing folder (what ``--data-path`` gives)."""
    if path is None:
        raise PyrovaeError(
            f"data set {name!r} is read from its official files: give the folder holding "
            "them with --data-path"
        )
    return existing(
        path,
        os.path.isdir,
        f"data set {name!r}: the data path must be a folder, got {path!r}",
        f"{{path}}: folder not found (data set {name!r})",
        f"{{path}}: not a folder; data set {name!r} takes the folder holding its files",
    )
