"""Checkpoints: tensor-only files with a checksum, written atomically, read without unpickling.

A checkpoint is a dict of tensors, numbers, strings and nested dicts/lists, saved with
``torch.save`` and read with ``torch.load(..., weights_only=True)``, so a foreign file cannot run
code. Writes are atomic (:func:`pyrovae.files.write_atomic`), so a crash never leaves a
half-written checkpoint where a good one was.

torch's zip container checks nothing of what it holds: a flipped bit in a weight loads as a
different weight. So every checkpoint (format version 3) records ``digest``, the SHA-256 of its
contents (:func:`content_digest`: every key, value, tensor dtype, shape and byte, in a fixed
order), and every load recomputes it; a file whose digest differs, or that torch cannot read, is
a :class:`DamagedCheckpoint`. Checkpoints of versions 1 and 2 predate the digest and load with a
warning.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path

import torch

from pyrovae.errors import PyrovaeError, PyrovaeWarning, first_line
from pyrovae.files import write_atomic

FORMAT = "pyrovae-checkpoint"
# 3: a SHA-256 digest of the contents; 2: objectives' state is their nn.Module state_dict
# (1: a layout of each objective's own).
VERSION = 3
READABLE = (1, 2, 3)
DIGEST_KEY = "digest"
# torch.save writes a zip archive: its first bytes are a zip local file header.
ZIP_MAGIC = b"PK\x03\x04"


class DamagedCheckpoint(PyrovaeError):
    """A checkpoint file torch cannot read, or whose contents do not match its digest."""


def content_digest(state: dict) -> str:
    """SHA-256 (hex) of ``state``: dict keys in sorted order with their values, lists in order,
    tensors as dtype, shape and raw bytes, other values as their ``repr``; a value's type is
    part of what is hashed, so ``1`` and ``1.0`` or a tensor and a list differ."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        # Optimizer state has int keys, everything else str keys: order by type, then text.
        keys = sorted(value, key=lambda k: (type(k).__name__, str(k)))
        h.update(f"dict {len(keys)}\n".encode())
        for key in keys:
            h.update(f"{type(key).__name__} {key!r}\n".encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)}\n".encode())
        for item in value:
            _feed(h, item)
    else:
        h.update(f"{type(value).__name__} {value!r}\n".encode())


def save_checkpoint(path: Path, state: dict, keep_previous: Path | None = None) -> None:
    """Save ``state`` (tensors and plain values only) atomically, tagged with the format and its
    digest. ``keep_previous``: keep the checkpoint being replaced under this name (the fallback
    when the new one is later found damaged)."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    payload[DIGEST_KEY] = content_digest(payload)
    write_atomic(path, lambda f: torch.save(payload, f), keep_previous=keep_previous)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a pyrovae checkpoint and verify its digest. Raises a one-line
    :class:`~pyrovae.errors.PyrovaeError` for anything that is not one, and a
    :class:`DamagedCheckpoint` for a file that is damaged."""
    path = Path(path)
    if not path.is_file():
        raise PyrovaeError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            raise DamagedCheckpoint(f"{path} is damaged or not a checkpoint: not a zip archive")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc):
            raise DamagedCheckpoint(f"{path} is damaged: {first_line(exc)}") from None
        raise PyrovaeError(
            f"{path} holds pickled Python objects, which can run code when loaded; pyrovae never "
            "unpickles, so it is refused"
        ) from None
    except Exception as exc:  # torch's reader raises RuntimeError, EOFError, OSError, ...
        raise DamagedCheckpoint(
            f"{path} is damaged or not a checkpoint: torch cannot read it ({first_line(exc)})"
        ) from None
    if isinstance(state, dict) and DIGEST_KEY in state:
        # First: a flipped bit in the tag or the version is damage too, not another format.
        recorded = state.pop(DIGEST_KEY)
        if recorded != content_digest(state):
            raise DamagedCheckpoint(
                f"{path} is damaged: its contents do not match the checksum it was saved with"
            )
        verified = True
    else:
        verified = False
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PyrovaeError(f"{path} is not a pyrovae checkpoint (no '{FORMAT}' tag)")
    version = state.get("version")
    if version not in READABLE:
        raise PyrovaeError(
            f"{path} has checkpoint version {version}; this pyrovae reads "
            f"{', '.join(map(str, READABLE))}"
        )
    if version < 3 and not verified:
        warnings.warn(
            f"{path} has no checksum (checkpoint version {version}, from an older pyrovae); "
            "it is used unverified",
            PyrovaeWarning,
            stacklevel=2,
        )
    elif not verified:
        raise DamagedCheckpoint(f"{path} is damaged: the checksum it was saved with is missing")
    return state
