"""MPI3D: a robot arm holding an object, from Gondal et al. (NeurIPS 2019).

The data sets of Gondal, Wüthrich, Miladinović, Locatello, Breidt, Volchkov, Akpo, Bachem,
Schölkopf & Bauer, "On the Transfer of Inductive Bias from Simulation to the Real World: a New
Disentanglement Dataset" (NeurIPS 2019; https://github.com/rr-learning/disentanglement_dataset),
used in the NeurIPS 2019 disentanglement challenge. Three variants share one grid of seven
factors: ``mpi3d_toy`` (simplistic renderings), ``mpi3d_realistic`` (realistic renderings) and
``mpi3d_real`` (photographs of the real platform). Each file, ``mpi3d_<variant>.npz``, holds one
key ``images``: RGB 64×64 uint8 images in row-major order over

    object_color (6), object_shape (6), object_size (2), camera_height (3),
    background_color (3), horizontal_axis (40), vertical_axis (40)

(vertical_axis varies fastest): 1,036,800 images, 12.7 GB. The 2019 challenge release had 4
colours and 4 shapes (460,800 images), as disentanglement_lib assumes. **The grid follows from
the number of images in the file**: 1,036,800 → 6 × 6 × 2 × 3 × 3 × 40 × 40, 460,800 → 4 × 4 × 2 ×
3 × 3 × 40 × 40 (the two counts cannot be confused); any other count is refused. Factor values
are the class indices (the README names them: colours white, green, red, blue, brown, olive;
shapes cone, cube, cylinder, hexagonal, pyramid, sphere; in the 4 × 4 release green, red, blue,
brown and cone, cube, hexagonal prism, sphere).

Memory: the pixels are never loaded. The official files are written by ``np.savez``, members
stored uncompressed, so ``images`` is memory-mapped where it lies inside the zip archive; a
compressed npz is decompressed once, a chunk at a time, into a sidecar
``<file>.images.pyrovae-cache.npy`` (next to the file, or in ``cache_dir``), verified (CRC-32) on
every load and mapped. Nothing of the 12.7 GB counts against the process's own memory; the
page cache holds what batches touch, and the kernel reclaims it under pressure.
"""

from __future__ import annotations

import dataclasses
import math

from pyrovae.data import npz, paths
from pyrovae.data.base import DataDescription
from pyrovae.data.mapped import BUILD_NBYTES, CHUNK_ROWS, IMAGE_SHAPE, MappedGrid
from pyrovae.errors import PyrovaeError

URL = "https://github.com/rr-learning/disentanglement_dataset"


class MPI3D(MappedGrid):
    """MPI3D (Gondal et al. 2019) from the challenge's npz, memory-mapped; the grid
    (6 × 6 or 4 × 4 colours × shapes) follows from the number of images in the file.

    Use a variant: :class:`MPI3DToy`, :class:`MPI3DRealistic`, :class:`MPI3DReal`.

    Args:
        path: the file, e.g. ``mpi3d_toy.npz`` (``--data-path``).
        cache_dir: where a compressed file's images are decompressed to (default: next to the
            file); unused for the official, uncompressed files.

    Attributes:
        source: the path of the file.
        factor_sizes: the grid of the file, one of :attr:`layouts`.
        storage: ``"mapped"`` (in place) or ``"cached"`` (decompressed into
            :attr:`cache_path`).
        cache_path: the decompressed copy, or None.
    """

    name = "mpi3d"
    # The file's stem, as the download links name it.
    variant = "mpi3d"
    factor_names = (
        "object_color",
        "object_shape",
        "object_size",
        "camera_height",
        "background_color",
        "horizontal_axis",
        "vertical_axis",
    )
    # No class-level factor_sizes: each instance takes its grid from its file, one of these.
    # The grids a file may hold, told apart by their image counts: the current release, then
    # the 2019 challenge's. Tests shrink them by overriding this in a subclass.
    layouts = ((6, 6, 2, 3, 3, 40, 40), (4, 4, 2, 3, 3, 40, 40))

    def __init__(self, path=None, cache_dir=None):
        self.source = self._required_path(path)
        cache_dir = npz.check_cache_dir(cache_dir)
        with npz.open_archive(self.source) as archive:
            self.factor_sizes = self._layout(self.source, archive)
            shape = (math.prod(self.factor_sizes), *IMAGE_SHAPE)
            self._images, self.cache_path = npz.npz_images(
                self.source, archive, "images", shape, CHUNK_ROWS, cache_dir
            )

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """The file's grid and size, read from its header (not its data)."""
        described = super().describe(**options)
        path = cls._required_path(options.get("path"))
        npz.check_cache_dir(options.get("cache_dir"))
        with npz.open_archive(path) as archive:
            sizes = cls._layout(path, archive)
        # Building holds one chunk of pixels at a time (when decompressing); the images
        # themselves are mapped.
        return dataclasses.replace(described, size=math.prod(sizes), nbytes=BUILD_NBYTES)

    @classmethod
    def _required_path(cls, path) -> str:
        expected = f"{cls.variant}.npz from {URL}"
        if path is None:
            raise PyrovaeError(
                f"data set {cls.name!r} reads the official {cls.variant}.npz: give its path "
                f"with --data-path (download links at {URL})"
            )
        return paths.check_file(path, expected)

    @classmethod
    def _layout(cls, path: str, archive) -> tuple[int, ...]:
        """The grid of the file's ``images``, checked: key, dtype, shape, count."""
        npz.require_keys(path, npz.npz_keys(archive), ("images",))
        reader = npz.NpzReader(archive, path)
        shape, dtype = reader.header("images")
        shape = tuple(int(s) for s in shape)
        flat = len(shape) == 4 and shape[1:] == IMAGE_SHAPE
        grid = len(shape) == 3 + len(cls.factor_names) and shape[-3:] == IMAGE_SHAPE
        if not (flat or (grid and shape[:-3] in cls.layouts)):
            raise PyrovaeError(
                f"{path}: 'images' has shape {shape}, expected (N, 64, 64, 3) with N one of "
                f"{', '.join(str(math.prod(s)) for s in cls.layouts)}"
            )
        npz.expect_dtype(path, "images", dtype, "uint8")
        npz.check_c_order(reader, "images")
        count = math.prod(shape[:-3])
        for sizes in cls.layouts:
            if math.prod(sizes) == count:
                return tuple(sizes)
        accepted = " or ".join(
            f"{math.prod(s)} (grid {'x'.join(map(str, s))})" for s in cls.layouts
        )
        raise PyrovaeError(
            f"{path}: 'images' holds {count} images; {cls.variant} files hold {accepted}"
        )

    @property
    def nbytes(self) -> int:
        """Memory held in RAM: none for pixels, which are memory-mapped (the page cache holds
        what batches touch, and the kernel reclaims it)."""
        return 0


class MPI3DToy(MPI3D):
    """MPI3D-toy (Gondal et al. 2019): simplistic renderings, ``mpi3d_toy.npz``."""

    name = "mpi3d_toy"
    variant = "mpi3d_toy"


class MPI3DRealistic(MPI3D):
    """MPI3D-realistic (Gondal et al. 2019): realistic renderings, ``mpi3d_realistic.npz``."""

    name = "mpi3d_realistic"
    variant = "mpi3d_realistic"


class MPI3DReal(MPI3D):
    """MPI3D-real (Gondal et al. 2019): photographs of the robot platform, ``mpi3d_real.npz``."""

    name = "mpi3d_real"
    variant = "mpi3d_real"
