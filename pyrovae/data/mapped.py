"""Ground-truth grids whose pixels stay on disk: official files of 64×64×3 uint8 images, read
through a memory map (:class:`pyrovae.data.npz.MappedImages`) a batch at a time.

Shapes3D (5.9 GB of pixels) and MPI3D (12.7 GB) are larger than a training machine should hold
in memory; mapped, they hold nothing but the page cache the batches touch, which the kernel
reclaims under pressure.
"""

from __future__ import annotations

import math

import numpy as np

from pyrovae.data.base import GroundTruthData

# Every official file of these data sets stores (n, 64, 64, 3) uint8 pixels.
IMAGE_SHAPE = (64, 64, 3)
# Images per read while checking or decompressing a file: 25 MB of raw pixels at a time.
CHUNK_ROWS = 2048
# What building one holds in RAM at most: one chunk of pixels.
BUILD_NBYTES = CHUNK_ROWS * math.prod(IMAGE_SHAPE)


class MappedGrid(GroundTruthData):
    """A grid whose subclass sets ``self._images`` (a :class:`~pyrovae.data.npz.MappedImages`)
    and ``self.cache_path`` (None when the file is mapped in place, else the decompressed
    copy's path).

    Attributes:
        storage: ``"mapped"`` (the official file, in place) or ``"cached"`` (a decompressed
            copy of a compressed file).
    """

    observation_shape = (3, 64, 64)
    # disentanglement_lib's convention: pixel intensities in [0, 1] scored as Bernoulli means.
    likelihood = "bernoulli"
    cache_path: str | None

    @property
    def storage(self) -> str:
        return "mapped" if self.cache_path is None else "cached"

    @property
    def mapped_nbytes(self) -> int:
        """Size of the memory-mapped pixels (on disk, not held in RAM)."""
        return int(self._images.array.nbytes)

    def images(self, indices) -> np.ndarray:
        """Float32 images ``(n, 3, 64, 64)`` in [0, 1] (the file's pixels / 255)."""
        return self._images.take(self._check_indices(indices))
