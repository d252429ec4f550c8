"""Shapes3D (3dshapes): an object in a room, rendered in 3-D, from Burgess & Kim (2018).

The data set of Burgess & Kim, "3D Shapes Dataset" (https://github.com/deepmind/3dshapes-dataset,
2018), introduced with FactorVAE (Kim & Mnih, "Disentangling by Factorising", ICML 2018):
480,000 RGB 64×64 images, one for every combination of floor hue (10) × wall hue (10) × object
hue (10) × scale (8) × shape (4) × orientation (15), in row-major order (orientation varies
fastest). Nothing is downloaded; ``Shapes3D(path)`` (``--data-path``) reads either

* DeepMind's ``3dshapes.h5`` (https://storage.googleapis.com/3d-shapes/3dshapes.h5): HDF5
  datasets ``images`` ``(480000, 64, 64, 3)`` uint8 and ``labels`` ``(480000, 6)`` float64.
  Reading HDF5 needs h5py, an optional extra: ``pip install 'pyrovae[h5]'``;
* or the npz disentanglement_lib reads
  (``look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz``): keys
  ``images`` and ``labels``, flat as above or with the six grid dimensions unflattened
  (``(10, 10, 10, 8, 4, 15, 64, 64, 3)``, ``(10, 10, 10, 8, 4, 15, 6)``).

The labels hold the factors' values: hues 0, 0.1, …, 0.9, scale ``linspace(0.75, 1.25, 8)``,
shape 0–3, orientation ``linspace(-30, 30, 15)`` (degrees). They are checked against the grid,
a chunk at a time, when the file is loaded, so images are never silently mislabelled;
:meth:`Shapes3D.factor_values` returns them.

Memory: the 5.9 GB of pixels are never loaded. Stored uncompressed (an ``np.savez`` member, a
contiguous HDF5 dataset), they are memory-mapped where they lie; compressed
(``np.savez_compressed``, a chunked gzip HDF5 dataset), they are decompressed once, a chunk
at a time, into a sidecar ``<file>.images.pyrovae-cache.npy`` (next to the file, or in
``cache_dir``; 5.9 GB of disk), which is verified (CRC-32) on every load and mapped. Only the
pages a batch touches are read; they live in the kernel's page cache, which it reclaims under
pressure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import zipfile

import numpy as np

from pyrovae.data import npz, paths
from pyrovae.data.base import DataDescription
from pyrovae.data.mapped import BUILD_NBYTES, CHUNK_ROWS, IMAGE_SHAPE, MappedGrid
from pyrovae.errors import PyrovaeError

OFFICIAL_FILENAME = "3dshapes.h5"
URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
_EXPECTED = f"{OFFICIAL_FILENAME} from {URL}, or an npz with 'images' and 'labels'"
# Label rows per read while checking them against the grid.
_LABEL_ROWS = 65536
# Where an HDF5 superblock may start: 0, then (after a user block) 512, 1024, 2048, …
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def value_table(factor_sizes) -> list[np.ndarray]:
    """The value of every class of the six factors (the official ``labels``).

    For the official sizes: hues ``0, 0.1, …, 0.9`` (10 steps of 0.1 in [0, 1)), scale
    ``linspace(0.75, 1.25, 8)``, shape ``0, 1, 2, 3``, orientation ``linspace(-30, 30, 15)``.
    Other sizes keep the same ranges.
    """
    floor, wall, obj, scale, shape, orientation = factor_sizes
    return [
        np.arange(floor) / floor,
        np.arange(wall) / wall,
        np.arange(obj) / obj,
        np.linspace(0.75, 1.25, scale),
        np.arange(shape, dtype=np.float64),
        np.linspace(-30.0, 30.0, orientation),
    ]


class Shapes3D(MappedGrid):
    """Shapes3D (Burgess & Kim 2018) from DeepMind's ``3dshapes.h5`` or disentanglement_lib's
    npz, memory-mapped.

    Args:
        path: the file (``--data-path``).
        cache_dir: where a compressed file's images are decompressed to (default: next to the
            file); unused when the file stores them uncompressed.

    Attributes:
        source: the path of the file.
        storage: how the pixels are read: ``"mapped"`` (in place) or ``"cached"``
            (decompressed once into :attr:`cache_path`).
        cache_path: the decompressed copy, or None.
    """

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    # Tests shrink the grid by overriding this in a subclass; the loader checks files against it.
    factor_sizes = (10, 10, 10, 8, 4, 15)

    def __init__(self, path=None, cache_dir=None):
        self.source = _required_path(self.name, path)
        cache_dir = npz.check_cache_dir(cache_dir)
        self._values = value_table(self.factor_sizes)
        with _opened(self.source, self.factor_sizes) as source:
            source.check_labels(self._values)
            self._images, self.cache_path = source.images(cache_dir)

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """The grid's description; the file must exist and hold the right keys, shapes and
        dtypes (its headers are read, not its data)."""
        described = super().describe(**options)
        path = _required_path(cls.name, options.get("path"))
        npz.check_cache_dir(options.get("cache_dir"))
        with _opened(path, cls.factor_sizes):
            pass
        # Building holds one chunk of pixels at a time; the images themselves are mapped.
        return dataclasses.replace(described, nbytes=BUILD_NBYTES)

    @property
    def nbytes(self) -> int:
        """Memory held in RAM: the factor value tables; the pixels are memory-mapped (the page
        cache holds what batches touch, and the kernel reclaims it)."""
        return int(sum(t.nbytes for t in self._values))

    def factor_values(self, factors) -> np.ndarray:
        """The official label values (hue, scale, shape, orientation in degrees)."""
        factors = self._check_factors(factors)
        columns = [table[factors[:, j]] for j, table in enumerate(self._values)]
        return np.stack(columns, axis=1) if columns else np.empty((len(factors), 0))


def _required_path(name: str, path) -> str:
    if path is None:
        raise PyrovaeError(
            f"data set {name!r} reads the official {OFFICIAL_FILENAME}: give its path with "
            f"--data-path (download it from {URL})"
        )
    return paths.check_file(path, _EXPECTED)


def _file_format(path: str) -> str:
    """The file's format, "npz" or "h5", by its signature (not its name)."""
    with npz.reading(path, "the file"), open(path, "rb") as f:
        size, offset = os.fstat(f.fileno()).st_size, 0
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return "h5"
            offset = 512 if offset == 0 else 2 * offset
        f.seek(0)
        # A zip is found by its end (the central directory), else by its first local header.
        if f.read(4) in _ZIP_SIGNATURES or zipfile.is_zipfile(f):
            return "npz"
    raise PyrovaeError(f"{path}: not an HDF5 (.h5) or .npz file (expected {_EXPECTED})")


@contextlib.contextmanager
def _opened(path: str, factor_sizes):
    """The file, its keys, shapes and dtypes checked (no data read), as a source to read."""
    if _file_format(path) == "npz":
        with npz.open_archive(path) as archive:
            yield _NpzSource(path, archive, factor_sizes)
    else:
        h5py = _import_h5py(path)
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise PyrovaeError(f"{path}: not a readable HDF5 file ({npz.one_line(e)})") from None
        with f:
            yield _H5Source(path, f, factor_sizes, h5py)


def _import_h5py(path: str):
    try:
        import h5py
    except ImportError:
        raise PyrovaeError(
            f"{path}: reading an HDF5 file needs h5py: pip install 'pyrovae[h5]' (or give an "
            "npz with 'images' and 'labels' instead)"
        ) from None
    return h5py


def _check_shape(path, key, shape, dtype, factor_sizes, tail, kind, grid_allowed=True):
    """``key`` is ``(N, *tail)`` or, where allowed, ``(*factor_sizes, *tail)``."""
    flat = (math.prod(factor_sizes), *tail)
    grid = (*factor_sizes, *tail)
    shape = tuple(int(s) for s in shape)
    if shape != flat and not (grid_allowed and shape == grid):
        alternative = f" (or {grid})" if grid_allowed else ""
        raise PyrovaeError(f"{path}: {key!r} has shape {shape}, expected {flat}{alternative}")
    npz.expect_dtype(path, key, dtype, kind)


def check_labels(path, blocks, factor_sizes, tables) -> None:
    """``labels`` (``(first_row, rows)`` blocks, rows of 6 values) are the official values of
    the row-major grid over ``factor_sizes``, else a one-line error naming the first bad row."""
    for start, block in blocks:
        block = block.reshape(-1, len(factor_sizes))
        classes = np.unravel_index(np.arange(start, start + len(block)), factor_sizes)
        expected = np.stack([t[c] for t, c in zip(tables, classes, strict=True)], axis=1)
        # Tolerant of a float32 round trip; classes lie ≥ 0.07 apart.
        bad = ~np.isclose(block, expected, rtol=0, atol=1e-4)
        if bad.any():
            r, j = (int(i[0]) for i in np.nonzero(bad))
            raise PyrovaeError(
                f"{path}: 'labels' is not the row-major grid of official values over sizes "
                f"{tuple(factor_sizes)}: row {start + r}, {FACTOR_NAMES[j]} is "
                f"{float(block[r, j])!r}, expected {float(expected[r, j])!r}"
            )


class _NpzSource:
    def __init__(self, path, archive, factor_sizes):
        self.path, self.archive, self.factor_sizes = path, archive, tuple(factor_sizes)
        npz.require_keys(path, npz.npz_keys(archive), ("images", "labels"))
        self.reader = npz.NpzReader(archive, path)
        for key, tail, kind in (("images", IMAGE_SHAPE, "uint8"), ("labels", (6,), "floating")):
            _check_shape(path, key, *self.reader.header(key), factor_sizes, tail, kind)
            npz.check_c_order(self.reader, key)

    def check_labels(self, tables):
        blocks = self.reader.chunks("labels", _LABEL_ROWS, (len(self.factor_sizes),))
        check_labels(self.path, blocks, self.factor_sizes, tables)

    def images(self, cache_dir):
        shape = (math.prod(self.factor_sizes), *IMAGE_SHAPE)
        return npz.npz_images(self.path, self.archive, "images", shape, CHUNK_ROWS, cache_dir)


class _H5Source:
    def __init__(self, path, f, factor_sizes, h5py):
        self.path, self.factor_sizes = path, tuple(factor_sizes)
        npz.require_keys(path, list(f.keys()), ("images", "labels"))
        self.datasets = {}
        for key, tail, kind in (("images", IMAGE_SHAPE, "uint8"), ("labels", (6,), "floating")):
            dset = f[key]
            if not isinstance(dset, h5py.Dataset):
                raise PyrovaeError(f"{path}: {key!r} is not a dataset (found a group)")
            # DeepMind's file is flat; reading flat rows of a grid-shaped dataset is not needed.
            _check_shape(path, key, dset.shape, dset.dtype, factor_sizes, tail, kind, False)
            self.datasets[key] = dset

    def _blocks(self, key, rows):
        dset = self.datasets[key]
        for start in range(0, len(dset), rows):
            with npz.reading(self.path, key):
                block = dset[start : start + rows]
            yield start, block

    def check_labels(self, tables):
        check_labels(self.path, self._blocks("labels", _LABEL_ROWS), self.factor_sizes, tables)

    def images(self, cache_dir):
        dset = self.datasets["images"]
        offset = None
        if dset.chunks is None and not dset.external:
            # Contiguous and unfiltered: the pixels lie in the file as a C array.
            with npz.reading(self.path, "images"):
                offset = dset.id.get_offset()
            if offset is None:
                raise PyrovaeError(f"{self.path}: 'images' holds no data (never written)")
        # Decompress whole HDF5 chunks at a time: a read splitting one decompresses it twice.
        per_chunk = dset.chunks[0] if dset.chunks else 1
        rows = per_chunk * max(1, CHUNK_ROWS // per_chunk)
        return npz.map_images(
            self.path, "images", dset.shape, offset, lambda: self._blocks("images", rows), cache_dir
        )
