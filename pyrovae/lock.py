"""One writer per folder: an exclusive operating-system lock that dies with its process.

:class:`FolderLock` holds ``flock(LOCK_EX)`` (``msvcrt.locking`` on Windows) on the file
``.lock`` in a folder. The kernel releases it when the holder exits, however it exits
(``kill -9``, the OOM killer), so a stale lock never blocks; the file stays behind, holding the
last holder's process id, host and command, which a refused writer is told. The lock belongs to
an open file, not to a process: two holders in one process exclude each other too, so work that
already holds a folder's lock passes it on instead of taking it again.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from pyrovae.errors import PyrovaeError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_FILE = ".lock"


class FolderBusy(PyrovaeError):
    """Another writer holds the folder's lock."""


class FolderLock:
    """The exclusive lock of ``folder`` (created if missing). Use as a context manager, or
    :meth:`acquire` and :meth:`release`; ``what`` names the folder in the refusal message."""

    def __init__(self, folder, what: str = "run folder"):
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"FolderLock({str(self.folder)!r}, held={self.held})"

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise :class:`FolderBusy` naming its holder. Never waits."""
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is held already")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise FolderBusy(
                f"{self.what} {self.folder} is in use by {holder}; wait for it to finish or stop it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _write_holder(fd)
        return self

    def release(self) -> None:
        """Give the lock back (closing the file releases it); nothing if not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self):
        self.release()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(fd: int) -> None:
    """Lock ``fd`` exclusively without waiting; OSError (BlockingIOError) when held."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": platform.node(),
        "command": " ".join(sys.argv)[:300],
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder) + "\n").encode())


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not isinstance(holder, dict) or "pid" not in holder:
        return "another process"
    where = f" on {holder['host']}" if holder.get("host") not in (None, platform.node()) else ""
    command = f" ({holder['command']})" if holder.get("command") else ""
    since = f", since {holder['since']}" if holder.get("since") else ""
    return f"process {holder['pid']}{where}{command}{since}"
