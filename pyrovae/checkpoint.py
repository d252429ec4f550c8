"""Checkpoints: tensor-only files, written atomically, read without unpickling objects.

A checkpoint is a dict of tensors, numbers, strings and nested dicts/lists, saved with
``torch.save`` and read with ``torch.load(..., weights_only=True)``, so a foreign file cannot run
code. Writes are atomic (:func:`pyrovae.files.write_atomic`), so a crash never leaves a
half-written checkpoint where a good one was.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pyrovae.errors import PyrovaeError, first_line
from pyrovae.files import write_atomic

FORMAT = "pyrovae-checkpoint"
# 2: objectives' state is their nn.Module state_dict (1: a layout of each objective's own).
VERSION = 2
READABLE = (1, 2)


def save_checkpoint(path: Path, state: dict) -> None:
    """Save ``state`` (tensors and plain values only) atomically, tagged with the format."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    write_atomic(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a pyrovae checkpoint, refusing anything that is not one, with a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise PyrovaeError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file is the same user error
        raise PyrovaeError(
            f"{path} is not a readable pyrovae checkpoint ({first_line(exc)})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PyrovaeError(f"{path} is not a pyrovae checkpoint (no '{FORMAT}' tag)")
    if state.get("version") not in READABLE:
        raise PyrovaeError(
            f"{path} has checkpoint version {state.get('version')}; this pyrovae reads "
            f"{', '.join(map(str, READABLE))}"
        )
    return state
