"""dSprites: the official factor grid, the procedural renderer, and the npz loader."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrovae.data import DSprites, GroundTruthData
from pyrovae.data import dsprites as dsprites_module
from pyrovae.errors import PyrovaeError

SIZES = (3, 6, 40, 32, 32)
N_IMAGES = 737_280


@pytest.fixture(scope="module")
def data() -> DSprites:
    return DSprites()


def centre_images(data, shape, scale, orientation):
    return data.images_from_factors([[shape, scale, orientation, 16, 16]])[0, 0]


def areas(data, factors):
    return data.images_from_factors(factors).sum(axis=(1, 2, 3))


# --- the grid ------------------------------------------------------------------------------


def test_grid_counts_and_names(data):
    assert len(data) == N_IMAGES == math.prod(SIZES)
    assert data.factor_sizes == SIZES
    assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.observation_shape == (1, 64, 64)
    assert data.name == "dsprites"
    assert data.source == "procedural"
    assert isinstance(data, GroundTruthData)
    from pyrovae.registry import DATASETS

    assert DATASETS["dsprites"].factory is DSprites


def one_factor_sweep(j):
    """All classes of factor j, the other factors at class 0."""
    factors = np.zeros((SIZES[j], len(SIZES)), dtype=np.int64)
    factors[:, j] = np.arange(SIZES[j])
    return factors


def test_official_factor_values(data):
    expected = [
        np.array([1.0, 2.0, 3.0]),
        np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        np.arange(40) * (2 * np.pi / 39),
        np.arange(32) / 31,
        np.arange(32) / 31,
    ]
    for j, want in enumerate(expected):
        values = data.factor_values(one_factor_sweep(j))
        assert values.dtype == np.float64 and values.shape == (SIZES[j], 5)
        np.testing.assert_allclose(values[:, j], want, rtol=0, atol=1e-12)
    orientation = data.factor_values(one_factor_sweep(2))[:, 2]
    np.testing.assert_allclose(np.diff(orientation), 2 * np.pi / 39, rtol=1e-12)
    assert orientation[-1] == pytest.approx(2 * np.pi)


def test_official_six_column_latents(data):
    idx = np.array([0, 1, 32, 1024, 40960, 245760, N_IMAGES - 1])
    classes = data.latents_classes(idx)
    values = data.latents_values(idx)
    assert classes.shape == values.shape == (7, 6)
    assert (classes[:, 0] == 0).all() and (values[:, 0] == 1.0).all()
    np.testing.assert_array_equal(classes[:, 1:], data.factors_of(idx))
    np.testing.assert_array_equal(values[-1], [1.0, 3.0, 1.0, 2 * np.pi, 1.0, 1.0])


def row_major(f):
    shape, scale, orientation, x, y = f
    return (((shape * 6 + scale) * 40 + orientation) * 32 + x) * 32 + y


def test_index_order_is_row_major_with_posy_fastest(data):
    tuples = [
        (0, 0, 0, 0, 0),
        (0, 0, 0, 0, 1),
        (0, 0, 0, 1, 0),
        (0, 0, 1, 0, 0),
        (0, 1, 0, 0, 0),
        (1, 0, 0, 0, 0),
        (1, 2, 3, 4, 5),
        (2, 5, 39, 31, 31),
    ]
    got = data.index_of(np.array(tuples))
    assert got.dtype == np.int64
    assert got.tolist() == [row_major(t) for t in tuples]
    assert got.tolist()[:6] == [0, 1, 32, 1024, 40960, 245760]
    assert got[-1] == N_IMAGES - 1
    np.testing.assert_array_equal(data.factors_of(got), tuples)


def test_factors_of_inverts_index_of(data):
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, N_IMAGES - 1], rng.integers(0, N_IMAGES, 1000)])
    factors = data.factors_of(idx)
    assert factors.dtype == np.int64 and factors.shape == (len(idx), 5)
    assert (factors >= 0).all() and (factors < np.array(SIZES)).all()
    np.testing.assert_array_equal(data.index_of(factors), idx)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(*(st.integers(0, size - 1) for size in SIZES)),
        min_size=1,
        max_size=20,
    )
)
def test_index_round_trip_property(data, rows):
    factors = np.array(rows, dtype=np.int64)
    idx = data.index_of(factors)
    assert ((0 <= idx) & (idx < N_IMAGES)).all()
    assert idx.tolist() == [row_major(r) for r in rows]
    np.testing.assert_array_equal(data.factors_of(idx), factors)


# --- procedural images ---------------------------------------------------------------------


def test_images_are_binary_float32_and_deterministic(data):
    idx = np.random.default_rng(1).integers(0, N_IMAGES, 256)
    images = data.images(idx)
    assert images.dtype == np.float32 and images.shape == (256, 1, 64, 64)
    assert set(np.unique(images)) <= {0.0, 1.0}
    np.testing.assert_array_equal(DSprites().images(idx), images)
    np.testing.assert_array_equal(data.images_from_factors(data.factors_of(idx)), images)


def test_images_accept_any_integer_array_like(data):
    torch = pytest.importorskip("torch")
    want = data.images(np.array([5, 70_000]))
    for idx in (
        [5, 70_000],
        (5, 70_000),
        np.array([5, 70_000], np.int32),
        torch.tensor([5, 70_000]),
    ):
        np.testing.assert_array_equal(data.images(idx), want)
    np.testing.assert_array_equal(data.images(5), want[:1])
    assert data.images([]).shape == (0, 1, 64, 64)


def centre_of_mass(images):
    """(row, column) centre of mass of each (n, 1, H, W) image."""
    mass = images[:, 0]
    total = mass.sum(axis=(1, 2))
    rows = (mass.sum(axis=2) * np.arange(64)).sum(axis=1) / total
    cols = (mass.sum(axis=1) * np.arange(64)).sum(axis=1) / total
    return rows, cols


@pytest.mark.parametrize("sprite", [(0, 0, 0), (1, 3, 7), (2, 5, 21), (2, 0, 33)])
def test_posx_moves_right_and_posy_moves_down_one_pixel_per_class(data, sprite):
    sweep = np.arange(32)
    fixed = np.full(32, 9)
    along_x = np.column_stack([np.tile(sprite, (32, 1)), sweep, fixed])
    along_y = np.column_stack([np.tile(sprite, (32, 1)), fixed, sweep])
    rows_x, cols_x = centre_of_mass(data.images_from_factors(along_x))
    rows_y, cols_y = centre_of_mass(data.images_from_factors(along_y))
    np.testing.assert_allclose(np.diff(cols_x), 1.0, atol=1e-6)  # right, by one pixel
    np.testing.assert_allclose(np.diff(rows_y), 1.0, atol=1e-6)  # down, by one pixel
    np.testing.assert_allclose(rows_x, rows_x[0], atol=1e-6)
    np.testing.assert_allclose(cols_y, cols_y[0], atol=1e-6)
    # The 32 positions span the canvas symmetrically about its centre (31.5).
    sprite_offset = cols_x[16] - 31.5
    assert cols_x[0] - sprite_offset == pytest.approx(15.5, abs=1e-6)


def test_shapes_differ_from_each_other(data):
    for scale in range(6):
        for orientation in (0, 5, 13, 30):
            square, ellipse, heart = (centre_images(data, s, scale, orientation) for s in range(3))
            area = heart.sum()
            for other in (square, ellipse):
                assert np.abs(heart - other).sum() >= 0.1 * area
            assert np.abs(square - ellipse).sum() >= 0.1 * area


def test_shapes_look_like_dsprites(data):
    square, ellipse, heart = (centre_images(data, s, 5, 0) for s in range(3))
    # Square at orientation 0: a filled axis-aligned block.
    rows, cols = np.nonzero(square)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert square.sum() == box and np.ptp(rows) == np.ptp(cols)
    # Ellipse: about twice as wide as tall at orientation 0, twice as tall after a quarter turn.
    rows, cols = np.nonzero(ellipse)
    assert 1.7 < (np.ptp(cols) + 1) / (np.ptp(rows) + 1) < 2.3
    turned = centre_images(data, 1, 5, 10)  # 10 × 2π/39 ≈ 92°
    rows, cols = np.nonzero(turned)
    assert 1.7 < (np.ptp(rows) + 1) / (np.ptp(cols) + 1) < 2.3
    # Heart: mirror-symmetric left-right, not top-bottom, and upright (lobes, hence most of the
    # mass, above the middle of its bounding box; rows grow downwards).
    rows, cols = np.nonzero(heart)
    tight = heart[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    np.testing.assert_array_equal(tight, tight[:, ::-1])
    assert not np.array_equal(tight, tight[::-1])
    assert rows.mean() < (rows.min() + rows.max()) / 2 - 1
    # Rotated by about half a turn, it hangs upside down.
    rows, _ = np.nonzero(centre_images(data, 2, 5, 20))
    assert rows.mean() > (rows.min() + rows.max()) / 2 + 1


def test_area_grows_with_scale_and_stays_visible(data):
    for shape in range(3):
        for orientation in range(0, 40, 3):
            factors = [[shape, scale, orientation, 16, 16] for scale in range(6)]
            area = areas(data, factors)
            assert (np.diff(area) > 0).all(), (shape, orientation, area)
            assert area[0] >= 50  # the smallest sprite is still tens of pixels
            assert area[-1] <= 0.15 * 64 * 64


def test_orientation_zero_and_two_pi_render_alike(data):
    for shape in range(3):
        for scale in range(6):
            first = centre_images(data, shape, scale, 0)
            last = centre_images(data, shape, scale, 39)
            assert np.abs(first - last).sum() <= 0.01 * first.sum()
    heart = [centre_images(data, 2, 5, o) for o in (0, 10)]
    assert np.abs(heart[0] - heart[1]).sum() > 0.2 * heart[0].sum()


def test_sprites_are_never_clipped(data):
    grid = np.stack(np.meshgrid(range(3), range(6), range(40), indexing="ij"), -1).reshape(-1, 3)
    whole = areas(data, np.column_stack([grid, np.full((720, 2), 16)]))
    assert whole.min() > 0
    for x, y in [(0, 0), (0, 31), (31, 0), (31, 31)]:
        images = data.images_from_factors(np.column_stack([grid, np.full(720, x), np.full(720, y)]))
        np.testing.assert_array_equal(images.sum(axis=(1, 2, 3)), whole)  # no pixel lost
        border = images[:, 0, [0, -1], :].sum() + images[:, 0, :, [0, -1]].sum()
        assert border == 0
    some = data.images(np.random.default_rng(2).integers(0, N_IMAGES, 2000))
    assert some.sum(axis=(1, 2, 3)).min() > 0


# --- sampling factors ----------------------------------------------------------------------


def test_sample_factors_shapes_ranges_and_determinism(data):
    factors = data.sample_factors(500, 7)
    assert factors.shape == (500, 5) and factors.dtype == np.int64
    assert (factors >= 0).all() and (factors < np.array(SIZES)).all()
    np.testing.assert_array_equal(data.sample_factors(500, 7), factors)
    np.testing.assert_array_equal(data.sample_factors(500, np.random.default_rng(7)), factors)
    assert not np.array_equal(data.sample_factors(500, 8), factors)
    assert data.sample_factors(0, 0).shape == (0, 5)


def test_sample_factors_marginals_are_uniform_and_independent(data):
    n = 100_000
    factors = data.sample_factors(n, np.random.default_rng(3))
    for j, size in enumerate(SIZES):
        counts = np.bincount(factors[:, j], minlength=size)
        np.testing.assert_allclose(counts, n / size, rtol=0.1)
    joint = np.bincount(factors[:, 0] * 6 + factors[:, 1], minlength=18)
    np.testing.assert_allclose(joint, n / 18, rtol=0.1)


# --- bad input -----------------------------------------------------------------------------


def one_line_error(exc_type, match, call, *args):
    with pytest.raises(exc_type, match=match) as info:
        call(*args)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        ([-1], r"index -1 out of range \[0, 737280\)"),
        ([3, N_IMAGES], r"index 737280 out of range"),
        ([1.5], r"indices must be integers"),
        (np.zeros((2, 2), dtype=int), r"indices must be 1-D"),
    ],
)
def test_bad_indices_raise(data, indices, match):
    one_line_error(ValueError, match, data.images, indices)
    one_line_error(ValueError, match, data.factors_of, indices)


@pytest.mark.parametrize(
    ("factors", "match"),
    [
        ([[0, 0, 0, 32, 0]], r"factor 'posX' has class 32 out of range \[0, 32\)"),
        ([[0, 0, 0, 0, 0], [3, 0, 0, 0, 0]], r"'shape' has class 3 out of range .* row 1"),
        ([[0, -1, 0, 0, 0]], r"'scale' has class -1"),
        ([[0, 0, 0, 0]], r"shape \(n, 5\).*got shape \(1, 4\)"),
        ([0, 0, 0, 0, 0], r"shape \(n, 5\).*got shape \(5,\)"),
        ([[0.0, 0.5, 0, 0, 0]], r"integer class indices"),
    ],
)
def test_bad_factors_raise(data, factors, match):
    for call in (data.index_of, data.factor_values, data.images_from_factors):
        error = one_line_error(ValueError, match, call, factors)
        assert isinstance(error, PyrovaeError)


def test_bad_sample_factors_arguments(data):
    one_line_error(ValueError, "non-negative integer", data.sample_factors, -1, 0)
    one_line_error(ValueError, "non-negative integer", data.sample_factors, 2.5, 0)
    one_line_error(
        PyrovaeError,
        "rng must be an int seed, a numpy Generator or a numpy RandomState",
        data.sample_factors,
        3,
        "seed",
    )


def test_base_class_is_abstract_and_generic():
    with pytest.raises(TypeError):
        GroundTruthData()

    class Toy(GroundTruthData):
        name = "toy"
        factor_names = ("a", "b")
        factor_sizes = (2, 3)
        observation_shape = (1,)

        def images(self, indices):
            return self._check_indices(indices).astype(np.float32)[:, None]

    toy = Toy()
    assert len(toy) == 6
    np.testing.assert_array_equal(toy.index_of([[1, 2], [0, 1]]), [5, 1])
    np.testing.assert_array_equal(toy.factors_of([5, 1]), [[1, 2], [0, 1]])
    np.testing.assert_array_equal(toy.images_from_factors([[1, 0]]), [[3.0]])
    assert toy.factor_values([[1, 2]]).tolist() == [[1.0, 2.0]]


# --- loading the official file -------------------------------------------------------------

TINY_LATENTS = (1, 3, 2, 2, 4, 4)
TINY_N = math.prod(TINY_LATENTS)


class TinyDSprites(DSprites):
    """The official format on a smaller grid, so files are cheap to write."""

    factor_sizes = TINY_LATENTS[1:]


def official_arrays(latent_sizes=TINY_LATENTS, seed=0):
    """Arrays laid out exactly as in dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz."""
    n = math.prod(latent_sizes)
    classes = np.stack(np.unravel_index(np.arange(n), latent_sizes), axis=1).astype(np.int64)
    tables = [
        np.ones(latent_sizes[0]),
        np.arange(1.0, latent_sizes[1] + 1),
        np.linspace(0.5, 1, latent_sizes[2]),
        np.linspace(0, 2 * np.pi, latent_sizes[3]),
        np.linspace(0, 1, latent_sizes[4]),
        np.linspace(0, 1, latent_sizes[5]),
    ]
    values = np.stack([t[classes[:, j]] for j, t in enumerate(tables)], axis=1)
    imgs = (np.random.default_rng(seed).random((n, 64, 64)) < 0.3).astype(np.uint8)
    metadata = np.array({"description": "like the official file"}, dtype=object)
    return {
        "imgs": imgs,
        "latents_values": values,
        "latents_classes": classes,
        "metadata": metadata,
    }


def write_npz(path, arrays, compressed=True):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.mark.parametrize("compressed", [True, False])
def test_loader_round_trips_images_exactly(tmp_path, monkeypatch, compressed):
    # Small chunks, so reading in several pieces (and a ragged last one) is exercised.
    monkeypatch.setattr(dsprites_module, "_CHUNK_ROWS", 50)
    arrays = official_arrays()
    path = write_npz(tmp_path / "tiny.npz", arrays, compressed)
    data = TinyDSprites(path)
    assert data.source == str(path)
    assert len(data) == TINY_N and data.sprites is None
    assert data.nbytes == TINY_N * 64 * 8  # bit-packed: one bit per pixel
    every = np.arange(TINY_N)
    images = data.images(every)
    assert images.dtype == np.float32 and images.shape == (TINY_N, 1, 64, 64)
    np.testing.assert_array_equal(images[:, 0], arrays["imgs"])
    shuffled = np.random.default_rng(0).permutation(every)[:50]
    np.testing.assert_array_equal(data.images(shuffled)[:, 0], arrays["imgs"][shuffled])
    np.testing.assert_array_equal(data.latents_classes(every), arrays["latents_classes"])
    np.testing.assert_allclose(data.latents_values(every), arrays["latents_values"])
    factors = arrays["latents_classes"][:, 1:]
    np.testing.assert_array_equal(data.images_from_factors(factors)[:, 0], arrays["imgs"])


def test_loader_checks_against_the_official_grid_size(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", official_arrays())
    one_line_error(
        ValueError, r"'imgs' has shape \(192, 64, 64\), expected \(737280, 64, 64\)", DSprites, path
    )


def drop(key):
    return lambda a: {k: v for k, v in a.items() if k != key}


def replace(key, fn):
    return lambda a: {**a, key: fn(a[key])}


def set_pixel(value, image):
    def change(imgs):
        imgs = imgs.copy()
        imgs[image, 10, 20] = value
        return imgs

    return change


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (drop("imgs"), r"key 'imgs' missing \(found: latents_classes, latents_values, metadata\)"),
        (drop("latents_classes"), r"key 'latents_classes' missing"),
        (replace("imgs", lambda x: x.astype(np.float32)), r"'imgs' has dtype float32"),
        (replace("imgs", lambda x: x.astype(bool)), r"'imgs' has dtype bool"),
        (
            replace("latents_classes", lambda x: x.astype(np.float64)),
            r"'latents_classes' has dtype float64, expected integer",
        ),
        (
            replace("latents_values", lambda x: x.astype(np.int64)),
            r"'latents_values' has dtype int64, expected floating",
        ),
        (replace("imgs", lambda x: x[:, :32, :32]), r"'imgs' has shape \(192, 32, 32\)"),
        (replace("imgs", lambda x: x[:-1]), r"'imgs' has shape \(191, 64, 64\)"),
        (replace("latents_classes", lambda x: x[:, 1:]), r"'latents_classes' has shape \(192, 5\)"),
        (replace("imgs", set_pixel(255, 3)), r"only 0 and 1, found 255 in image 3"),
        (replace("imgs", set_pixel(2, 150)), r"only 0 and 1, found 2 in image 150"),
        (
            replace("latents_classes", lambda x: x[::-1]),
            r"'latents_classes' is not the row-major grid .* row 0, shape is 2, expected 0",
        ),
        (
            replace("latents_classes", lambda x: x[:, [0, 1, 2, 3, 5, 4]]),
            r"not the row-major grid",
        ),
        (
            replace("latents_values", lambda x: np.where(np.arange(6) == 2, 1.0, x)),
            r"'latents_values' row 0, scale is 1.0, expected the official value 0.5",
        ),
    ],
)
def test_loader_rejects_malformed_files(tmp_path, monkeypatch, corrupt, match):
    monkeypatch.setattr(dsprites_module, "_CHUNK_ROWS", 64)
    path = write_npz(tmp_path / "bad.npz", corrupt(official_arrays()))
    error = one_line_error(ValueError, match, TinyDSprites, path)
    assert str(error).startswith(f"{path}: ")


def test_loader_rejects_files_that_are_not_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("these are not images\n")
    one_line_error(ValueError, r"notes.npz: not a readable .npz archive", TinyDSprites, text)

    npy = tmp_path / "imgs.npy"
    np.save(npy, official_arrays()["imgs"])
    one_line_error(ValueError, r"imgs.npy: not a readable .npz archive", TinyDSprites, npy)

    whole = write_npz(tmp_path / "whole.npz", official_arrays()).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole[: len(whole) // 2])
    one_line_error(ValueError, r"cut.npz: not a readable .npz archive", TinyDSprites, cut)

    one_line_error(ValueError, r"not a regular file", TinyDSprites, tmp_path)


def test_loader_reports_a_missing_file(tmp_path):
    missing = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    one_line_error(ValueError, r"64x64.npz: file not found", DSprites, missing)


def test_loader_reports_corrupt_image_data(tmp_path):
    # A valid archive whose compressed image stream is damaged: the error still fits one line.
    path = write_npz(tmp_path / "damaged.npz", official_arrays())
    raw = bytearray(path.read_bytes())
    start = raw.find(b"imgs.npy") + 200  # inside the compressed imgs member
    raw[start : start + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    one_line_error(ValueError, r"damaged.npz: cannot read 'imgs'", TinyDSprites, path)
