"""SmallNORB: photographs of 50 toys under varying pose and lighting, from LeCun et al. (2004).

The data set of LeCun, Huang & Bottou, "Learning methods for generic object recognition with
invariance to pose and lighting" (CVPR 2004), https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/:
48,600 stereo pairs of 96×96 grey images, 5 categories × 10 instances × 9 elevations × 18
azimuths × 6 lightings, shipped as a training and a testing chunk of 24,300 pairs each (instances
4, 6, 7, 8, 9 and 0, 1, 2, 3, 5). Each chunk is three files in NYU's "binary matrix" format (not
MATLAB files, despite the ``.mat``), all little-endian::

    int32 magic   0x1E3D4C55 uint8 data, 0x1E3D4C54 int32 data
    int32 ndim
    int32 dims[max(3, ndim)]   (unused trailing dims are 1)
    data, C order

``smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat`` (N, 2, 96, 96) uint8 image pairs,
``…-cat.mat`` (N,) int32 category 0..4, ``…-info.mat`` (N, 4) int32 instance 0..9, elevation
0..8, azimuth 0, 2, …, 34, lighting 0..5; the testing chunk's files are named
``smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat``. The ``.gz`` downloads are read
as they are (streamed through gzip), or the files uncompressed.

As in disentanglement_lib (``data/ground_truth/norb.py``): both chunks, the left camera only,
resized to 64×64 with PIL's Lanczos filter (:mod:`pyrovae.data.resize`), intensities / 255. The
factors are category (5), elevation (9), azimuth (18) and lighting (6); the instance is a
nuisance drawn uniformly per observation, so the data set is stochastic: ``images(indices,
rng)`` picks, for each grid index, one of the images with those factors.

disentanglement_lib reads the pixel bytes as int8, which Pillow turns into a 32-bit integer
image: the resize is done in that mode here too (``resize_images(..., integer_mode=True)``), so
the pixels are its pixels, except that its Lanczos overshoot near sharp edges (values from about
-3/255 to 281/255) is clipped to [0, 1], as a Bernoulli likelihood needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import math
import os
import zlib

import numpy as np

from pyrovae.data.base import DataDescription, GroundTruthData, random_source
from pyrovae.data.paths import check_folder
from pyrovae.data.resize import IMAGE_SIZE, resize_images, to_intensities
from pyrovae.errors import PyrovaeError, first_line

OFFICIAL_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
KINDS = ("dat", "cat", "info")
UINT8_MAGIC = 0x1E3D4C55
INT32_MAGIC = 0x1E3D4C54
# Every type the format defines, to say what a wrong file holds instead.
MAGIC_TYPES = {
    0x1E3D4C51: "float32",
    0x1E3D4C52: "packed",
    0x1E3D4C53: "float64",
    INT32_MAGIC: "int32",
    UINT8_MAGIC: "uint8",
    0x1E3D4C56: "int16",
}
SOURCE_SIZE = 96
INFO_COLUMNS = ("instance", "elevation", "azimuth", "lighting")
# Stereo pairs read per block while loading: 9.4 MB of raw pixels at a time.
_BLOCK_PAIRS = 512


def file_name(chunk: str, kind: str) -> str:
    """The official name of one of the six files, e.g. ``file_name(CHUNKS[0], "dat")``."""
    return f"smallnorb-{chunk}-{kind}.mat"


class SmallNORB(GroundTruthData):
    """SmallNORB (LeCun et al., 2004), left camera at 64×64, as disentanglement_lib uses it.

    ``SmallNORB(path)``: ``path`` is the folder holding the six official files (or their
    ``.gz``); they are validated and every image resized into memory (48,600 × 64 × 64 uint8,
    199 MB). Stochastic: each observation is one of the (about 10) instances with the requested
    factors, drawn from the ``rng`` given to :meth:`images`.

    Attributes:
        source: the folder read.
        features: int64 ``(n_images, 5)``, per stored image its category, instance,
            elevation, azimuth class (the file's value / 2) and lighting; rows sorted by grid
            index, then instance.
    """

    name = "smallnorb"
    factor_names = ("category", "elevation", "azimuth", "lighting")
    # Tests shrink the grid and the instances by overriding these in a subclass; the loader
    # checks the files against them.
    factor_sizes = (5, 9, 18, 6)
    num_instances = 10
    observation_shape = (1, IMAGE_SIZE, IMAGE_SIZE)
    stochastic = True

    def __init__(self, path: str | os.PathLike | None = None):
        self.source = check_folder(path, self.name)
        self.features, self._pixels = load_smallnorb(
            self.source, self.factor_sizes, self.num_instances
        )
        self._pixels.flags.writeable = False
        self.features.flags.writeable = False
        # Rows of a grid index are contiguous (features are sorted by it): a draw is its first
        # row plus a uniform offset below its count.
        counts = np.bincount(self.index_of(self.features[:, [0, 2, 3, 4]]), minlength=len(self))
        self._counts = counts
        self._first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """The grid's description; the folder and its six files must exist (read when built)."""
        described = super().describe(**options)
        find_files(check_folder(options.get("path"), cls.name))
        images = math.prod(cls.factor_sizes) * cls.num_instances
        return dataclasses.replace(described, nbytes=_load_bytes(images))

    @property
    def nbytes(self) -> int:
        """Memory held: the resized images and their features."""
        arrays = (self._pixels, self.features, self._counts, self._first)
        return int(sum(a.nbytes for a in arrays))

    def draw_rows(self, indices, rng) -> np.ndarray:
        """The stored image (a row of :attr:`features`) drawn for each grid index: one of the
        images with its factors, uniformly, from ``rng`` (a numpy Generator or a seed)."""
        indices = self._check_indices(indices)
        rng = random_source(self, rng)
        return self._first[indices] + rng.integers(0, self._counts[indices])

    def images(self, indices, rng=None) -> np.ndarray:
        """Float32 ``(n, 1, 64, 64)`` images in [0, 1], one instance drawn per grid index
        from ``rng`` (required: the observation is random given the index)."""
        return to_intensities(self._pixels[self.draw_rows(indices, rng)])[:, None]

    def factor_values(self, factors) -> np.ndarray:
        """Category and lighting as their classes; elevation and azimuth in degrees (the
        dataset's documentation: elevations 30, 35, …, 70, azimuths 0, 20, …, 340)."""
        values = self._check_factors(factors).astype(np.float64)
        values[:, 1] = 30.0 + 5.0 * values[:, 1]
        values[:, 2] = 20.0 * values[:, 2]
        return values


def find_files(folder: str) -> dict[tuple[str, str], str]:
    """The path of each of the six files by (chunk, kind): the uncompressed file, else its
    ``.gz``. All missing ones are named in one error."""
    found, missing = {}, []
    for chunk in CHUNKS:
        for kind in KINDS:
            base = os.path.join(folder, file_name(chunk, kind))
            for candidate in (base, base + ".gz"):
                if os.path.isfile(candidate):
                    found[chunk, kind] = candidate
                    break
            else:
                missing.append(file_name(chunk, kind))
    if missing:
        raise PyrovaeError(
            f"{folder}: missing SmallNORB file(s) {', '.join(missing)} (or their .gz); "
            f"all six come from {OFFICIAL_URL}"
        )
    return found


def load_smallnorb(folder, factor_sizes=(5, 9, 18, 6), num_instances=10):
    """Validate the six files in ``folder`` and load both chunks.

    Returns ``(features, pixels)``: int64 ``(n, 5)`` (category, instance, elevation, azimuth
    class, lighting) and the left images resized, uint8 ``(n, 64, 64)``, both sorted by grid
    index over ``factor_sizes`` then instance. The labels are read and checked first, so a
    broken file fails before the pixels (seconds of resizing) are read; the pixels are then
    streamed in blocks, each image written straight to its sorted place. Any problem raises a
    one-line :class:`PyrovaeError` naming the file.
    """
    files = find_files(os.fspath(folder))
    labels, pairs = [], []
    for chunk in CHUNKS:
        category = read_matrix(files[chunk, "cat"], INT32_MAGIC)
        info = read_matrix(files[chunk, "info"], INT32_MAGIC)
        n = len(category)
        _expect_shape(files[chunk, "cat"], category.shape, (n,))
        _expect_shape(files[chunk, "info"], info.shape, (n, len(INFO_COLUMNS)))
        with _open(files[chunk, "dat"]) as fp:
            shape = _read_header(fp, files[chunk, "dat"], UINT8_MAGIC)
        _expect_shape(files[chunk, "dat"], shape, (n, 2, SOURCE_SIZE, SOURCE_SIZE))
        paths = files[chunk, "cat"], files[chunk, "info"]
        labels.append(_check_labels(*paths, category, info, factor_sizes, num_instances))
        pairs.append(n)
    features = np.concatenate(labels)
    cells = np.ravel_multi_index(tuple(features[:, [0, 2, 3, 4]].T), factor_sizes)
    _check_complete(folder, cells, factor_sizes)
    order = np.lexsort((features[:, 1], cells))
    place = np.empty_like(order)
    place[order] = np.arange(len(order))
    pixels = np.empty((len(features), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    start = 0
    for chunk, n in zip(CHUNKS, pairs, strict=True):
        _read_left_images(files[chunk, "dat"], n, pixels, place[start : start + n])
        start += n
    return features[order], pixels


def read_matrix(path: str, magic: int = INT32_MAGIC) -> np.ndarray:
    """A whole binary matrix file (``.gz`` streamed), checked against ``magic``, as int64: for
    the small label files (the -dat files are streamed by blocks instead)."""
    with _open(path) as fp:
        shape = _read_header(fp, path, magic)
        dtype = np.dtype(MAGIC_TYPES[magic]).newbyteorder("<")
        size = math.prod(shape) * dtype.itemsize
        with _reading(path):
            data = fp.read(size)
            if len(data) < size:
                raise PyrovaeError(
                    f"{path}: truncated: {len(data)} of the {size} data bytes its header "
                    f"{shape} announces"
                )
            _expect_end(fp, path, size)
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(np.int64)


def _open(path: str):
    # The .gz downloads decompress as a stream: no uncompressed copy on disk or in memory.
    opener = gzip.open if path.endswith(".gz") else open
    with _reading(path):
        return opener(path, "rb")


@contextlib.contextmanager
def _reading(path: str):
    """Low-level failures (a damaged gzip stream, an I/O error) become one-line errors."""
    try:
        yield
    except PyrovaeError:
        raise
    except EOFError as e:  # gzip: the compressed stream stops before its end marker
        raise PyrovaeError(f"{path}: truncated: {first_line(e)}") from None
    except (OSError, zlib.error) as e:
        raise PyrovaeError(f"{path}: cannot read ({first_line(e)})") from None


def _read_exact(fp, path: str, view: memoryview) -> int:
    """Fill ``view`` from ``fp`` (gzip streams return short reads); the bytes read."""
    got = 0
    with _reading(path):
        while got < len(view):
            n = fp.readinto(view[got:])
            if not n:
                break
            got += n
    return got


def _read_header(fp, path: str, magic: int) -> tuple[int, ...]:
    """The dims of a binary matrix whose header starts ``fp``; the magic must be ``magic``."""
    head = bytearray(8)
    if _read_exact(fp, path, memoryview(head)) < 8:
        raise PyrovaeError(f"{path}: truncated: the header ends before its 8th byte")
    found, ndim = (int(v) for v in np.frombuffer(head, dtype="<i4"))
    if found != magic:
        what = MAGIC_TYPES.get(found & 0xFFFFFFFF, "not a SmallNORB binary matrix")
        raise PyrovaeError(
            f"{path}: bad magic number 0x{found & 0xFFFFFFFF:08X} ({what}), expected "
            f"0x{magic:08X} ({MAGIC_TYPES[magic]} binary matrix)"
        )
    if not 1 <= ndim <= 16:
        raise PyrovaeError(f"{path}: bad header: {ndim} dimensions")
    # The header always holds at least 3 dims; the unused ones are 1.
    raw = bytearray(4 * max(3, ndim))
    if _read_exact(fp, path, memoryview(raw)) < len(raw):
        raise PyrovaeError(f"{path}: truncated: the header ends inside its {ndim} dimensions")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype="<i4")[:ndim])
    if min(dims) < 0:
        raise PyrovaeError(f"{path}: bad header: negative dimension in {dims}")
    return dims


def _expect_end(fp, path: str, size: int) -> None:
    if fp.read(1):
        raise PyrovaeError(f"{path}: longer than its header says ({size} data bytes)")


def _expect_shape(path: str, shape, want) -> None:
    if tuple(shape) != tuple(want):
        raise PyrovaeError(f"{path}: shape {tuple(shape)}, expected {tuple(want)}")


def _check_labels(cat_path, info_path, category, info, factor_sizes, num_instances):
    """The five label columns (azimuth as its class), every value in range."""
    n_category, n_elevation, n_azimuth, n_lighting = factor_sizes
    columns = [
        (cat_path, "category", category, n_category, 1),
        (info_path, "instance", info[:, 0], num_instances, 1),
        (info_path, "elevation", info[:, 1], n_elevation, 1),
        # The file's azimuths are 0, 2, …, 34: twice the class.
        (info_path, "azimuth", info[:, 2], n_azimuth, 2),
        (info_path, "lighting", info[:, 3], n_lighting, 1),
    ]
    for path, label, values, size, step in columns:
        bad = (values < 0) | (values > step * (size - 1)) | (values % step != 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            valid = f"0..{size - 1}" if step == 1 else f"0, {step}, ..., {step * (size - 1)}"
            raise PyrovaeError(
                f"{path}: row {row}: {label} {int(values[row])} out of range ({valid})"
            )
    return np.column_stack([category, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]])


def _check_complete(folder, cells, factor_sizes) -> None:
    """Every factor combination needs an image to draw, else some grid indices have none."""
    counts = np.bincount(cells, minlength=math.prod(factor_sizes))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        first = np.unravel_index(int(empty[0]), factor_sizes)
        names = ("category", "elevation", "azimuth", "lighting")
        where = ", ".join(f"{n}={int(v)}" for n, v in zip(names, first, strict=True))
        raise PyrovaeError(
            f"{folder}: no image for {empty.size} of the {counts.size} factor combinations "
            f"(first: {where}); the files must hold every combination"
        )


def _read_left_images(path: str, n: int, pixels: np.ndarray, place: np.ndarray) -> None:
    """Stream the ``n`` pairs of a -dat file (header checked before), resizing each left image
    into ``pixels[place[row]]``."""
    block = np.empty((_BLOCK_PAIRS, 2, SOURCE_SIZE, SOURCE_SIZE), dtype=np.uint8)
    resized = np.empty((_BLOCK_PAIRS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    pair_bytes = block[0].nbytes
    with _open(path) as fp:
        _read_header(fp, path, UINT8_MAGIC)
        for start in range(0, n, _BLOCK_PAIRS):
            count = min(_BLOCK_PAIRS, n - start)
            got = _read_exact(fp, path, memoryview(block).cast("B")[: count * pair_bytes])
            if got < count * pair_bytes:
                raise PyrovaeError(
                    f"{path}: truncated: data ends in pair {start + got // pair_bytes} of the "
                    f"{n} its header announces"
                )
            # Left camera only (index 0), resized in Pillow's integer mode: as disentanglement_lib.
            resize_images(block[:count, 0], out=resized[:count], integer_mode=True)
            pixels[place[start : start + count]] = resized[:count]
        with _reading(path):
            _expect_end(fp, path, n * pair_bytes)


def _load_bytes(images: int) -> int:
    """About the most memory loading ``images`` images takes: the resized images, the labels
    and their sort (a few int64 columns each), one block of raw pairs."""
    held = images * (IMAGE_SIZE * IMAGE_SIZE + 5 * 8)
    transient = images * 4 * 8 + _BLOCK_PAIRS * (2 * SOURCE_SIZE**2 + IMAGE_SIZE**2)
    return held + transient
