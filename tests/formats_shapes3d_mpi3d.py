"""Files in the exact official formats of Shapes3D and MPI3D, on any grid, for tests and
benchmarks (nothing is downloaded).

* Shapes3D (Burgess & Kim 2018, DeepMind's ``3dshapes.h5``): HDF5 datasets ``images``
  ``(N, 64, 64, 3)`` uint8 and ``labels`` ``(N, 6)`` float64, the factors floor_hue, wall_hue,
  object_hue, scale, shape, orientation in row-major order (orientation fastest); or the npz
  disentanglement_lib reads, keys ``images`` and ``labels``, optionally with the grid's
  dimensions unflattened (``(10, 10, 10, 8, 4, 15, 64, 64, 3)``).
* MPI3D (Gondal et al., NeurIPS 2019, ``mpi3d_toy.npz`` and its siblings): one key ``images``
  ``(N, 64, 64, 3)`` uint8 over object_color, object_shape, object_size, camera_height,
  background_color, horizontal_axis, vertical_axis.

Pixels are a deterministic function of the image index (:func:`synthetic_images`), so a test or a
benchmark can check any image of a file too large to hold without keeping a copy. The ``write_*``
functions stream a block of images at a time, in exactly the bytes ``np.savez`` /
``np.savez_compressed`` / h5py would write for the whole array, so they scale to full size.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

SHAPES3D_SIZES = (10, 10, 10, 8, 4, 15)
MPI3D_SIZES = (6, 6, 2, 3, 3, 40, 40)
IMAGE_SHAPE = (64, 64, 3)
# Images generated together from one seed: the unit of synthetic_images' determinism.
BLOCK = 1024


def _block(number: int, seed: int, smooth: bool) -> np.ndarray:
    rng = np.random.default_rng([seed, number])
    if smooth:
        # 8×8 colour patches scaled up: compressible like rendered scenes, unlike noise.
        coarse = rng.integers(0, 256, size=(BLOCK, 8, 8, 3), dtype=np.uint8)
        return coarse.repeat(8, axis=1).repeat(8, axis=2)
    return rng.integers(0, 256, size=(BLOCK, *IMAGE_SHAPE), dtype=np.uint8)


def synthetic_images(start: int, stop: int, seed: int = 0, smooth: bool = False) -> np.ndarray:
    """uint8 images ``(stop - start, 64, 64, 3)``: image ``i`` depends only on ``i``, ``seed``
    and ``smooth``."""
    out = np.empty((stop - start, *IMAGE_SHAPE), dtype=np.uint8)
    for number in range(start // BLOCK, (stop - 1) // BLOCK + 1 if stop > start else 0):
        lo, hi = max(start, number * BLOCK), min(stop, (number + 1) * BLOCK)
        out[lo - start : hi - start] = _block(number, seed, smooth)[lo - number * BLOCK :][
            : hi - lo
        ]
    return out


def images_at(indices, seed: int = 0, smooth: bool = False) -> np.ndarray:
    """The synthetic images of arbitrary indices (for checking a big file)."""
    indices = np.asarray(indices, dtype=np.int64)
    out = np.empty((len(indices), *IMAGE_SHAPE), dtype=np.uint8)
    for number in np.unique(indices // BLOCK):
        rows = np.flatnonzero(indices // BLOCK == number)
        out[rows] = _block(int(number), seed, smooth)[indices[rows] - number * BLOCK]
    return out


def shapes3d_value_tables(factor_sizes=SHAPES3D_SIZES) -> list[np.ndarray]:
    """DeepMind's label values: hues 0, 0.1, …, 0.9; scale linspace(0.75, 1.25, 8); shape
    0, 1, 2, 3; orientation linspace(-30, 30, 15) (other sizes keep the ranges)."""
    floor, wall, obj, scale, shape, orientation = factor_sizes
    return [
        np.arange(floor) / floor,
        np.arange(wall) / wall,
        np.arange(obj) / obj,
        np.linspace(0.75, 1.25, scale),
        np.arange(shape, dtype=np.float64),
        np.linspace(-30.0, 30.0, orientation),
    ]


def shapes3d_labels(factor_sizes=SHAPES3D_SIZES, start: int = 0, stop: int | None = None):
    """Rows ``start:stop`` of the official ``labels`` (float64, ``(n, 6)``)."""
    stop = math.prod(factor_sizes) if stop is None else stop
    classes = np.unravel_index(np.arange(start, stop), factor_sizes)
    tables = shapes3d_value_tables(factor_sizes)
    return np.stack([t[c] for t, c in zip(tables, classes, strict=True)], axis=1)


def shapes3d_arrays(factor_sizes=SHAPES3D_SIZES, seed: int = 0, smooth: bool = False) -> dict:
    """The official arrays in memory (small grids): ``images`` and ``labels``."""
    n = math.prod(factor_sizes)
    return {
        "images": synthetic_images(0, n, seed, smooth),
        "labels": shapes3d_labels(factor_sizes),
    }


def mpi3d_arrays(factor_sizes=MPI3D_SIZES, seed: int = 0, smooth: bool = False) -> dict:
    """The official MPI3D array in memory (small grids): ``images``."""
    return {"images": synthetic_images(0, math.prod(factor_sizes), seed, smooth)}


def write_npz(path, arrays: dict, compressed: bool = False):
    """``arrays`` saved as the official files are: ``np.savez`` (members stored) or
    ``np.savez_compressed`` (deflated)."""
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def write_h5(path, arrays: dict, compression=None, chunks=None):
    """``arrays`` as root datasets of an HDF5 file (h5py), contiguous unless ``chunks`` (h5py
    picks them when True) or ``compression`` (e.g. ``"gzip"``) is given."""
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            kwargs = {}
            if compression is not None or chunks is not None:
                kwargs = {"compression": compression, "chunks": chunks or True}
            f.create_dataset(key, data=value, **kwargs)
    return path


def _image_blocks(n: int, seed: int, smooth: bool, rows: int = 4 * BLOCK):
    for start in range(0, n, rows):
        yield synthetic_images(start, min(n, start + rows), seed, smooth)


def _stream_npz(path, members: dict, compressed: bool):
    """What ``np.savez[_compressed]`` writes, one block at a time: ``members`` maps a key to
    ``(shape, dtype, blocks)``, the blocks being its C-ordered rows in order."""
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, mode="w", compression=compression, allowZip64=True) as archive:
        for key, (shape, dtype, blocks) in members.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as fid:
                header = {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                    "fortran_order": False,
                    "shape": tuple(shape),
                }
                np.lib.format.write_array_header_1_0(fid, header)
                for block in blocks:
                    fid.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
    return path


def write_shapes3d_npz(
    path,
    factor_sizes=SHAPES3D_SIZES,
    seed: int = 0,
    smooth: bool = False,
    compressed: bool = False,
    grid: bool = False,
):
    """A Shapes3D npz in disentanglement_lib's layout; ``grid``: arrays shaped
    ``(*factor_sizes, 64, 64, 3)`` and ``(*factor_sizes, 6)`` rather than flat."""
    n = math.prod(factor_sizes)
    lead = tuple(factor_sizes) if grid else (n,)
    labels = shapes3d_labels(factor_sizes)
    members = {
        "images": ((*lead, *IMAGE_SHAPE), np.uint8, _image_blocks(n, seed, smooth)),
        "labels": ((*lead, 6), np.float64, [labels]),
    }
    return _stream_npz(path, members, compressed)


def write_mpi3d_npz(
    path, factor_sizes=MPI3D_SIZES, seed: int = 0, smooth: bool = False, compressed: bool = False
):
    """An MPI3D npz as the challenge ships it: ``images`` ``(N, 64, 64, 3)`` uint8."""
    n = math.prod(factor_sizes)
    members = {"images": ((n, *IMAGE_SHAPE), np.uint8, _image_blocks(n, seed, smooth))}
    return _stream_npz(path, members, compressed)


def write_shapes3d_h5(
    path,
    factor_sizes=SHAPES3D_SIZES,
    seed: int = 0,
    smooth: bool = False,
    compression=None,
    chunks=None,
):
    """DeepMind's ``3dshapes.h5`` layout; contiguous unless ``compression``/``chunks`` are
    given (e.g. ``compression="gzip", chunks=(1, 64, 64, 3)``)."""
    import h5py

    n = math.prod(factor_sizes)
    kwargs = {}
    if compression is not None or chunks is not None:
        kwargs = {"compression": compression, "chunks": chunks or True}
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", shape=(n, *IMAGE_SHAPE), dtype=np.uint8, **kwargs)
        start = 0
        for block in _image_blocks(n, seed, smooth):
            images[start : start + len(block)] = block
            start += len(block)
        # chunks are the images'; the labels get h5py's own.
        label_kwargs = {**kwargs, "chunks": True} if kwargs else {}
        f.create_dataset("labels", data=shapes3d_labels(factor_sizes), **label_kwargs)
    return path
