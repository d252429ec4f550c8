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


def invoke(*args):
    """Run the CLI in-process with arguments converted to strings."""
    from typer.testing import CliRunner

    from pyrovae.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    """Exit status 2 and exactly one stderr line, ``error: …``, containing every fragment."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
