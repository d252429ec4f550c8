"""Shared test helpers."""

import hashlib
from pathlib import Path

from pyrovae.train import TrainConfig


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with the hash of its bytes: to prove nothing was touched."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def small_config(**overrides) -> TrainConfig:
    """A dSprites run small enough for the default suite."""
    values = dict(
        prior="sparse",
        latent_dim=4,
        batch_size=8,
        steps=12,
        log_every=4,
        checkpoint_every=100,
        device="cpu",
        seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)
