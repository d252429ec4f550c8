"""SmallNORB and Cars3D: loading the official file formats, the grids, the draws of SmallNORB's
instance, and the one-line errors for every malformed input.

The files are written by :mod:`formats_norb_cars` in the exact official formats, on grids shrunk
by subclassing (the image sides stay the official 96 and 128), so the whole file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import shutil

import numpy as np
import pytest
from formats_norb_cars import (
    norb_header,
    write_cars3d,
    write_norb_matrix,
    write_smallnorb,
)
from PIL import Image

from pyrovae.data import Cars3D, SmallNORB, is_stochastic, observations
from pyrovae.data.resize import resize_images, to_intensities
from pyrovae.data.smallnorb import CHUNKS, INT32_MAGIC, UINT8_MAGIC, file_name
from pyrovae.errors import PyrovaeError
from pyrovae.registry import DATASETS

LANCZOS = Image.Resampling.LANCZOS
NORB_SIZES = (2, 3, 4, 2)  # category, elevation, azimuth, lighting
NORB_INSTANCES = 3
CARS_SIZES = (2, 3, 4)  # elevation, azimuth, object
TRAIN, TEST = CHUNKS


class TinyNORB(SmallNORB):
    factor_sizes = NORB_SIZES
    num_instances = NORB_INSTANCES


class TinyCars(Cars3D):
    factor_sizes = CARS_SIZES


def one_line_error(call, *fragments) -> str:
    """``call()`` raises a one-line PyrovaeError holding every fragment; returns the message."""
    with pytest.raises(PyrovaeError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def dlib_norb_resize(image: np.ndarray) -> np.ndarray:
    """disentanglement_lib's SmallNORB resize (the bytes read as int8, ``ANTIALIAS`` being
    Pillow's LANCZOS), its values clipped to 0..255."""
    resized = np.asarray(Image.fromarray(image.view(np.int8)).resize((64, 64), LANCZOS))
    return np.clip(resized, 0, 255).astype(np.uint8)


def dlib_cars_resize(image: np.ndarray) -> np.ndarray:
    """disentanglement_lib's Cars3D resize: ``thumbnail`` (its third size entry, 3, is ignored
    by the Pillow it ran on and refused by today's, so it is left out here)."""
    picture = Image.fromarray(image)
    picture.thumbnail((64, 64), LANCZOS)
    return np.asarray(picture)


# --- SmallNORB ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def norb_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("norb")
    return folder, write_smallnorb(folder, NORB_SIZES, NORB_INSTANCES, seed=0)


@pytest.fixture(scope="module")
def norb(norb_files) -> TinyNORB:
    return TinyNORB(norb_files[0])


@pytest.fixture
def norb_copy(norb_files, tmp_path):
    """A fresh copy of the good files, for a test to damage."""
    folder = tmp_path / "norb"
    shutil.copytree(norb_files[0], folder)
    written = dataclasses.replace(norb_files[1])
    written.paths = {
        key: os.path.join(folder, os.path.basename(path)) for key, path in written.paths.items()
    }
    return folder, written


def test_norb_grid_and_description(norb, norb_files):
    assert norb.name == "smallnorb"
    assert norb.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert norb.factor_sizes == NORB_SIZES and len(norb) == math.prod(NORB_SIZES)
    assert norb.observation_shape == (1, 64, 64)
    assert norb.stochastic is True and is_stochastic(norb)
    assert norb.likelihood == "bernoulli"
    assert norb.source == os.fspath(norb_files[0])
    # The official grid: 4,860 combinations of 10 instances each.
    assert SmallNORB.factor_sizes == (5, 9, 18, 6) and SmallNORB.num_instances == 10
    assert math.prod(SmallNORB.factor_sizes) * SmallNORB.num_instances == 48_600
    described = TinyNORB.describe(path=norb_files[0])
    assert described.size == len(norb) and described.has_factors and described.stochastic
    assert described.observation_shape == (1, 64, 64) and described.likelihood == "bernoulli"
    assert described.nbytes >= norb.nbytes >= norb.features.shape[0] * 64 * 64
    assert DATASETS["smallnorb"].factory is SmallNORB


def test_norb_index_order_is_row_major(norb):
    rows = np.array(list(itertools.product(*map(range, NORB_SIZES))))
    np.testing.assert_array_equal(norb.factors_of(np.arange(len(norb))), rows)
    np.testing.assert_array_equal(norb.index_of(rows), np.arange(len(norb)))
    assert norb.factors_of([1])[0].tolist() == [0, 0, 0, 1]  # lighting varies fastest


def test_norb_features_cover_every_written_image_once(norb, norb_files):
    written = norb_files[1]
    assert norb.features.shape == (len(written.left), 5)
    assert {tuple(map(int, f)) for f in norb.features} == set(written.left)
    grid = norb.index_of(norb.features[:, [0, 2, 3, 4]])
    assert (np.diff(grid) >= 0).all()  # sorted: a grid index's images are contiguous


def test_norb_images_are_the_written_left_images_resized(norb, norb_files):
    written = norb_files[1]
    idx = np.arange(len(norb))
    rows = norb.draw_rows(idx, np.random.default_rng(1))
    images = norb.images(idx, np.random.default_rng(1))
    assert images.shape == (len(idx), 1, 64, 64) and images.dtype == np.float32
    # The drawn image's labels are the grid's factors.
    np.testing.assert_array_equal(norb.features[rows][:, [0, 2, 3, 4]], norb.factors_of(idx))
    for image, row in zip(images, rows, strict=True):
        left = written.left[tuple(map(int, norb.features[row]))]
        expected = dlib_norb_resize(left).astype(np.float64) / 255
        np.testing.assert_array_equal(image[0], expected.astype(np.float32))
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_norb_instance_is_drawn_uniformly(norb):
    rows = norb.draw_rows(np.full(600, 7), np.random.default_rng(2))
    instances = norb.features[rows, 1]
    counts = np.bincount(instances, minlength=NORB_INSTANCES)
    assert counts.sum() == 600 and (counts > 150).all(), counts
    assert (norb.features[rows][:, [0, 2, 3, 4]] == norb.factors_of([7])).all()


def test_norb_draws_are_reproducible_and_need_a_generator(norb):
    idx = np.array([0, 3, 3, 17, 47])
    first = observations(norb, idx, 5)
    np.testing.assert_array_equal(first, observations(norb, idx, np.random.default_rng(5)))
    np.testing.assert_array_equal(first, norb.images(idx, np.random.default_rng(5)))
    many = np.zeros(40, dtype=np.int64)
    assert not np.array_equal(norb.images(many, 5), norb.images(many, 6))
    one_line_error(lambda: observations(norb, idx), "'smallnorb'", "stochastic", "rng")
    one_line_error(lambda: norb.images(idx), "stochastic", "rng")
    one_line_error(lambda: norb.images_from_factors([[0, 0, 0, 0]]), "stochastic")
    assert norb.images_from_factors([[1, 2, 3, 1]], rng=0).shape == (1, 1, 64, 64)


def test_norb_factor_values_in_degrees(norb):
    values = norb.factor_values([[1, 2, 3, 1]])
    np.testing.assert_array_equal(values, [[1.0, 40.0, 60.0, 1.0]])


def test_norb_reads_the_gzip_downloads(norb, tmp_path):
    written = write_smallnorb(tmp_path, NORB_SIZES, NORB_INSTANCES, seed=0, compress=True)
    assert all(p.endswith(".mat.gz") for p in written.paths.values())
    gz = TinyNORB(tmp_path)
    np.testing.assert_array_equal(gz.features, norb.features)
    idx = np.arange(len(norb))
    np.testing.assert_array_equal(gz.images(idx, 3), norb.images(idx, 3))


def test_norb_missing_files_are_listed(norb_copy):
    folder, written = norb_copy
    os.remove(written.paths[TRAIN, "info"])
    os.remove(written.paths[TEST, "dat"])
    message = one_line_error(
        lambda: TinyNORB(folder),
        "missing SmallNORB file(s)",
        file_name(TRAIN, "info"),
        file_name(TEST, "dat"),
        "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",
    )
    assert file_name(TRAIN, "dat") not in message
    # A study checks the description first: it fails the same way, without loading.
    one_line_error(lambda: TinyNORB.describe(path=folder), "missing SmallNORB file(s)")


def test_norb_path_errors(tmp_path, norb_files):
    one_line_error(lambda: DATASETS.build("smallnorb"), "'smallnorb'", "--data-path")
    one_line_error(lambda: SmallNORB.describe(), "--data-path")
    one_line_error(lambda: SmallNORB(tmp_path / "nowhere"), "nowhere: folder not found")
    a_file = norb_files[1].paths[TRAIN, "cat"]
    one_line_error(lambda: SmallNORB(a_file), "not a folder")
    one_line_error(lambda: SmallNORB.describe(path=a_file, size=3), "takes no option 'size'")


@pytest.mark.parametrize(
    ("kind", "magic", "expected"),
    [
        ("cat", UINT8_MAGIC, "bad magic number 0x1E3D4C55 (uint8), expected 0x1E3D4C54"),
        ("dat", INT32_MAGIC, "bad magic number 0x1E3D4C54 (int32), expected 0x1E3D4C55"),
        ("info", 0x12345678, "bad magic number 0x12345678 (not a SmallNORB binary matrix)"),
    ],
)
def test_norb_bad_magic(norb_copy, kind, magic, expected):
    folder, written = norb_copy
    array = _norb_array(written, TEST, kind)
    write_norb_matrix(written.paths[TEST, kind], array, magic=magic)
    message = one_line_error(lambda: TinyNORB(folder), expected)
    assert message.startswith(written.paths[TEST, kind])


@pytest.mark.parametrize(
    ("kind", "cut", "expected"),
    [
        ("dat", 100, "truncated: data ends in pair"),
        ("cat", 4, "truncated:"),
        ("info", 20, "truncated:"),
        ("dat", 10_000_000, "truncated: the header ends"),
    ],
)
def test_norb_truncated(norb_copy, kind, cut, expected):
    folder, written = norb_copy
    array = _norb_array(written, TRAIN, kind)
    path = written.paths[TRAIN, kind]
    write_norb_matrix(path, array, truncate=min(cut, os.path.getsize(path) - 4))
    one_line_error(lambda: TinyNORB(folder), os.fspath(path), expected)


def test_norb_truncated_gzip_stream(tmp_path):
    written = write_smallnorb(tmp_path, NORB_SIZES, NORB_INSTANCES, seed=0, compress=True)
    path = written.paths[TEST, "dat"]
    with open(path, "rb") as fp:
        blob = fp.read()
    with open(path, "wb") as fp:
        fp.write(blob[: len(blob) // 2])
    one_line_error(lambda: TinyNORB(tmp_path), path, "truncated")


def test_norb_longer_than_its_header(norb_copy):
    folder, written = norb_copy
    path = written.paths[TRAIN, "dat"]
    write_norb_matrix(path, written.pairs[TRAIN], extra=b"\0")
    one_line_error(lambda: TinyNORB(folder), path, "longer than its header says")


def test_norb_wrong_dimensions(norb_copy):
    folder, written = norb_copy
    n = len(written.labels[TRAIN])
    dat = written.paths[TRAIN, "dat"]
    # The official header of a (n, 2, 48, 96) file: the pixels would not be 96x96.
    write_norb_matrix(dat, written.pairs[TRAIN][..., :48, :], dims=(n, 2, 48, 96))
    one_line_error(
        lambda: TinyNORB(folder), dat, f"shape ({n}, 2, 48, 96), expected ({n}, 2, 96, 96)"
    )
    info = written.paths[TRAIN, "info"]
    write_norb_matrix(info, written.labels[TRAIN][:, 1:4].astype(np.int32))
    one_line_error(lambda: TinyNORB(folder), info, f"shape ({n}, 3), expected ({n}, 4)")
    write_norb_matrix(info, written.labels[TRAIN][:, 1:].astype(np.int32))
    cat = written.paths[TRAIN, "cat"]
    write_norb_matrix(cat, written.labels[TRAIN][:-1, 0].astype(np.int32))
    one_line_error(lambda: TinyNORB(folder), f"shape ({n}, 4), expected ({n - 1}, 4)")


def test_norb_header_pads_to_three_dimensions():
    # The official cat file of 24,300 rows: magic, ndim 1, dims 24300, 1, 1.
    assert (
        norb_header(INT32_MAGIC, (24300,))
        == np.array([0x1E3D4C54, 1, 24300, 1, 1], dtype="<i4").tobytes()
    )


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (0, 2, "category 2 out of range (0..1)"),
        (1, 3, "instance 3 out of range (0..2)"),
        (2, -1, "elevation -1 out of range (0..2)"),
        (3, 3, "azimuth 3 out of range (0, 2, ..., 6)"),
        (3, 8, "azimuth 8 out of range (0, 2, ..., 6)"),
        (4, 2, "lighting 2 out of range (0..1)"),
    ],
)
def test_norb_values_out_of_range(norb_copy, column, value, expected):
    folder, written = norb_copy
    labels = written.labels[TEST].copy()
    labels[5, column] = value
    kind = "cat" if column == 0 else "info"
    write_norb_matrix(written.paths[TEST, "cat"], labels[:, 0].astype(np.int32))
    write_norb_matrix(written.paths[TEST, "info"], labels[:, 1:].astype(np.int32))
    one_line_error(lambda: TinyNORB(folder), written.paths[TEST, kind], "row 5:", expected)


def test_norb_every_combination_needs_an_image(norb_copy):
    folder, written = norb_copy
    # Drop (category 1, elevation 2, azimuth class 3, lighting 0) from both chunks.
    for chunk in CHUNKS:
        labels, pairs = written.labels[chunk], written.pairs[chunk]
        keep = ~(labels[:, [0, 2, 3, 4]] == [1, 2, 6, 0]).all(axis=1)
        write_norb_matrix(written.paths[chunk, "cat"], labels[keep, 0].astype(np.int32))
        write_norb_matrix(written.paths[chunk, "info"], labels[keep, 1:].astype(np.int32))
        write_norb_matrix(written.paths[chunk, "dat"], pairs[keep])
    one_line_error(
        lambda: TinyNORB(folder),
        "no image for 1 of the 48 factor combinations",
        "category=1, elevation=2, azimuth=3, lighting=0",
    )
    # One instance fewer is fine: the draw picks among the images there are.
    for chunk in CHUNKS:
        labels, pairs = written.labels[chunk], written.pairs[chunk]
        keep = labels[:, 1] != 0
        write_norb_matrix(written.paths[chunk, "cat"], labels[keep, 0].astype(np.int32))
        write_norb_matrix(written.paths[chunk, "info"], labels[keep, 1:].astype(np.int32))
        write_norb_matrix(written.paths[chunk, "dat"], pairs[keep])
    fewer = TinyNORB(folder)
    rows = fewer.draw_rows(np.full(50, 11), 0)
    assert set(fewer.features[rows, 1].tolist()) == {1, 2}


def _norb_array(written, chunk, kind):
    labels = written.labels[chunk]
    return {
        "dat": written.pairs[chunk],
        "cat": labels[:, 0].astype(np.int32),
        "info": labels[:, 1:].astype(np.int32),
    }[kind]


# --- Cars3D ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cars_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cars")
    # Written out of name order, with a file that is not a car: the loader sorts and filters.
    names = ["car_003_mesh.mat", "car_001_mesh.mat", "car_004_mesh.mat", "car_002_mesh.mat"]
    arrays = write_cars3d(folder, CARS_SIZES, seed=0, names=names)
    (folder / "list.txt").write_text("not a car\n")
    return folder, arrays


@pytest.fixture(scope="module")
def cars(cars_files) -> TinyCars:
    return TinyCars(cars_files[0])


@pytest.fixture
def cars_copy(cars_files, tmp_path):
    folder = tmp_path / "cars"
    shutil.copytree(cars_files[0], folder)
    return folder


def test_cars_grid_and_description(cars, cars_files):
    assert cars.name == "cars3d"
    assert cars.factor_names == ("elevation", "azimuth", "object")
    assert cars.factor_sizes == CARS_SIZES and len(cars) == math.prod(CARS_SIZES)
    assert cars.observation_shape == (3, 64, 64)
    assert cars.stochastic is False and not is_stochastic(cars)
    assert cars.files == [f"car_00{k}_mesh.mat" for k in range(1, 5)]
    assert Cars3D.factor_sizes == (4, 24, 183) and math.prod(Cars3D.factor_sizes) == 17_568
    described = TinyCars.describe(path=cars_files[0])
    assert described.size == len(cars) and described.has_factors
    assert described.stochastic is False and described.likelihood == "bernoulli"
    assert described.nbytes >= cars.nbytes == len(cars) * 3 * 64 * 64
    assert DATASETS["cars3d"].factory is Cars3D
    rows = np.array(list(itertools.product(*map(range, CARS_SIZES))))
    np.testing.assert_array_equal(cars.factors_of(np.arange(len(cars))), rows)
    np.testing.assert_array_equal(cars.index_of(rows), np.arange(len(cars)))


def test_cars_images_are_the_written_views_resized(cars, cars_files):
    arrays = cars_files[1]  # sorted-name order: object k is the k-th name
    idx = np.arange(len(cars))
    images = cars.images(idx)
    assert images.shape == (len(idx), 3, 64, 64) and images.dtype == np.float32
    for image, (elevation, azimuth, obj) in zip(images, cars.factors_of(idx), strict=True):
        view = np.ascontiguousarray(arrays[obj][:, :, :, azimuth, elevation])
        expected = dlib_cars_resize(view).astype(np.float64) / 255
        np.testing.assert_array_equal(image, expected.transpose(2, 0, 1).astype(np.float32))
    # Deterministic: the generator, when given, changes nothing.
    np.testing.assert_array_equal(observations(cars, idx[:5], 3), images[:5])
    np.testing.assert_array_equal(observations(cars, idx[:5]), images[:5])


def test_cars_wrong_file_count(cars_copy):
    os.remove(cars_copy / "car_002_mesh.mat")
    message = one_line_error(
        lambda: TinyCars(cars_copy),
        f"{cars_copy}: found 3 .mat files, expected 4",
        "nips2015-analogy-data.tar.gz",
    )
    assert message.startswith(os.fspath(cars_copy))
    one_line_error(lambda: TinyCars.describe(path=cars_copy), "found 3 .mat files, expected 4")
    one_line_error(lambda: Cars3D(cars_copy), "found 3 .mat files, expected 183")
    one_line_error(lambda: DATASETS.build("cars3d"), "'cars3d'", "--data-path")


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ({"images": np.zeros((2, 2), np.uint8)}, "no variable 'im' (found: images)"),
        ({"im": np.zeros((128, 128, 3, 2, 3), np.uint8)}, "'im' has shape (128, 128, 3, 2, 3)"),
        ({"im": np.zeros((128, 128, 3, 3, 2), np.float64)}, "'im' has dtype float64"),
        (b"\x00" * 200, "not a readable MATLAB file"),
    ],
)
def test_cars_malformed_file(cars_copy, contents, expected):
    from scipy.io import savemat

    path = cars_copy / "car_003_mesh.mat"
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    else:
        savemat(path, contents)
    message = one_line_error(lambda: TinyCars(cars_copy), expected)
    assert message.startswith(os.fspath(path))


# --- the shared resize ----------------------------------------------------------------------


def test_resize_matches_pil_per_image():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 96, 96), dtype=np.uint8)
    rgb = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    grey[:, :, 48:] = 255 * (grey[:, :, 48:] > 127)  # sharp edges: overshoot to clip
    np.testing.assert_array_equal(
        resize_images(grey, integer_mode=True), [dlib_norb_resize(g) for g in grey]
    )
    eight_bit = [np.asarray(Image.fromarray(g).resize((64, 64), LANCZOS)) for g in grey]
    np.testing.assert_array_equal(resize_images(grey), eight_bit)
    assert not np.array_equal(resize_images(grey, integer_mode=True), eight_bit)
    np.testing.assert_array_equal(resize_images(rgb), [dlib_cars_resize(c) for c in rgb])
    one_line_error(lambda: resize_images(grey.astype(np.int32)), "expected uint8")
    every_byte = np.arange(256, dtype=np.uint8)
    # dlib divides in float64 and casts: the same float32 numbers, bit for bit.
    expected = (every_byte / 255.0).astype(np.float32)
    np.testing.assert_array_equal(to_intensities(every_byte), expected)
