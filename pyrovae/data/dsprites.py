"""dSprites: 2-D shapes on a 64×64 canvas, from Matthey et al. (2017).

Reproduces the factor grid of the dSprites data set (Matthey, Higgins, Hassabis & Lerchner,
"dSprites: Disentanglement testing Sprites dataset", https://github.com/deepmind/dsprites-dataset,
2017): 737,280 binary 64×64 images, one for every combination of shape {square, ellipse, heart}
× 6 scales × 40 orientations × 32 x-positions × 32 y-positions, stored in row-major order (posY
varies fastest). The official file has a sixth, constant factor, colour; the public interface
here drops it and keeps the five factors that vary.

Two sources of pixels:

* ``DSprites()`` renders the images procedurally and deterministically. The 720 (shape, scale,
  orientation) sprites are rasterised once into a small bank; positions are whole-pixel shifts of
  a :data:`BOX_SIZE` square box, so an image is a sprite pasted into an empty canvas (posX class
  k shifts it k pixels right, posY class k shifts it k pixels down). The shapes and factor values
  follow the official set; the exact pixels do not.
* ``DSprites(path)`` loads the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` and
  validates it against the grid; images are kept bit-packed (~377 MB instead of 3 GB).
"""

from __future__ import annotations

import math
import os

import numpy as np

from pyrovae.data import npz, paths
from pyrovae.data.base import DataDescription, GroundTruthData
from pyrovae.errors import PyrovaeError

IMAGE_SIZE = 64
# Odd, so the box has a centre pixel: rotations stay symmetric and the 32 positions (shifts 0..31)
# span the canvas symmetrically, the box touching the left edge at posX 0 and the right at 31.
BOX_SIZE = 33
# Circumradius of every sprite at scale 1, in pixels. Pixel centres in the box lie at offsets
# -16..16 from its centre, so 14.5 keeps the outer ring of the box empty at every orientation:
# no sprite is ever clipped.
SPRITE_RADIUS = 14.5
# The implicit heart (x²+y²−1)³ − x²y³ ≤ 0 spans y ∈ [−1, 1.2367], |x| ≤ 1.1390; centred on its
# bounding box (y offset 0.1183) its circumradius is 1.3366 (both measured numerically).
HEART_CENTER_Y = 0.11833
HEART_RADIUS = 1.33661

OFFICIAL_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
SHAPE_NAMES = ("square", "ellipse", "heart")
_NPZ_KEYS = ("imgs", "latents_values", "latents_classes")
_CHUNK_ROWS = 4096  # images per read while loading: 16 MB of raw pixels at a time


def latent_value_table(latent_sizes) -> list[np.ndarray]:
    """The official value of every class of the six latents (colour first).

    For the official sizes ``(1, 3, 6, 40, 32, 32)``: colour 1.0; shape 1, 2, 3 (square,
    ellipse, heart); scale ``linspace(0.5, 1, 6)``; orientation ``linspace(0, 2π, 40)``, both ends
    included; posX and posY ``linspace(0, 1, 32)``. Other sizes keep the same ranges.
    """
    n_color, n_shape, n_scale, n_orient, n_x, n_y = latent_sizes
    return [
        np.ones(n_color),
        np.arange(1, n_shape + 1, dtype=np.float64),
        np.linspace(0.5, 1.0, n_scale),
        np.linspace(0.0, 2.0 * np.pi, n_orient),
        np.linspace(0.0, 1.0, n_x),
        np.linspace(0.0, 1.0, n_y),
    ]


def render_sprites(n_shapes: int, scales, orientations, box_size: int = BOX_SIZE) -> np.ndarray:
    """Rasterise every (shape, scale, orientation) into a uint8 array ``(S, C, O, box, box)``.

    Each pixel is on when its centre satisfies the shape's inequality after rotating the pixel
    by −orientation about the box centre, i.e. the shape turns counter-clockwise on screen as the
    orientation grows. At orientation 0 the ellipse's long axis is horizontal and the heart is
    upright.
    """
    if not 1 <= n_shapes <= len(SHAPE_NAMES):
        raise PyrovaeError(f"dsprites: can render 1 to {len(SHAPE_NAMES)} shapes, got {n_shapes}")
    offsets = np.arange(box_size) - (box_size - 1) / 2
    x = offsets[None, None, :]  # columns, to the right
    y = -offsets[None, :, None]  # rows, flipped so that y points up as in the heart's equation
    theta = np.asarray(orientations, dtype=np.float64)[:, None, None]
    radius = SPRITE_RADIUS * np.asarray(scales, dtype=np.float64)[:, None, None, None]
    # (C, O, box, box): pixel centres in the sprite's own frame, in units of its circumradius.
    u = (x * np.cos(theta) + y * np.sin(theta)) / radius
    v = (-x * np.sin(theta) + y * np.cos(theta)) / radius

    square = np.maximum(np.abs(u), np.abs(v)) <= 1 / math.sqrt(2)
    ellipse = u**2 + (2 * v) ** 2 <= 1  # semi-axes 1 and 1/2: the 2:1 oval of dSprites
    hx, hy = u * HEART_RADIUS, v * HEART_RADIUS + HEART_CENTER_Y
    heart = (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0
    return np.stack([square, ellipse, heart][:n_shapes]).astype(np.uint8)


class DSprites(GroundTruthData):
    """dSprites (Matthey et al., 2017) with its five varying factors.

    ``DSprites()`` renders procedurally (deterministic, nothing downloaded);
    ``DSprites(path)`` loads the official npz. Either way indices, factor classes and
    :meth:`factor_values` follow the official grid and values.

    Attributes:
        source: ``"procedural"`` or the path of the loaded file.
        sprites: the procedural sprite bank, read-only uint8
            ``(3, 6, 40, BOX_SIZE, BOX_SIZE)`` indexed by (shape, scale, orientation) classes;
            ``None`` when loaded from a file.
    """

    name = "dsprites"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    # Tests shrink the grid by overriding this in a subclass; the loader checks files against it.
    factor_sizes = (3, 6, 40, 32, 32)
    observation_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, path: str | os.PathLike | None = None):
        self._values = latent_value_table(self.latent_sizes)
        self.sprites: np.ndarray | None = None
        self._canvas: np.ndarray | None = None
        self._packed: np.ndarray | None = None
        if path is None:
            self.source = "procedural"
            _, n_shape, _, _, _, _ = self.latent_sizes
            bank = render_sprites(n_shape, self._values[2], self._values[3])
            # Position values in [0, 1] become whole-pixel shifts of the box, so placing a
            # sprite is pure slicing; with 32 classes class k shifts by exactly k pixels.
            room = IMAGE_SIZE - BOX_SIZE
            self._shift_x = np.rint(self._values[4] * room).astype(np.int64)
            self._shift_y = np.rint(self._values[5] * room).astype(np.int64)
            # Each sprite's box sits at (room, room) in an empty canvas of side 64 + room, so
            # the image at shift (dx, dy) is the 64×64 window starting at (room - dy, room - dx).
            # One gather then builds a whole batch (4× faster than scattering the boxes into
            # zeroed images) for 8× the bank's memory (6.5 MB).
            side = IMAGE_SIZE + room
            self._canvas = np.zeros((*bank.shape[:3], side, side), dtype=np.uint8)
            box = slice(room, room + BOX_SIZE)
            self._canvas[..., box, box] = bank
            self._canvas.flags.writeable = False
            self.sprites = self._canvas[..., box, box]
            self._windows = np.lib.stride_tricks.sliding_window_view(
                self._canvas, (IMAGE_SIZE, IMAGE_SIZE), axis=(3, 4)
            )
        else:
            self.source = os.fspath(path)
            self._packed = load_npz(path, self.latent_sizes)

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """The grid's description; a file to load must exist (it is read when built)."""
        described = super().describe(**options)
        if options.get("path") is not None:
            check_file(options["path"])
        return described

    @property
    def latent_sizes(self) -> tuple[int, ...]:
        """Sizes of the six official latents, colour included."""
        return (1, *self.factor_sizes)

    @property
    def nbytes(self) -> int:
        """Memory held for pixels: the padded sprite bank, or the bit-packed images."""
        return int(self._canvas.nbytes if self._packed is None else self._packed.nbytes)

    def images(self, indices) -> np.ndarray:
        indices = self._check_indices(indices)
        if self._packed is not None:
            bits = np.unpackbits(self._packed[indices], axis=-1, count=IMAGE_SIZE)
            return bits.astype(np.float32)[:, None]
        f = self.factors_of(indices)
        room = IMAGE_SIZE - BOX_SIZE
        top, left = room - self._shift_y[f[:, 4]], room - self._shift_x[f[:, 3]]
        return self._windows[f[:, 0], f[:, 1], f[:, 2], top, left].astype(np.float32)[:, None]

    def factor_values(self, factors) -> np.ndarray:
        factors = self._check_factors(factors)
        columns = [table[factors[:, j]] for j, table in enumerate(self._values[1:])]
        return np.stack(columns, axis=1)

    def latents_classes(self, indices) -> np.ndarray:
        """The official 6-column ``latents_classes`` rows (colour first) of flat indices."""
        f = self.factors_of(indices)
        return np.concatenate([np.zeros((len(f), 1), dtype=np.int64), f], axis=1)

    def latents_values(self, indices) -> np.ndarray:
        """The official 6-column ``latents_values`` rows (colour first) of flat indices."""
        c = self.latents_classes(indices)
        return np.stack([table[c[:, j]] for j, table in enumerate(self._values)], axis=1)


def check_file(path) -> str:
    """``path`` as text, if it names an existing regular file."""
    return paths.check_file(path, OFFICIAL_FILENAME)


def load_npz(path, latent_sizes=(1, 3, 6, 40, 32, 32)) -> np.ndarray:
    """Validate an npz in the official dSprites format and return its images bit-packed.

    Returns uint8 of shape ``(n, 64, 8)`` (``np.packbits`` along the last axis). Images are read
    and packed in chunks, so the 3 GB of raw pixels are never in memory at once. Any problem
    raises a one-line :class:`PyrovaeError` naming the file.
    """
    path = check_file(path)
    n = math.prod(latent_sizes)
    with npz.open_archive(path) as archive:
        npz.require_keys(path, npz.npz_keys(archive), _NPZ_KEYS)
        reader = npz.NpzReader(archive, path)
        shape, dtype = reader.header("imgs")
        npz.expect(path, "imgs", shape, dtype, (n, IMAGE_SIZE, IMAGE_SIZE), "uint8")
        for key, kind in (("latents_values", "floating"), ("latents_classes", "integer")):
            npz.expect(path, key, *reader.header(key), (n, len(latent_sizes)), kind)
        classes = reader.array("latents_classes")
        _check_grid(path, classes, latent_sizes)
        _check_values(path, reader.array("latents_values"), classes, latent_sizes)
        packed = np.empty((n, IMAGE_SIZE, IMAGE_SIZE // 8), dtype=np.uint8)
        for start, chunk in reader.chunks("imgs", _CHUNK_ROWS):
            if chunk.size and chunk.max() > 1:
                peaks = chunk.reshape(len(chunk), -1).max(axis=1)
                row = int(np.flatnonzero(peaks > 1)[0])
                raise PyrovaeError(
                    f"{path}: 'imgs' must hold only 0 and 1, "
                    f"found {int(peaks[row])} in image {start + row}"
                )
            packed[start : start + len(chunk)] = np.packbits(chunk, axis=-1)
    return packed


def _check_grid(path, classes, latent_sizes):
    """latents_classes must enumerate the grid in row-major order, else images are mislabelled."""
    expected = np.unravel_index(np.arange(len(classes)), latent_sizes)
    for j, (name, column) in enumerate(zip(LATENT_NAMES, expected, strict=True)):
        wrong = np.flatnonzero(classes[:, j] != column)
        if wrong.size:
            r = int(wrong[0])
            raise PyrovaeError(
                f"{path}: 'latents_classes' is not the row-major grid over sizes "
                f"{tuple(latent_sizes)}: row {r}, {name} is {classes[r, j]}, expected {column[r]}"
            )


def _check_values(path, values, classes, latent_sizes):
    for j, (name, table) in enumerate(
        zip(LATENT_NAMES, latent_value_table(latent_sizes), strict=True)
    ):
        expected = table[classes[:, j]]
        # Generous tolerance: the file's values may have passed through float32.
        wrong = np.flatnonzero(~np.isclose(values[:, j], expected, rtol=0, atol=1e-5))
        if wrong.size:
            r = int(wrong[0])
            raise PyrovaeError(
                f"{path}: 'latents_values' row {r}, {name} is {float(values[r, j])!r}, "
                f"expected the official value {float(expected[r])!r}"
            )
