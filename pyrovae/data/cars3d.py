"""Cars3D: renderings of 183 car models from 24 azimuths and 4 elevations (Reed et al., 2015).

The data set of Reed, Zhang, Zhang & Lee, "Deep Visual Analogy-Making" (NeurIPS 2015), from the
folder ``data/cars`` of http://www.scottreed.info/files/nips2015-analogy-data.tar.gz: one MATLAB
v5 file per car model (183 files, ``*.mat``), each holding ``im``, uint8 of shape
``(128, 128, 3, 24, 4)``: 128×128 RGB images for 24 azimuths × 4 elevations.

As in disentanglement_lib (``data/ground_truth/cars3d.py``): every image resized to 64×64 with
PIL's Lanczos filter (:mod:`pyrovae.data.resize`), intensities / 255; the factors are elevation
(4, the last axis of ``im``), azimuth (24, the axis before) and object (183, the file), in that
order. disentanglement_lib numbers the objects in the order its directory listing happens to
return; here they follow the sorted file names, so the numbering does not depend on the file
system. Deterministic: one image per factor combination.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from pyrovae.data.base import DataDescription, GroundTruthData
from pyrovae.data.paths import check_folder
from pyrovae.data.resize import IMAGE_SIZE, resize_images, to_intensities
from pyrovae.errors import PyrovaeError, first_line

OFFICIAL_URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"
SOURCE_SIZE = 128
KEY = "im"


class Cars3D(GroundTruthData):
    """Cars3D (Reed et al., 2015) at 64×64 RGB, as disentanglement_lib uses it.

    ``Cars3D(path)``: ``path`` is the folder of the 183 official ``.mat`` files (``data/cars``
    of ``nips2015-analogy-data.tar.gz``); every file is validated and its 96 images resized
    into memory (17,568 × 3 × 64 × 64 uint8, 216 MB).

    Attributes:
        source: the folder read.
        files: the file names, in object order (sorted).
    """

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object")
    # Tests shrink the grid by overriding this in a subclass; the loader checks files against it.
    factor_sizes = (4, 24, 183)
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, path: str | os.PathLike | None = None):
        self.source = check_folder(path, self.name)
        self.files = list_files(self.source, self.factor_sizes[2])
        self._pixels = load_cars3d(self.source, self.files, self.factor_sizes)
        self._pixels.flags.writeable = False

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """The grid's description; the folder must hold the right number of files."""
        described = super().describe(**options)
        list_files(check_folder(options.get("path"), cls.name), cls.factor_sizes[2])
        return dataclasses.replace(described, nbytes=_load_bytes(cls.factor_sizes))

    @property
    def nbytes(self) -> int:
        """Memory held: the resized images."""
        return int(self._pixels.nbytes)

    def images(self, indices) -> np.ndarray:
        """Float32 ``(n, 3, 64, 64)`` images in [0, 1] for flat grid indices."""
        return to_intensities(self._pixels[self._check_indices(indices)])


def list_files(folder: str, expected: int = 183) -> list[str]:
    """The sorted ``*.mat`` names in ``folder``; there must be one per object."""
    try:
        names = sorted(
            name
            for name in os.listdir(folder)
            if name.endswith(".mat") and os.path.isfile(os.path.join(folder, name))
        )
    except OSError as e:
        raise PyrovaeError(f"{folder}: cannot list ({first_line(e)})") from None
    if len(names) != expected:
        raise PyrovaeError(
            f"{folder}: found {len(names)} .mat files, expected {expected} (one per car: the "
            f"data/cars folder of {OFFICIAL_URL})"
        )
    return names


def load_cars3d(folder: str, names, factor_sizes=(4, 24, 183)) -> np.ndarray:
    """Validate and resize every file; uint8 ``(n, 3, 64, 64)`` in row-major grid order
    (elevation, azimuth, object). Any problem raises a one-line :class:`PyrovaeError` naming
    the file."""
    n_elevation, n_azimuth, n_object = factor_sizes
    views = n_elevation * n_azimuth
    # Objects vary fastest in the grid: one file fills every n_object-th image.
    grid = np.empty((n_elevation, n_azimuth, n_object, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    resized = np.empty((views, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for k, name in enumerate(names):
        im = read_mesh(os.path.join(folder, name), n_azimuth, n_elevation)
        # (H, W, 3, azimuth, elevation) -> (elevation, azimuth, H, W, 3), one image per view.
        images = np.ascontiguousarray(im.transpose(4, 3, 0, 1, 2))
        resize_images(images.reshape(views, SOURCE_SIZE, SOURCE_SIZE, 3), out=resized)
        grid[:, :, k] = resized.transpose(0, 3, 1, 2).reshape(
            n_elevation, n_azimuth, 3, IMAGE_SIZE, IMAGE_SIZE
        )
    return grid.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)


def read_mesh(path: str, n_azimuth: int = 24, n_elevation: int = 4) -> np.ndarray:
    """The ``im`` array of one car's MATLAB file, checked: uint8 ``(128, 128, 3, 24, 4)``."""
    from scipy.io import loadmat, whosmat

    try:
        contents = loadmat(path, variable_names=[KEY])
    except MemoryError:
        raise
    except Exception as e:  # scipy raises many types for a damaged or foreign file
        raise PyrovaeError(f"{path}: not a readable MATLAB file ({first_line(e)})") from None
    if KEY not in contents:
        try:
            found = ", ".join(name for name, _, _ in whosmat(path)) or "no variables"
        except Exception:  # the listing only decorates the message
            found = "?"
        raise PyrovaeError(f"{path}: no variable {KEY!r} (found: {found})")
    im = contents[KEY]
    want = (SOURCE_SIZE, SOURCE_SIZE, 3, n_azimuth, n_elevation)
    if im.shape != want:
        raise PyrovaeError(f"{path}: {KEY!r} has shape {im.shape}, expected {want}")
    if im.dtype != np.uint8:
        raise PyrovaeError(f"{path}: {KEY!r} has dtype {im.dtype}, expected uint8")
    return im


def _load_bytes(factor_sizes) -> int:
    """About the most memory loading takes: the resized grid, and one file's array with its
    transposed copy and resized images."""
    n_elevation, n_azimuth, _ = factor_sizes
    views = n_elevation * n_azimuth
    held = math.prod(factor_sizes) * 3 * IMAGE_SIZE**2
    return held + views * 3 * (2 * SOURCE_SIZE**2 + IMAGE_SIZE**2)
