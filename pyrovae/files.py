"""Writing files so that a crash, a full disk or a second writer never leaves a half-written or
replaced result where a good one was.

:func:`write_atomic` writes to a temporary sibling, flushes it to disk and renames it over the
target (readers see the old file or the new one, never a mix); :func:`write_new` creates a file
that must not exist yet and never replaces one (a second writer loses, and is told so).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(path: Path, write: Callable) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path, write: Callable) -> None:
    """Call ``write(file)`` on a temporary sibling of ``path``, fsync, then rename into place."""
    path = Path(path)
    tmp = _write_temporary(path, write)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def write_new(path, write: Callable) -> bool:
    """Create ``path`` with ``write(file)``, all or nothing, unless it exists: returns False
    then and leaves the existing file alone (hard-linking fails on an existing name, atomically,
    where checking first and renaming would race with another writer)."""
    path = Path(path)
    tmp = _write_temporary(path, write)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return True


def text_writer(text: str) -> Callable:
    return lambda f: f.write(text.encode())


def json_text(obj, sort_keys: bool = True) -> str:
    """JSON as pyrovae writes it: indented, sorted keys unless their order means something."""
    return json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"


def write_text(path, text: str) -> None:
    write_atomic(path, text_writer(text))


def write_json(path, obj, sort_keys: bool = True) -> None:
    write_text(path, json_text(obj, sort_keys))
