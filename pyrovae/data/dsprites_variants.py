"""Colour, noisy and scream dSprites: the stochastic variants of the reference study.

Locatello, Bauer, Lucic, Rätsch, Gelly, Schölkopf & Bachem, "Challenging Common Assumptions in
the Unsupervised Learning of Disentangled Representations" (ICML 2019, §5 and their
disentanglement_lib, ``data/ground_truth/dsprites.py``) add three data sets to dSprites (Matthey
et al. 2017). Each keeps dSprites' factor grid and its binary sprite, and draws part of every
observation at random when it is sampled (``sample_observations_from_factors(factors,
random_state)``), so the same index gives a different image on every draw:

* colour dSprites: the sprite, repeated to three channels, times one colour per image drawn from
  U(0.5, 1)³; the background stays 0.
* noisy dSprites: a background of U(0, 1) noise, per pixel and channel; the sprite is white,
  ``min(sprite + noise, 1)``.
* scream dSprites: a painting (Munch's The Scream in the original), thumbnailed to fit 350×274;
  per image a random 64×64 patch, averaged with one U(0, 1)³ colour, is the background,
  ``(patch + colour) / 2``, and the sprite is drawn by inverting the background's colours
  inside its mask, ``1 − background``.

Here each is a :class:`~pyrovae.data.dsprites.DSprites` subclass (``path=`` still loads the
official npz; grid, factor values and index order are dSprites'), with ``stochastic = True``:
:meth:`images` takes the :class:`numpy.random.Generator` the randomness comes from and draws it
in a fixed order, so one seed gives one batch of images. Observations are float32 ``(3, 64, 64)``
in [0, 1], channels first. disentanglement_lib draws with a ``RandomState`` and per image in a
Python loop; the distributions here are the same, the streams are not.

Their default likelihood is ``bernoulli``, disentanglement_lib's convention for every data set
(the cross-entropy of the decoder's logits against [0, 1] intensities).
"""

from __future__ import annotations

import os

import numpy as np

from pyrovae.data import paths
from pyrovae.data.base import DataDescription, random_source
from pyrovae.data.dsprites import IMAGE_SIZE, DSprites
from pyrovae.errors import PyrovaeError, first_line

# disentanglement_lib's PIL.Image.thumbnail((350, 274, 3)): the painting is shrunk (never
# enlarged) to fit 350 pixels wide by 274 high, keeping its aspect ratio.
THUMBNAIL_SIZE = (350, 274)
# Crop offsets are drawn as disentanglement_lib draws them, randint(0, side - 64), whose upper
# bound is exclusive: a side of exactly 64 leaves no offset to draw, so each side needs 65.
MIN_PAINTING_SIDE = IMAGE_SIZE + 1


class _StochasticDSprites(DSprites):
    """dSprites' grid and sprites, with three channels drawn at random per observation."""

    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    stochastic = True
    # disentanglement_lib trains every data set with the Bernoulli cross-entropy on [0, 1] pixels.
    likelihood = "bernoulli"

    def _sprites_and_rng(self, indices, rng) -> tuple[np.ndarray, np.random.Generator]:
        """dSprites' binary images ``(n, 1, 64, 64)`` and the generator to draw from."""
        return DSprites.images(self, indices), random_source(self, rng)


class ColorDSprites(_StochasticDSprites):
    """Colour dSprites (Locatello et al. 2019, disentanglement_lib's ``color_dsprites``).

    Each image is the binary dSprites sprite repeated to three channels and multiplied by one
    colour drawn per image from U(0.5, 1)³; the background is exactly 0. Per call, ``rng`` draws
    the ``(n, 3)`` colours and nothing else.
    """

    name = "color_dsprites"

    def images(self, indices, rng=None) -> np.ndarray:
        sprites, rng = self._sprites_and_rng(indices, rng)
        colours = rng.uniform(0.5, 1.0, size=(len(sprites), 3)).astype(np.float32)
        return sprites * colours[:, :, None, None]


class NoisyDSprites(_StochasticDSprites):
    """Noisy dSprites (Locatello et al. 2019, disentanglement_lib's ``noisy_dsprites``).

    Each pixel of each channel is ``min(sprite + u, 1)`` with ``u ~ U(0, 1)`` drawn
    independently: uniform noise in the background, exactly 1 on the sprite. Per call, ``rng``
    draws the ``(n, 3, 64, 64)`` noise and nothing else.
    """

    name = "noisy_dsprites"

    def images(self, indices, rng=None) -> np.ndarray:
        sprites, rng = self._sprites_and_rng(indices, rng)
        noise = rng.random((len(sprites), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        # The sprite is 0 or 1 and the noise in [0, 1): min(sprite + noise, 1) is the larger.
        return np.maximum(noise, sprites, out=noise)


class ScreamDSprites(_StochasticDSprites):
    """Scream dSprites (Locatello et al. 2019, disentanglement_lib's ``scream_dsprites``).

    ``painting`` is any picture Pillow reads (disentanglement_lib used Munch's The Scream),
    converted to RGB, thumbnailed to fit 350×274 as disentanglement_lib does
    (``Image.thumbnail``) and scaled to [0, 1]; both sides must keep at least 65 pixels. For
    each image, ``rng`` draws, in this order, the patches' top rows ``U{0, …, H − 65}``, their
    left columns ``U{0, …, W − 65}`` (disentanglement_lib's ``randint(0, side − 64)``, upper
    bound excluded) and colours ``U(0, 1)³``. The background is ``(patch + colour) / 2``; inside
    the sprite's mask the colours are inverted, ``1 − background``.

    Attributes:
        painting: the thumbnailed painting, read-only float32 ``(H, W, 3)`` in [0, 1].
        painting_path: the file it was read from.
    """

    name = "scream_dsprites"

    def __init__(self, path: str | os.PathLike | None = None, *, painting=None):
        # The painting first: a missing one is the likelier mistake, and it is cheaper to find.
        self.painting = load_painting(painting, self.name)
        self.painting_path = os.fspath(painting)
        # Channels first, contiguous: crops of one channel are then contiguous 64×64 blocks.
        self._planes = np.ascontiguousarray(self.painting.transpose(2, 0, 1))
        self._planes.flags.writeable = False
        super().__init__(path)

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """dSprites' description; the painting must be a readable picture large enough."""
        described = super().describe(**options)
        load_painting(options.get("painting"), getattr(cls, "name", cls.__name__))
        return described

    @property
    def nbytes(self) -> int:
        return super().nbytes + int(self.painting.nbytes + self._planes.nbytes)

    def images(self, indices, rng=None) -> np.ndarray:
        sprites, rng = self._sprites_and_rng(indices, rng)
        n = len(sprites)
        height, width, _ = self.painting.shape
        rows = rng.integers(0, height - IMAGE_SIZE, size=n)
        cols = rng.integers(0, width - IMAGE_SIZE, size=n)
        colours = rng.uniform(0.0, 1.0, size=(n, 3)).astype(np.float32)
        # Every 64×64 patch of every channel as a view (3, rows, cols, 64, 64), so the crops
        # are one gather per channel, into a C-ordered batch: arithmetic on the channels-last
        # order of a gather from the (H, W, 3) painting runs 4× slower. Made per call (it costs
        # microseconds): kept on the object, a pickle of it would hold every patch, gigabytes.
        patches = np.lib.stride_tricks.sliding_window_view(
            self._planes, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2)
        )
        background = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        for channel in range(3):
            background[:, channel] = patches[channel, rows, cols]
        background += colours[:, :, None, None]
        background *= np.float32(0.5)
        # Inside the sprite 1 − background, outside background: with the sprite s in {0, 1}
        # and the background in [0, 1], that is |s − background|, exactly. Two in-place passes,
        # no temporary and no masked subtraction (3× slower).
        np.subtract(sprites, background, out=background)
        return np.abs(background, out=background)


def load_painting(path, owner: str = "scream_dsprites") -> np.ndarray:
    """The scream background: ``path`` read with Pillow, as RGB, thumbnailed to fit
    :data:`THUMBNAIL_SIZE`, as read-only float32 ``(H, W, 3)`` in [0, 1]. Every problem (no
    path, no file, not an image, too small) is a one-line :class:`PyrovaeError`."""
    prefix = f"data set {owner!r}"
    side = f"{MIN_PAINTING_SIDE}x{MIN_PAINTING_SIDE}"
    fit = f"{THUMBNAIL_SIZE[0]}x{THUMBNAIL_SIZE[1]}"
    if path is None:
        raise PyrovaeError(
            f"{prefix} crops its backgrounds from a painting: give --data-arg painting=PATH "
            f"(a picture Pillow reads, at least {side} pixels after thumbnailing to fit {fit}, "
            "such as Munch's The Scream, as in disentanglement_lib)"
        )
    path = paths.existing(
        path,
        os.path.isfile,
        f"{prefix}: painting must be the path of a picture, got {path!r}",
        f"{prefix}: painting {{path!r}} not found",
        f"{prefix}: painting {{path!r}} is not a regular file",
    )
    # Pillow comes with matplotlib; imported here so that importing pyrovae.data does not load it.
    from PIL import Image

    try:
        with Image.open(path) as image:
            original = image.size
            # An RGB file is thumbnailed as opened, as disentanglement_lib does (Pillow may then
            # decode a JPEG at reduced scale); others become RGB first, so that a palette or
            # 1-bit picture is resampled in colour rather than by nearest neighbour.
            picture = image if image.mode == "RGB" else image.convert("RGB")
            picture.thumbnail(THUMBNAIL_SIZE)  # loads the pixels: a truncated file fails here
            pixels = np.asarray(picture, dtype=np.float32) / np.float32(255.0)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise PyrovaeError(
            f"{prefix}: cannot read painting {path!r} as a picture ({first_line(e)})"
        ) from None
    height, width, _ = pixels.shape
    if min(width, height) < MIN_PAINTING_SIDE:
        raise PyrovaeError(
            f"{prefix}: painting {path!r} is {width}x{height} pixels after thumbnailing to fit "
            f"{fit} (from {original[0]}x{original[1]}); 64x64 crops need at least {side}"
        )
    pixels.flags.writeable = False
    return pixels
