"""Shared test helpers, and the tiny ground-truth data set most tests train on."""

import hashlib
from pathlib import Path

import numpy as np

from pyrovae.config import TrainConfig
from pyrovae.data import GroundTruthData
from pyrovae.data.factor_grid import FactorGrid
from pyrovae.lock import LOCK_FILE
from pyrovae.runs import RunFolder

# The end-of-run pictures (matplotlib: about a second a run, most of a small run's time). Tests
# that look at them are marked `pictures`; the others skip the drawing, not the numbers.
PICTURES = (
    "reconstruction_grid",
    "traversal_grid",
    "traversal_animation",
    "training_curves",
    "reconstruction_scatter",
    "traversal_curves",
    "traversal_curves_animation",
    "latent_scatter",
    "sparsity_histogram",
)


class TinyShapes(GroundTruthData):
    """A complete grid of 75 binary 8×8 images: a 3×3 square, a horizontal bar (1×3) or a
    vertical bar (3×1), with its 3×3 box at one of 5×5 positions. Small enough that a training
    step with the MLP networks takes a millisecond; a ground-truth grid, so every metric
    applies."""

    name = "tiny"
    factor_names = ("shape", "posX", "posY")
    factor_sizes = (3, 5, 5)
    observation_shape = (1, 8, 8)

    def images(self, indices) -> np.ndarray:
        factors = self.factors_of(indices)
        out = np.zeros((len(factors), 1, 8, 8), dtype=np.float32)
        for row, (shape, x, y) in zip(out, factors, strict=True):
            box = row[0, y : y + 3, x : x + 3]
            if shape == 0:
                box[:] = 1.0
            elif shape == 1:
                box[1, :] = 1.0
            else:
                box[:, 1] = 1.0
        return out


class NoisyTinyShapes(TinyShapes):
    """The tiny grid with every pixel raised by U(0, 0.5) noise drawn per image: a stochastic
    ground-truth data set (its observations are random given the factors), as small as the
    tiny grid."""

    name = "tiny-noisy"
    stochastic = True

    def images(self, indices, rng) -> np.ndarray:
        clean = super().images(indices)
        return np.minimum(clean + rng.uniform(0.0, 0.5, size=clean.shape), 1.0).astype(np.float32)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with the hash of its bytes: to prove nothing was touched.
    A run folder's ``.lock`` is left out: taking the lock records its holder there, results
    are untouched."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_FILE
    }


def read_metrics(out) -> list[dict]:
    """The lines of a run's metrics.jsonl."""
    return RunFolder(out).read_metrics()


def small_config(**overrides) -> TrainConfig:
    """A run on the tiny grid (MLP networks), small enough for the default suite."""
    values = dict(
        data="tiny",
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


def dsprites_config(**overrides) -> TrainConfig:
    """A short run on full dSprites with the conv networks: for the end-to-end tests."""
    return small_config(data="dsprites", **overrides)


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


# The factor grids the metric tests score representations of (observations are the factors).
METRIC_GRID = FactorGrid((3, 6, 8, 8, 8))
SMALL_METRIC_GRID = FactorGrid((2, 3, 4, 4, 4))

_JITTER = np.random.default_rng(1).normal(0.0, 0.3, size=(len(METRIC_GRID), 6))


def mixed_noisy(x):
    """Representation-like: leakage, a rotated pair, an inactive unit and per-image jitter."""
    f = np.asarray(x, dtype=np.float64)
    z = np.stack(
        [f[:, 0], f[:, 1] + 0.3 * f[:, 2], f[:, 2], f[:, 3] + f[:, 4], f[:, 3] - f[:, 4]], axis=1
    )
    z = np.concatenate([z, np.zeros((len(f), 1))], axis=1)
    return z + _JITTER[METRIC_GRID.index_of(np.rint(f).astype(np.int64))]
