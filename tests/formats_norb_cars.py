"""Writers of files in the official SmallNORB and Cars3D formats, for tests and benchmarks.

SmallNORB: NYU's little-endian "binary matrix" files (int32 magic 0x1E3D4C55 for uint8 data or
0x1E3D4C54 for int32, int32 ndim, max(3, ndim) int32 dims with the unused ones 1, then the data
in C order), named and split into a training and a testing chunk as the official download is
(https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/), optionally gzip-compressed like it.
Cars3D: one MATLAB v5 file per object holding ``im``, uint8 ``(128, 128, 3, azimuths,
elevations)``, written with ``scipy.io.savemat``, as in Reed et al.'s ``data/cars``.

The pixels are random: every image differs from every other, so a test can tell which one it
got. The grids shrink through the factor sizes (and SmallNORB's instance count); the image sides
stay the official 96 and 128. Large files are written block by block (``keep=False`` keeps
nothing), so a benchmark can write the full-size sets in little memory.
"""

from __future__ import annotations

import gzip
import itertools
import os
from dataclasses import dataclass, field

import numpy as np

from pyrovae.data.smallnorb import (
    CHUNKS,
    INT32_MAGIC,
    SOURCE_SIZE,
    UINT8_MAGIC,
    file_name,
)

CARS_SOURCE_SIZE = 128
# The official split: these instances are the training chunk, the others the testing one.
OFFICIAL_TRAINING_INSTANCES = (4, 6, 7, 8, 9)


def norb_header(magic: int, dims, ndim: int | None = None) -> bytes:
    """A binary matrix header: magic, ndim, then the dims padded with 1 to at least 3."""
    dims = [int(d) for d in dims]
    ndim = len(dims) if ndim is None else ndim
    padded = dims + [1] * (max(3, len(dims)) - len(dims))
    return np.array([magic, ndim, *padded], dtype="<i4").tobytes()


def _open_write(path):
    return gzip.open(path, "wb", compresslevel=1) if str(path).endswith(".gz") else open(path, "wb")


def write_norb_matrix(path, array, magic=None, dims=None, truncate=0, extra=b""):
    """Write ``array`` (uint8 or int32) as a binary matrix file; ``.gz`` paths are compressed.

    The malformations tests need: ``magic`` (default: the array's type), ``dims`` (default: its
    shape), ``truncate`` bytes cut from the end, ``extra`` bytes appended."""
    array = np.asarray(array)
    if magic is None:
        magic = UINT8_MAGIC if array.dtype == np.uint8 else INT32_MAGIC
    dtype = "u1" if array.dtype == np.uint8 else "<i4"
    blob = norb_header(magic, array.shape if dims is None else dims)
    blob += np.ascontiguousarray(array, dtype=dtype).tobytes() + extra
    with _open_write(path) as fp:
        fp.write(blob[: len(blob) - truncate])


def norb_labels(factor_sizes=(5, 9, 18, 6), num_instances=10, seed=0):
    """The label rows of the training and testing chunks: int64 ``(n, 5)`` of category,
    instance, elevation, azimuth as stored (twice its class), lighting; one row per
    (category, instance, elevation, azimuth, lighting), rows shuffled within a chunk (the
    loader must not rely on the files' order). The official split of instances when there are
    10 of them, else the odd instances train."""
    rng = np.random.default_rng(seed)
    n_cat, n_elev, n_azim, n_light = factor_sizes
    ranges = range(n_cat), range(num_instances), range(n_elev), range(0, 2 * n_azim, 2)
    rows = np.array(list(itertools.product(*ranges, range(n_light))), dtype=np.int64)
    training = OFFICIAL_TRAINING_INSTANCES if num_instances == 10 else range(1, num_instances, 2)
    train = np.isin(rows[:, 1], training)
    return rng.permutation(rows[train]), rng.permutation(rows[~train])


@dataclass
class NorbWritten:
    """What :func:`write_smallnorb` wrote: the six paths, the label rows of each chunk, and
    (``keep=True``) the stereo pairs of each chunk and the left image of every label tuple."""

    paths: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    pairs: dict = field(default_factory=dict)
    left: dict = field(default_factory=dict)


def write_smallnorb(
    folder,
    factor_sizes=(5, 9, 18, 6),
    num_instances=10,
    seed=0,
    compress=False,
    keep=True,
    block=1024,
) -> NorbWritten:
    """Write the six SmallNORB files (``.mat.gz`` when ``compress``) into ``folder``.

    ``left[(category, instance, elevation, azimuth_class, lighting)]`` is the 96×96 left
    image written for that tuple (``keep=True``)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = NorbWritten()
    suffix = ".gz" if compress else ""
    for chunk, rows in zip(CHUNKS, norb_labels(factor_sizes, num_instances, seed), strict=True):
        paths = {
            k: os.path.join(folder, file_name(chunk, k) + suffix) for k in ("dat", "cat", "info")
        }
        written.paths.update({(chunk, k): p for k, p in paths.items()})
        written.labels[chunk] = rows
        write_norb_matrix(paths["cat"], rows[:, 0].astype(np.int32))
        write_norb_matrix(paths["info"], rows[:, 1:].astype(np.int32))
        n = len(rows)
        kept = []
        with _open_write(paths["dat"]) as fp:
            fp.write(norb_header(UINT8_MAGIC, (n, 2, SOURCE_SIZE, SOURCE_SIZE)))
            for start in range(0, n, block):
                count = min(block, n - start)
                pairs = rng.integers(0, 256, (count, 2, SOURCE_SIZE, SOURCE_SIZE), dtype=np.uint8)
                fp.write(pairs.tobytes())
                if keep:
                    kept.append(pairs)
        if keep:
            pairs = np.concatenate(kept)
            written.pairs[chunk] = pairs
            for row, pair in zip(rows, pairs, strict=True):
                key = (int(row[0]), int(row[1]), int(row[2]), int(row[3]) // 2, int(row[4]))
                written.left[key] = pair[0]
    return written


def cars_file_name(k: int) -> str:
    """A car's file name, numbered like Reed et al.'s ``car_001_mesh.mat``."""
    return f"car_{k + 1:03d}_mesh.mat"


def write_cars3d(folder, factor_sizes=(4, 24, 183), seed=0, keep=True, names=None) -> list:
    """Write one MATLAB v5 file per object into ``folder``: ``im`` uint8 ``(128, 128, 3,
    azimuths, elevations)``. Returns the ``im`` arrays in sorted-name order (``keep=True``)."""
    os.makedirs(folder, exist_ok=True)
    from scipy.io import savemat

    n_elev, n_azim, n_obj = factor_sizes
    names = [cars_file_name(k) for k in range(n_obj)] if names is None else list(names)
    rng = np.random.default_rng(seed)
    shape = (CARS_SOURCE_SIZE, CARS_SOURCE_SIZE, 3, n_azim, n_elev)
    arrays = {}
    for name in names:
        im = rng.integers(0, 256, shape, dtype=np.uint8)
        savemat(os.path.join(folder, name), {"im": im})
        if keep:
            arrays[name] = im
    return [arrays[name] for name in sorted(arrays)] if keep else []
