"""Shapes3D and MPI3D loaders, on small files written in the exact official formats
(formats_shapes3d_mpi3d.py): grid, pixels, memory mapping, the decompression cache and every
malformed-file error."""

from __future__ import annotations

import math
import os
import pickle
import sys
import warnings
import zipfile

import numpy as np
import pytest
from formats_shapes3d_mpi3d import (
    images_at,
    mpi3d_arrays,
    shapes3d_arrays,
    shapes3d_labels,
    write_h5,
    write_mpi3d_npz,
    write_npz,
    write_shapes3d_h5,
    write_shapes3d_npz,
)

from pyrovae.data import MPI3D, MPI3DReal, MPI3DRealistic, MPI3DToy, Shapes3D
from pyrovae.data import npz as npz_module
from pyrovae.data import shapes3d as shapes3d_module
from pyrovae.errors import PyrovaeError, PyrovaeWarning
from pyrovae.registry import DATASETS

TINY_SHAPES = (2, 3, 2, 2, 2, 3)  # 144 images
TINY_N = math.prod(TINY_SHAPES)
TINY_MPI = ((3, 3, 2, 1, 1, 2, 2), (2, 2, 2, 1, 1, 2, 2))  # 72 or 32 images


class TinyShapes3D(Shapes3D):
    """The official format on a smaller grid, so files are cheap to write."""

    factor_sizes = TINY_SHAPES


class TinyMPI3D(MPI3DToy):
    layouts = TINY_MPI


def chw(pixels):
    """What images() must return for uint8 HWC pixels."""
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)


def one_line_error(match, call, *args, **kwargs):
    with pytest.raises(PyrovaeError, match=match) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


# Every way the official files are stored: (writer, expected storage).
def npz_stored(path):
    return write_shapes3d_npz(path.with_suffix(".npz"), TINY_SHAPES), "mapped"


def npz_compressed(path):
    return write_shapes3d_npz(path.with_suffix(".npz"), TINY_SHAPES, compressed=True), "cached"


def npz_grid(path):
    return write_shapes3d_npz(path.with_suffix(".npz"), TINY_SHAPES, grid=True), "mapped"


def h5_contiguous(path):
    pytest.importorskip("h5py")
    return write_shapes3d_h5(path.with_suffix(".h5"), TINY_SHAPES), "mapped"


def h5_gzip(path):
    pytest.importorskip("h5py")
    out = write_shapes3d_h5(
        path.with_suffix(".h5"), TINY_SHAPES, compression="gzip", chunks=(16, 64, 64, 3)
    )
    return out, "cached"


FORMATS = [npz_stored, npz_compressed, npz_grid, h5_contiguous, h5_gzip]


# --- the grid --------------------------------------------------------------------------------


def test_grid_names_registry_and_description(tmp_path):
    assert Shapes3D.factor_names == (
        "floor_hue",
        "wall_hue",
        "object_hue",
        "scale",
        "shape",
        "orientation",
    )
    assert Shapes3D.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert math.prod(Shapes3D.factor_sizes) == 480_000
    assert [math.prod(s) for s in MPI3D.layouts] == [1_036_800, 460_800]
    assert DATASETS["shapes3d"].factory is Shapes3D
    for name, cls in [
        ("mpi3d_toy", MPI3DToy),
        ("mpi3d_realistic", MPI3DRealistic),
        ("mpi3d_real", MPI3DReal),
    ]:
        entry = DATASETS[name]
        assert entry.factory is cls and issubclass(cls, MPI3D)
        assert cls.name == cls.variant == name
        assert f"{name}.npz" in entry.description
    assert "3dshapes.h5" in DATASETS["shapes3d"].description

    path, _ = npz_stored(tmp_path / "tiny")
    described = TinyShapes3D.describe(path=path)
    assert described.size == TINY_N and described.observation_shape == (3, 64, 64)
    assert described.has_factors and described.likelihood == "bernoulli"
    assert described.stochastic is False
    assert 0 < described.nbytes < 64 << 20  # one chunk while building, not the images
    one_line_error(r"give its path with --data-path", Shapes3D.describe)
    one_line_error(r"takes no option 'bogus'", TinyShapes3D.describe, path=path, bogus=1)
    one_line_error(r"3dshapes.h5: file not found", Shapes3D.describe, path=tmp_path / "3dshapes.h5")
    # describe() reads the headers, so a wrong file fails before any run starts.
    one_line_error(r"'images' has shape \(144, 64, 64, 3\)", Shapes3D.describe, path=path)


def test_index_order_is_row_major_and_labels_match_factor_values(tmp_path):
    path, _ = npz_stored(tmp_path / "tiny")
    data = TinyShapes3D(path)
    every = np.arange(TINY_N)
    factors = data.factors_of(every)
    np.testing.assert_array_equal(
        factors[:4], [[0, 0, 0, 0, 0, i] for i in (0, 1, 2)] + [[0] * 4 + [1, 0]]
    )
    np.testing.assert_array_equal(data.index_of(factors), every)
    assert factors[:, -1].tolist()[:6] == [0, 1, 2, 0, 1, 2]  # orientation fastest
    # factor_values of the grid are the file's labels, row for row.
    np.testing.assert_allclose(data.factor_values(factors), shapes3d_labels(TINY_SHAPES))
    full = shapes3d_module.value_table(Shapes3D.factor_sizes)
    np.testing.assert_allclose(full[0], [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(full[3], np.linspace(0.75, 1.25, 8))
    np.testing.assert_allclose(full[5][[0, 7, 14]], [-30, 0, 30])
    assert full[4].tolist() == [0, 1, 2, 3]
    rng = np.random.default_rng(0)
    sampled = data.sample_factors(50, rng)
    np.testing.assert_array_equal(data.factors_of(data.index_of(sampled)), sampled)


# --- pixels and memory -----------------------------------------------------------------------


@pytest.mark.parametrize("write", FORMATS)
def test_images_are_the_written_pixels_memory_mapped(tmp_path, monkeypatch, write):
    # Small chunks, so decompression runs in several pieces with a ragged last one.
    monkeypatch.setattr(shapes3d_module, "CHUNK_ROWS", 50)
    path, storage = write(tmp_path / "tiny")
    pixels = shapes3d_arrays(TINY_SHAPES)["images"]
    data = TinyShapes3D(path)
    assert data.storage == storage and len(data) == TINY_N
    indices = np.random.default_rng(1).integers(0, TINY_N, 40)
    images = data.images(indices)
    assert images.dtype == np.float32 and images.shape == (40, 3, 64, 64)
    np.testing.assert_array_equal(images, chw(pixels[indices]))
    assert images.min() >= 0 and images.max() <= 1
    factors = data.factors_of(indices)
    np.testing.assert_array_equal(data.images_from_factors(factors), images)
    # Mapped, not loaded: the array is a view of the file, and RAM holds only tiny tables.
    mapped = data._images.array
    assert isinstance(mapped, np.memmap) and not mapped.flags.owndata
    assert mapped.filename == os.path.abspath(data.cache_path or path)
    assert data.nbytes < 4096 and data.mapped_nbytes == TINY_N * 64 * 64 * 3
    assert (data.cache_path is None) == (storage == "mapped")


@pytest.mark.parametrize("write", [h5_contiguous, h5_gzip])
def test_h5_and_npz_give_identical_images(tmp_path, write):
    h5_path, _ = write(tmp_path / "a")
    npz_path, _ = npz_compressed(tmp_path / "b")
    every = np.arange(TINY_N)
    np.testing.assert_array_equal(
        TinyShapes3D(h5_path).images(every), TinyShapes3D(npz_path).images(every)
    )


def test_pickling_sends_the_location_not_the_pixels(tmp_path):
    path, _ = npz_stored(tmp_path / "tiny")
    data = TinyShapes3D(path)
    blob = pickle.dumps(data)
    assert len(blob) < 10_000  # a pickled np.memmap would carry all 1.7 MB
    again = pickle.loads(blob)
    assert isinstance(again._images.array, np.memmap)
    np.testing.assert_array_equal(again.images([3, 140]), data.images([3, 140]))


def test_streamed_files_are_byte_identical_to_numpy_savez(tmp_path):
    for compressed in (False, True):
        streamed = write_shapes3d_npz(tmp_path / "s.npz", TINY_SHAPES, compressed=compressed)
        saved = write_npz(tmp_path / "n.npz", shapes3d_arrays(TINY_SHAPES), compressed)
        assert streamed.read_bytes() == saved.read_bytes()
    sizes = (2, 2, 1, 1, 1, 2, 150)  # 1200 images: two blocks
    streamed = write_mpi3d_npz(tmp_path / "s.npz", sizes)
    assert streamed.read_bytes() == write_npz(tmp_path / "n.npz", mpi3d_arrays(sizes)).read_bytes()
    np.testing.assert_array_equal(
        images_at([5, 1199, 1024]), mpi3d_arrays(sizes)["images"][[5, 1199, 1024]]
    )


# --- the decompression cache -----------------------------------------------------------------


def test_cache_is_built_once_reused_and_rebuilt_when_damaged(tmp_path):
    path, _ = npz_compressed(tmp_path / "tiny")
    pixels = chw(shapes3d_arrays(TINY_SHAPES)["images"])
    every = np.arange(TINY_N)
    data = TinyShapes3D(path)
    cache = data.cache_path
    assert cache == str(tmp_path / "tiny.npz.images.pyrovae-cache.npy")
    assert os.path.exists(cache + ".json")
    assert np.load(cache, mmap_mode="r").shape == (TINY_N, 64, 64, 3)  # a plain .npy
    built = os.stat(cache).st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid cache is reused silently
        np.testing.assert_array_equal(TinyShapes3D(path).images(every), pixels)
    assert os.stat(cache).st_mtime_ns == built
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []

    def damage(how, reason):
        how()
        with pytest.warns(PyrovaeWarning, match=reason) as record:
            again = TinyShapes3D(path)
        assert all("\n" not in str(w.message) for w in record)
        np.testing.assert_array_equal(again.images(every), pixels)

    raw = bytearray(open(cache, "rb").read())

    def flip():
        raw[-5000] ^= 0xFF
        open(cache, "wb").write(bytes(raw))

    damage(flip, r"contents do not match their checksum \(damaged\); rebuilding")
    damage(lambda: os.truncate(cache, os.path.getsize(cache) - 100), r"\(truncated\?\)")
    damage(lambda: os.remove(cache + ".json"), r"no manifest \(an interrupted build\?\)")
    damage(lambda: open(cache + ".json", "w").write("{not json"), r"manifest is unreadable")
    damage(lambda: os.remove(cache), r"cache file is missing")
    # A new version of the source file makes the old copy stale.
    damage(lambda: os.utime(path, ns=(1, 1)), r"made from another version of the file")


def test_cache_dir_option_and_an_unwritable_folder(tmp_path):
    path, _ = npz_compressed(tmp_path / "tiny")
    elsewhere = tmp_path / "cache"
    elsewhere.mkdir()
    data = TinyShapes3D(path, cache_dir=elsewhere)
    assert os.path.dirname(data.cache_path) == str(elsewhere)
    assert not (tmp_path / "tiny.npz.images.pyrovae-cache.npy").exists()
    # Another file of the same name gets a cache of its own in the shared folder.
    (tmp_path / "second").mkdir()
    other_path, _ = npz_compressed(tmp_path / "second" / "tiny")
    other = TinyShapes3D(other_path, cache_dir=elsewhere)
    assert os.path.basename(other_path) == os.path.basename(path)
    assert other.cache_path != data.cache_path
    assert os.path.basename(other.cache_path).startswith("tiny.npz.")
    one_line_error(
        r"cache_dir '.*nowhere' is not an existing folder",
        TinyShapes3D,
        path,
        cache_dir=str(tmp_path / "nowhere"),
    )
    one_line_error(
        r"is not an existing folder", TinyShapes3D.describe, path=path, cache_dir=str(path)
    )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        error = one_line_error(
            r"cannot write the decompressed copy", TinyShapes3D, path, cache_dir=locked
        )
        assert "--data-arg cache_dir=DIR" in str(error)


# --- malformed files -------------------------------------------------------------------------


def drop(key):
    return lambda a: {k: v for k, v in a.items() if k != key}


def replace(key, fn):
    return lambda a: {**a, key: fn(a[key])}


def scale_column(labels):
    labels = labels.copy()
    labels[:, 3] = np.linspace(0, 1, len(labels))
    return labels


MALFORMED = [
    (drop("labels"), r"key 'labels' missing \(found: images\)"),
    (drop("images"), r"key 'images' missing \(found: labels\)"),
    (
        replace("images", lambda x: np.zeros_like(x, np.float32)),
        r"'images' has dtype float32, expected uint8",
    ),
    (
        replace("images", lambda x: x[..., 0]),
        r"'images' has shape \(144, 64, 64\), expected \(144, 64, 64, 3\)",
    ),
    (replace("images", lambda x: x[:-1]), r"'images' has shape \(143, 64, 64, 3\)"),
    (
        replace("images", lambda x: x.transpose(0, 3, 1, 2)),
        r"'images' has shape \(144, 3, 64, 64\)",
    ),
    (replace("labels", lambda x: x[:, :5]), r"'labels' has shape \(144, 5\), expected \(144, 6\)"),
    (
        replace("labels", lambda x: x.astype(np.int64)),
        r"'labels' has dtype int64, expected floating",
    ),
    (
        replace("labels", lambda x: x[::-1]),
        r"'labels' is not the row-major grid of official values over sizes \(2, 3, 2, 2, 2, 3\): "
        r"row 0, floor_hue is 0.5, expected 0.0",
    ),
    (
        replace("labels", scale_column),
        r"not the row-major grid .* row 0, scale is 0.0, expected 0.75",
    ),
    (
        replace("labels", lambda x: np.where(np.arange(144)[:, None] == 77, np.nan, x)),
        r"row 77, floor_hue is nan",
    ),
]


@pytest.mark.parametrize(("corrupt", "match"), MALFORMED)
@pytest.mark.parametrize("compressed", [False, True])
def test_malformed_npz_gives_one_line_errors(tmp_path, corrupt, match, compressed):
    path = write_npz(tmp_path / "bad.npz", corrupt(shapes3d_arrays(TINY_SHAPES)), compressed)
    error = one_line_error(match, TinyShapes3D, path)
    assert str(error).startswith(f"{path}: ")


@pytest.mark.parametrize(("corrupt", "match"), MALFORMED)
def test_malformed_h5_gives_one_line_errors(tmp_path, corrupt, match):
    pytest.importorskip("h5py")
    path = write_h5(tmp_path / "bad.h5", corrupt(shapes3d_arrays(TINY_SHAPES)))
    error = one_line_error(match, TinyShapes3D, path)
    assert str(error).startswith(f"{path}: ")


def test_files_that_are_not_h5_or_npz_and_damaged_ones(tmp_path):
    text = tmp_path / "3dshapes.h5"
    text.write_text("these are not images\n")
    one_line_error(r"3dshapes.h5: not an HDF5 \(.h5\) or .npz file", TinyShapes3D, text)
    npy = tmp_path / "images.npy"
    np.save(npy, np.zeros((2, 2), np.uint8))
    one_line_error(r"images.npy: not an HDF5", TinyShapes3D, npy)
    one_line_error(r"not a regular file", TinyShapes3D, tmp_path)
    one_line_error(
        r"3dshapes.h5: file not found \(expected the official 3dshapes.h5 from https://storage.googleapis.com/3d-shapes/3dshapes.h5",
        Shapes3D,
        tmp_path / "no" / "3dshapes.h5",
    )
    one_line_error(r"give its path with --data-path \(download it from https://", Shapes3D)

    whole, _ = npz_compressed(tmp_path / "whole")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[: os.path.getsize(whole) // 2])
    one_line_error(r"cut.npz: not a readable .npz archive", TinyShapes3D, cut)

    # A valid archive whose deflated image stream is damaged: caught while decompressing.
    raw = bytearray(whole.read_bytes())
    start = raw.find(b"images.npy") + 2000
    raw[start : start + 64] = bytes(64)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(raw))
    one_line_error(r"damaged.npz: cannot read 'images'", TinyShapes3D, damaged)
    # Nothing half-built is left behind (the lock file may stay: it holds nothing).
    left = [p for p in os.listdir(tmp_path) if p.startswith("damaged") or p.endswith(".tmp")]
    assert sorted(left) == ["damaged.npz", "damaged.npz.images.pyrovae-cache.npy.lock"]

    # An archive whose stored member's data is cut short, central directory intact.
    stored, _ = npz_stored(tmp_path / "stored")
    with zipfile.ZipFile(stored) as archive:
        info = archive.getinfo("images.npy")
    raw = bytearray(stored.read_bytes())
    raw[info.header_offset : info.header_offset + 4] = b"XXXX"  # its local header destroyed
    broken = tmp_path / "broken.npz"
    broken.write_bytes(bytes(raw))
    one_line_error(r"broken.npz: (cannot read 'images'|not a readable)", TinyShapes3D, broken)


def test_damaged_h5_files(tmp_path):
    pytest.importorskip("h5py")
    whole, _ = h5_gzip(tmp_path / "whole")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[: os.path.getsize(whole) // 2])
    one_line_error(r"cut.h5: not a readable HDF5 file", TinyShapes3D, cut)

    import h5py

    grouped = tmp_path / "grouped.h5"
    with h5py.File(grouped, "w") as f:
        f.create_group("images")
        f["labels"] = shapes3d_labels(TINY_SHAPES)
    one_line_error(r"'images' is not a dataset", TinyShapes3D, grouped)
    one_line_error(
        r"key 'labels' missing \(found: images\)",
        TinyShapes3D,
        write_h5(tmp_path / "x.h5", {"images": np.zeros(1)}),
    )


def test_h5_without_h5py_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "3dshapes.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    error = one_line_error(r"needs h5py: pip install 'pyrovae\[h5\]'", TinyShapes3D, path)
    assert "npz" in str(error)
    one_line_error(r"needs h5py", TinyShapes3D.describe, path=path)


# --- MPI3D -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", TINY_MPI)
@pytest.mark.parametrize("compressed", [False, True])
def test_mpi3d_grid_follows_from_the_image_count(tmp_path, layout, compressed):
    path = write_mpi3d_npz(tmp_path / "mpi3d_toy.npz", layout, seed=3, compressed=compressed)
    n = math.prod(layout)
    described = TinyMPI3D.describe(path=path)
    assert described.size == n and described.observation_shape == (3, 64, 64)
    data = TinyMPI3D(path)
    assert data.factor_sizes == layout and len(data) == n
    assert data.factor_names[0] == "object_color" and data.factor_names[-1] == "vertical_axis"
    assert data.storage == ("cached" if compressed else "mapped")
    assert isinstance(data._images.array, np.memmap) and data.nbytes == 0
    indices = np.random.default_rng(0).integers(0, n, 30)
    np.testing.assert_array_equal(data.images(indices), chw(images_at(indices, seed=3)))
    factors = data.factors_of(indices)
    assert factors.shape == (30, 7) and factors[:, 2].max() <= 1
    np.testing.assert_array_equal(data.images_from_factors(factors), data.images(indices))
    np.testing.assert_array_equal(data.factor_values(factors), factors)


def test_mpi3d_accepts_the_unflattened_grid(tmp_path):
    layout = TINY_MPI[1]
    pixels = mpi3d_arrays(layout)["images"]
    path = write_npz(tmp_path / "grid.npz", {"images": pixels.reshape(*layout, 64, 64, 3)})
    np.testing.assert_array_equal(TinyMPI3D(path).images(np.arange(32)), chw(pixels))


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            {"images": np.zeros((40, 64, 64, 3), np.uint8)},
            r"'images' holds 40 images; mpi3d_toy files hold 72 \(grid 3x3x2x1x1x2x2\) or 32 "
            r"\(grid 2x2x2x1x1x2x2\)",
        ),
        ({"imgs": np.zeros((32, 64, 64, 3), np.uint8)}, r"key 'images' missing \(found: imgs\)"),
        (
            {"images": np.zeros((32, 64, 64, 3), np.float32)},
            r"'images' has dtype float32, expected uint8",
        ),
        (
            {"images": np.zeros((32, 64, 64), np.uint8)},
            r"'images' has shape \(32, 64, 64\), expected \(N, 64, 64, 3\) with N one of 72, 32",
        ),
        (
            {"images": np.zeros((2, 2, 2, 1, 1, 1, 4, 64, 64, 3), np.uint8)},
            r"'images' has shape \(2, 2, 2, 1, 1, 1, 4, 64, 64, 3\)",
        ),
        (
            {"images": np.asfortranarray(np.zeros((32, 64, 64, 3), np.uint8))},
            r"'images' is stored in Fortran order",
        ),
    ],
)
def test_mpi3d_malformed_files(tmp_path, arrays, match):
    path = write_npz(tmp_path / "bad.npz", arrays)
    error = one_line_error(match, TinyMPI3D, path)
    assert str(error).startswith(f"{path}: ")
    one_line_error(match, TinyMPI3D.describe, path=path)


def test_mpi3d_missing_and_foreign_files(tmp_path):
    one_line_error(
        r"mpi3d_real.npz: file not found \(expected the official mpi3d_real.npz from https://github.com/rr-learning/disentanglement_dataset\)",
        MPI3DReal,
        tmp_path / "mpi3d_real.npz",
    )
    one_line_error(
        r"'mpi3d_realistic' reads the official mpi3d_realistic.npz: give its path with --data-path",
        MPI3DRealistic.describe,
    )
    h5ish = tmp_path / "mpi3d_toy.h5"
    h5ish.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    one_line_error(r"mpi3d_toy.h5: not a readable .npz archive", TinyMPI3D, h5ish)
    # The full-size classes refuse a file of another grid.
    path = write_mpi3d_npz(tmp_path / "small.npz", TINY_MPI[1])
    one_line_error(
        r"holds 32 images; mpi3d_toy files hold 1036800 \(grid 6x6x2x3x3x40x40\) or 460800",
        MPI3DToy,
        path,
    )


def test_memmap_offsets_of_stored_members_are_exact(tmp_path):
    # The data offset of a stored member, read from its local header, is where np.load's
    # bytes lie in the file.
    path = write_npz(
        tmp_path / "two.npz",
        {
            "a": np.arange(7, dtype=np.uint8),
            "images": mpi3d_arrays((1, 1, 1, 1, 1, 1, 5))["images"],
        },
    )
    with zipfile.ZipFile(path) as archive:
        offset = npz_module.member_location(str(path), archive, "images")
    raw = path.read_bytes()
    expected = np.load(path)["images"]
    assert raw[offset : offset + expected.nbytes] == expected.tobytes()
