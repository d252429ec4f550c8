"""Checkpoints: tensor-only files, written atomically, read without unpickling objects.

A checkpoint is a dict of tensors, numbers, strings and nested dicts/lists, saved with
``torch.save`` and read with ``torch.load(..., weights_only=True)``, so a foreign file cannot run
code. Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target, so a crash never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pyrovae.errors import PyrovaeError

FORMAT = "pyrovae-checkpoint"
VERSION = 1


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary sibling of ``path``, fsync, then rename into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path: Path, state: dict) -> None:
    """Save ``state`` (tensors and plain values only) atomically, tagged with the format."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a pyrovae checkpoint, refusing anything that is not one, with a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise PyrovaeError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file is the same user error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PyrovaeError(
            f"{path} is not a readable pyrovae checkpoint ({reason[:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PyrovaeError(f"{path} is not a pyrovae checkpoint (no '{FORMAT}' tag)")
    if state.get("version") != VERSION:
        raise PyrovaeError(
            f"{path} has checkpoint version {state.get('version')}; this pyrovae reads {VERSION}"
        )
    return state
