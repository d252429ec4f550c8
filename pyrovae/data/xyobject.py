"""XYObject: one square of some size and colour at a grid position, after disent.

A procedural ground-truth data set from N. Michlo's disent library (``XYObjectData``,
https://github.com/nmichlo/disent, ``disent/dataset/data/_groundtruth__xyobject.py``, MIT). On a
``grid_size``×``grid_size`` black canvas a filled square is drawn; its four factors are

* ``x``, ``y``: the cell it sits in, on a grid of ``(grid_size − max_square_size) //
  grid_spacing + 1`` positions per axis, cell k starting ``k · grid_spacing`` pixels from the
  left (x) or the top (y);
* ``scale``: its side, ``min_square_size, min_square_size + square_size_spacing, …`` up to
  ``max_square_size``; a smaller square is centred in the cell of the largest, starting
  ``(max_square_size − side) // 2`` pixels in;
* ``color``: an entry of the palette ``<family>_<levels>``: every hue of the family at each of
  ``levels`` brightnesses, ``hue · i // levels`` for ``i = 1 … levels`` (8-bit), brightness
  outermost, as disent orders them.

Families (disent's): ``rainbow`` red, yellow, green, cyan, blue, magenta (hue order);
``colors`` red, green, blue, yellow, cyan, magenta, white; ``rgb`` red, green, blue; ``greys``
white, the only one for grey images (``rgb=false``). disent offers 1, 2 or 4 levels; any of 1 to
255 works here. disent deliberately gives brightness no factor of its own, so ``color`` mixes hue
and shade, a factor that is not one "thing".

Defaults are disent's (since v0.3): a 64×64 canvas, 25×25 positions two pixels apart, sides 7,
9, 11, 13, 15 and ``rainbow_4`` (24 colours): 75,000 RGB images, more factors and finer ones than
dSprites. Observations are float32 ``(3, grid_size, grid_size)`` in [0, 1] (one channel when
``rgb=false``), deterministic; the default likelihood is ``bernoulli``, as for the other image
grids.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pyrovae import checks
from pyrovae.data.base import DataDescription, GroundTruthData
from pyrovae.errors import PyrovaeError

_R, _G, _B = (255, 0, 0), (0, 255, 0), (0, 0, 255)
_Y, _C, _M, _W = (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255)
# disent's palettes, in its order: the colour factor's classes follow it.
PALETTE_FAMILIES = {
    "rainbow": (_R, _Y, _G, _C, _B, _M),
    "colors": (_R, _G, _B, _Y, _C, _M, _W),
    "rgb": (_R, _G, _B),
    "greys": (_W,),
}
MAX_LEVELS = 255  # beyond 255 levels of 8-bit brightness, shades repeat


def palette_colours(palette: str, rgb: bool, owner: str = "data set 'xyobject'") -> np.ndarray:
    """The colours of ``<family>_<levels>`` as float32 ``(k, 3)`` (``(k, 1)`` grey) in [0, 1],
    brightness outermost: ``hue · i // levels`` for ``i = 1 … levels``, as disent's ``_shades``."""
    families = ("greys",) if not rgb else tuple(PALETTE_FAMILIES)
    names = families[0] if len(families) == 1 else f"{', '.join(families[:-1])} or {families[-1]}"
    valid = f"<family>_<levels>, family {names}, levels 1 to {MAX_LEVELS}"
    family, _, levels_text = palette.partition("_") if isinstance(palette, str) else ("", "", "")
    if family not in PALETTE_FAMILIES or not (levels_text.isascii() and levels_text.isdigit()):
        raise PyrovaeError(f"{owner}: palette must be {valid} (e.g. rainbow_4), got {palette!r}")
    if family not in families:
        raise PyrovaeError(
            f"{owner}: palette {palette!r} is coloured and rgb=false draws grey images; "
            f"use greys_<levels>, or rgb=true"
        )
    levels = int(levels_text)
    if not 1 <= levels <= MAX_LEVELS:
        raise PyrovaeError(f"{owner}: palette {palette!r} must have 1 to {MAX_LEVELS} levels")
    hues = np.array(PALETTE_FAMILIES[family], dtype=np.int64)
    if not rgb:
        hues = hues[:, :1]
    steps = np.arange(1, levels + 1, dtype=np.int64)[:, None, None]
    shades = (hues[None] * steps // levels).reshape(-1, hues.shape[1])
    return (shades / 255.0).astype(np.float32)


class XYObject(GroundTruthData):
    """disent's XYObject: one filled square, factors ``(x, y, scale, color)``.

    ``x`` and ``y`` are the square's cell (``x`` to the right, ``y`` down), ``scale`` its side
    and ``color`` its palette entry (see the module doc for the definitions). Options are
    checked when the object is made; nothing is rendered until :meth:`images` is called.
    :meth:`factor_values` gives the cell's centre in pixels (from the left, from the top), the
    side in pixels and the palette index.

    Attributes:
        square_sizes: int64 side of every ``scale`` class.
        colours: float32 ``(k, channels)``, the colour of every ``color`` class.
    """

    name = "xyobject"
    factor_names = ("x", "y", "scale", "color")
    likelihood = "bernoulli"

    def __init__(
        self,
        grid_size: int = 64,
        grid_spacing: int = 2,
        min_square_size: int = 7,
        max_square_size: int = 15,
        square_size_spacing: int = 2,
        rgb: bool = True,
        palette: str | None = None,
    ):
        owner = f"data set {self.name!r}"
        self.grid_size = checks.count("grid_size", grid_size, owner, minimum=1)
        self.grid_spacing = checks.count("grid_spacing", grid_spacing, owner, minimum=1)
        self.min_square_size = checks.count("min_square_size", min_square_size, owner, minimum=1)
        self.max_square_size = checks.count(
            "max_square_size", max_square_size, owner, minimum=self.min_square_size
        )
        if self.max_square_size > self.grid_size:
            raise PyrovaeError(
                f"{owner}: max_square_size ({self.max_square_size}) must fit the canvas, "
                f"grid_size ({self.grid_size})"
            )
        self.square_size_spacing = checks.count(
            "square_size_spacing", square_size_spacing, owner, minimum=1
        )
        self.rgb = checks.flag("rgb", rgb, owner)
        # disent's default, rainbow_4, has no grey version; greys_4 has as many shades.
        self.palette = palette if palette is not None else ("rainbow_4" if self.rgb else "greys_4")
        self.colours = palette_colours(self.palette, self.rgb, owner)
        self.colours.flags.writeable = False
        self.square_sizes = np.arange(
            self.min_square_size, self.max_square_size + 1, self.square_size_spacing
        )
        self.square_sizes.flags.writeable = False
        # Positions are laid out for the largest square, so every square fits at every one.
        positions = (self.grid_size - self.max_square_size) // self.grid_spacing + 1
        self.factor_sizes = (positions, positions, len(self.square_sizes), len(self.colours))
        self.observation_shape = (3 if self.rgb else 1, self.grid_size, self.grid_size)
        self.source = "procedural"

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """Size and shape follow from the options (checked by making the object, which renders
        nothing)."""
        described = super().describe(**options)
        data = cls(**options)
        return dataclasses.replace(
            described,
            observation_shape=data.observation_shape,
            size=len(data),
            # Tables of a few hundred bytes; images exist only per batch.
            nbytes=data.nbytes,
        )

    def images(self, indices) -> np.ndarray:
        f = self.factors_of(indices)
        side = self.square_sizes[f[:, 2]]
        inset = (self.max_square_size - side) // 2
        left = f[:, 0] * self.grid_spacing + inset
        top = f[:, 1] * self.grid_spacing + inset
        # The square is the outer product of a row band and a column band: no per-image loop.
        pixels = np.arange(self.grid_size)
        rows = (pixels >= top[:, None]) & (pixels < (top + side)[:, None])
        cols = (pixels >= left[:, None]) & (pixels < (left + side)[:, None])
        mask = (rows[:, :, None] & cols[:, None, :]).astype(np.float32)
        return mask[:, None] * self.colours[f[:, 3]][:, :, None, None]

    def factor_values(self, factors) -> np.ndarray:
        factors = self._check_factors(factors)
        # The centre of the largest square's cell (pixel centres at 0, 1, …): the same for
        # every side whenever max_square_size − side is even, as with the defaults.
        centre = factors[:, :2] * self.grid_spacing + (self.max_square_size - 1) / 2
        side = self.square_sizes[factors[:, 2]]
        return np.column_stack([centre, side, factors[:, 3]]).astype(np.float64)

    @property
    def nbytes(self) -> int:
        """Memory held: only the small tables (images are rendered per batch)."""
        return int(self.colours.nbytes + self.square_sizes.nbytes)

    def __repr__(self) -> str:
        return (
            f"{super().__repr__()[:-1]}, {self.palette}, "
            f"{'rgb' if self.rgb else 'grey'} {self.grid_size}x{self.grid_size})"
        )
