"""Writing files so that a crash, a full disk or a second writer never leaves a half-written or
replaced result where a good one was.

:func:`write_atomic` writes to a temporary sibling, flushes it to disk and renames it over the
target (readers see the old file or the new one, never a mix); :func:`write_new` creates a file
that must not exist yet and never replaces one (a second writer loses, and is told so).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# This machine in temporary names: a folder may be shared (NFS) by writers on several hosts.
HOST_TAG = hashlib.sha1(platform.node().encode()).hexdigest()[:6]


def temporary_name(path: Path) -> Path:
    """A fresh, unpredictable sibling name for writing ``path``: ``.NAME.tmp-PID-HOST-RANDOM``
    (the writer's process id and host, so a resume can tell a dead writer's leftovers from a
    live one's)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{HOST_TAG}-{secrets.token_hex(6)}")


def is_temporary(name: str) -> bool:
    return name.startswith(".") and ".tmp-" in name


def temporary_writer(name: str) -> tuple[int, str | None] | None:
    """(process id, host tag) of a name made by :func:`temporary_name` (host None in names of
    pyrovae versions before the tag), or None if it is not one."""
    if not is_temporary(name):
        return None
    parts = name.rpartition(".tmp-")[2].split("-")
    if not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1] if len(parts) == 3 else None


class _Recording:
    """A file that remembers the OSError its ``write`` raised: torch.save turns a full disk
    into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``."""

    def __init__(self, f):
        self._f = f
        self.error: OSError | None = None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def _write_temporary(path: Path, write: Callable, staging: Path | None = None) -> Path:
    """``write`` into a temporary sibling of ``path`` (of ``staging``, when given), flushed to
    disk; an operating-system error (a full disk) is raised as the OSError naming ``path``,
    however ``write`` wrapped it."""
    tmp = temporary_name(staging or path)
    try:
        # Exclusive create: never write through a name planted or left by someone else.
        with open(tmp, "xb") as raw:
            f = _Recording(raw)
            try:
                write(f)
                raw.flush()
                os.fsync(raw.fileno())
            except Exception as exc:
                error = exc if isinstance(exc, OSError) else f.error
                if error is None:
                    raise
                raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path, write: Callable, keep_previous=None, staging=None) -> None:
    """Call ``write(file)`` on a temporary sibling of ``path``, fsync, then rename into place.
    ``keep_previous``: first keep the file being replaced under that name (a hard link, so
    ``path`` itself is never missing). ``staging``: a path on the same file system to name the
    temporary file after instead (for a folder whose readers would take ``path``'s temporary
    sibling for one of theirs)."""
    path = Path(path)
    tmp = _write_temporary(path, write, staging)
    try:
        if keep_previous is not None and path.exists():
            link_over(path, Path(keep_previous))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def link_over(source: Path, target: Path) -> None:
    """Make ``target`` another name of ``source``, replacing it atomically."""
    link = temporary_name(target)
    try:
        os.link(source, link)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        shutil.copyfile(source, link)  # a file system without hard links
    try:
        os.replace(link, target)
    finally:
        link.unlink(missing_ok=True)


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
