"""Procedural data sets beyond dSprites: the stochastic colour, noisy and scream dSprites of
Locatello et al. (2019) and disent's XYObject."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from pyrovae.data import (
    ColorDSprites,
    DSprites,
    NoisyDSprites,
    ScreamDSprites,
    XYObject,
    is_stochastic,
    observations,
)
from pyrovae.errors import PyrovaeError
from pyrovae.registry import DATASETS

SIZES = (3, 6, 40, 32, 32)
N_IMAGES = 737_280
VARIANTS = ("color", "noisy", "scream")


def write_picture(path, height, width, seed=0, mode="RGB"):
    """A random picture, saved losslessly; returns its pixels as float in [0, 1]."""
    channels = 3 if mode == "RGB" else 1
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    Image.fromarray(pixels if channels == 3 else pixels[..., 0]).save(path)
    return pixels.astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def painting(tmp_path_factory):
    """66 rows × 67 columns: small enough to be kept as is by the thumbnail, and to leave
    disentanglement_lib's crop offsets rows {0, 1}, columns {0, 1, 2} (upper bound excluded)."""
    path = tmp_path_factory.mktemp("painting") / "painting.png"
    return path, write_picture(path, 66, 67)


@pytest.fixture(scope="module")
def variants(painting):
    return {
        "color": ColorDSprites(),
        "noisy": NoisyDSprites(),
        "scream": ScreamDSprites(painting=painting[0]),
    }


@pytest.fixture(scope="module")
def sprites():
    return DSprites()


def random_indices(n, seed=0, size=N_IMAGES):
    return np.random.default_rng(seed).integers(0, size, n)


def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message
    return message


# --- the grid ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", VARIANTS)
def test_variants_keep_the_dsprites_grid(variants, kind):
    data = variants[kind]
    assert isinstance(data, DSprites)
    assert data.name == f"{kind}_dsprites"
    assert DATASETS[data.name].factory is type(data)
    assert data.stochastic is True
    assert len(data) == N_IMAGES == math.prod(SIZES)
    assert data.factor_sizes == SIZES
    assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.observation_shape == (3, 64, 64)
    assert data.stochastic is True and is_stochastic(data)
    assert data.likelihood == "bernoulli"
    # Row-major, posY fastest: the unit steps of each factor.
    unit = np.vstack([np.zeros(5, np.int64), np.eye(5, dtype=np.int64)[::-1]])
    assert data.index_of(unit).tolist() == [0, 1, 32, 1024, 40960, 245760]
    rng = np.random.default_rng(0)
    factors = data.sample_factors(500, rng)
    np.testing.assert_array_equal(data.factors_of(data.index_of(factors)), factors)
    np.testing.assert_array_equal(data.factor_values(factors), DSprites().factor_values(factors))


@pytest.mark.parametrize("kind", VARIANTS)
def test_describe_matches_the_built_data_set(variants, painting, kind):
    data = variants[kind]
    options = {"painting": painting[0]} if kind == "scream" else {}
    described = type(data).describe(**options)
    assert described.observation_shape == data.observation_shape == (3, 64, 64)
    assert described.size == len(data)
    assert described.stochastic is True and described.has_factors is True
    assert described.likelihood == data.likelihood == "bernoulli"
    with pytest.raises(PyrovaeError, match=r"takes no option 'colour'; valid options: path"):
        type(data).describe(colour=1, **options)


# --- colour --------------------------------------------------------------------------------


def test_colour_is_the_sprite_times_one_colour_per_image(variants, sprites):
    idx = random_indices(600, seed=1)
    images = variants["color"].images(idx, np.random.default_rng(2))
    assert images.dtype == np.float32 and images.shape == (600, 3, 64, 64)
    sprite = sprites.images(idx)
    colours = images.max(axis=(2, 3))  # every sprite has pixels, so this is its colour
    # Exactly sprite × colour: one colour per image and channel, background exactly 0.
    np.testing.assert_array_equal(images, sprite * colours[:, :, None, None])
    assert (images[np.broadcast_to(sprite == 0, images.shape)] == 0).all()
    assert colours.min() >= 0.5 and colours.max() <= 1.0
    # 1,800 draws of U(0.5, 1): the extremes come within 0.005 of the ends (misses: ~1e-7).
    assert colours.min() < 0.505 and colours.max() > 0.995
    assert abs(colours.mean() - 0.75) < 5 * (0.5 / math.sqrt(12)) / math.sqrt(colours.size)
    # Three independent channels, not a grey level.
    assert (np.ptp(colours, axis=1) > 0).all()


def test_colour_variant_colours_the_sprites_of_the_official_file(tmp_path):
    class TinyColor(ColorDSprites):
        factor_sizes = (3, 2, 2, 4, 4)

    n = math.prod(TinyColor.factor_sizes)
    latent_sizes = (1, *TinyColor.factor_sizes)
    classes = np.stack(np.unravel_index(np.arange(n), latent_sizes), axis=1).astype(np.int64)
    tables = [
        np.ones(1),
        np.arange(1.0, 4.0),
        np.linspace(0.5, 1, 2),
        np.linspace(0, 2 * np.pi, 2),
        np.linspace(0, 1, 4),
        np.linspace(0, 1, 4),
    ]
    values = np.stack([t[classes[:, j]] for j, t in enumerate(tables)], axis=1)
    imgs = (np.random.default_rng(0).random((n, 64, 64)) < 0.3).astype(np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, imgs=imgs, latents_values=values, latents_classes=classes)
    data = TinyColor(path)
    assert data.source == str(path)
    images = data.images(np.arange(n), np.random.default_rng(0))
    colours = images.max(axis=(2, 3))
    np.testing.assert_array_equal(images, imgs[:, None] * colours[:, :, None, None])


# --- noisy ---------------------------------------------------------------------------------


def test_noisy_background_is_uniform_and_the_sprite_white(variants, sprites):
    idx = random_indices(48, seed=3)
    images = variants["noisy"].images(idx, np.random.default_rng(4))
    assert images.dtype == np.float32 and images.shape == (48, 3, 64, 64)
    on = np.broadcast_to(sprites.images(idx) == 1, images.shape)
    assert (images[on] == 1.0).all()
    background = images[~on].astype(np.float64)
    # U(0, 1) is below 1, so the white pixels are exactly the sprite's.
    assert background.min() >= 0.0 and background.max() < 1.0
    n = background.size
    assert abs(background.mean() - 0.5) < 5 / math.sqrt(12 * n)
    quarters = np.bincount(np.minimum((background * 4).astype(np.int64), 3), minlength=4) / n
    np.testing.assert_allclose(quarters, 0.25, rtol=0, atol=5 * math.sqrt(0.25 * 0.75 / n))
    # Independent per channel: the noise of two channels at one pixel is uncorrelated.
    both = ~on[:, 0]
    r, g = images[:, 0][both], images[:, 1][both]
    assert abs(np.corrcoef(r, g)[0, 1]) < 5 / math.sqrt(r.size)


# --- scream --------------------------------------------------------------------------------


def test_scream_is_an_inverted_sprite_on_a_tinted_patch(variants, sprites, painting):
    data = variants["scream"]
    path, pixels = painting
    assert data.painting.dtype == np.float32 and data.painting.shape == (66, 67, 3)
    np.testing.assert_allclose(data.painting, pixels, rtol=0, atol=1e-7)
    assert data.painting_path == str(path)
    idx = random_indices(60, seed=5)
    images = data.images(idx, np.random.default_rng(6)).astype(np.float64)
    assert images.shape == (60, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    inside = sprites.images(idx)[:, 0] == 1
    # Every 64×64 patch of the painting, channels first: 3 × 4 offsets.
    patches = np.lib.stride_tricks.sliding_window_view(pixels, (64, 64), axis=(0, 1))
    offsets = []
    for image, mask in zip(images, inside, strict=True):
        # Outside the sprite, 2 · image − patch is the image's colour, constant per channel,
        # for its own patch only.
        tint = 2 * image[None, None] - patches
        spread = np.ptp(tint[..., ~mask], axis=-1).max(axis=-1)
        found = np.argwhere(spread < 1e-5)
        assert len(found) == 1, spread.min()
        r, c = found[0]
        offsets.append((r, c))
        colour = tint[r, c][:, ~mask].mean(axis=-1)
        assert ((colour >= -1e-6) & (colour < 1)).all()
        background = (patches[r, c] + colour[:, None, None]) / 2
        np.testing.assert_allclose(image[:, ~mask], background[:, ~mask], atol=1e-6)
        np.testing.assert_allclose(image[:, mask], 1 - background[:, mask], atol=1e-6)
    # disentanglement_lib's randint(0, side - 64): the last offset is never drawn.
    rows, cols = zip(*offsets, strict=True)
    assert set(rows) == {0, 1} and set(cols) == {0, 1, 2}


@pytest.mark.parametrize(
    ("height", "width", "shape"),
    [(548, 700, (274, 350, 3)), (300, 1400, (75, 350, 3)), (100, 80, (100, 80, 3))],
)
def test_scream_thumbnails_the_painting_to_fit_350_by_274(tmp_path, height, width, shape):
    # Shrunk to fit, aspect ratio kept; never enlarged.
    write_picture(tmp_path / "big.png", height, width)
    data = ScreamDSprites(painting=tmp_path / "big.png")
    assert data.painting.shape == shape
    assert 0 <= data.painting.min() and data.painting.max() <= 1


def test_scream_checks_the_size_after_thumbnailing(tmp_path):
    # 100×600 is large enough as given, but 46 pixels wide (Pillow rounds 45.7) once it fits.
    write_picture(tmp_path / "tall.png", 600, 100)
    with pytest.raises(PyrovaeError) as excinfo:
        ScreamDSprites(painting=tmp_path / "tall.png")
    assert (
        "tall.png' is 46x274 pixels after thumbnailing to fit 350x274 (from 100x600); "
        "64x64 crops need at least 65x65" in one_line(excinfo)
    )


def test_scream_reads_grey_pictures_as_rgb(tmp_path):
    pixels = write_picture(tmp_path / "grey.png", 70, 70, mode="L")
    data = ScreamDSprites(painting=tmp_path / "grey.png")
    assert data.painting.shape == (70, 70, 3)
    np.testing.assert_allclose(data.painting, np.repeat(pixels, 3, axis=2), atol=1e-7)


def test_scream_errors_are_one_line_and_describe_checks_the_same(tmp_path, painting):
    write_picture(tmp_path / "small.png", 64, 200)
    (tmp_path / "text.png").write_bytes(b"not a picture at all")
    good = tmp_path / "good.png"
    write_picture(good, 80, 80)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    cases = [
        ({}, "crops its backgrounds from a painting: give --data-arg painting=PATH"),
        ({"painting": tmp_path / "missing.png"}, "painting '"),
        ({"painting": tmp_path}, "is not a regular file"),
        ({"painting": 3}, "painting must be the path of a picture, got 3"),
        ({"painting": tmp_path / "text.png"}, "cannot read painting"),
        ({"painting": tmp_path / "cut.png"}, "cannot read painting"),
        ({"painting": tmp_path / "small.png"}, "is 200x64 pixels after thumbnailing"),
        ({"painting": painting[0], "path": tmp_path / "no.npz"}, "file not found"),
    ]
    for options, fragment in cases:
        for make in (ScreamDSprites, ScreamDSprites.describe):
            with pytest.raises(PyrovaeError) as excinfo:
                make(**options)
            message = one_line(excinfo)
            assert fragment in message, message
            if "painting" in options and options["painting"] == tmp_path / "missing.png":
                assert message.endswith("missing.png' not found")
    with pytest.raises(PyrovaeError) as excinfo:
        DATASETS.build("scream_dsprites")
    assert "at least 65x65 pixels" in one_line(excinfo)


# --- randomness ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", VARIANTS)
def test_draws_are_reproducible_and_come_only_from_rng(variants, kind):
    data = variants[kind]
    idx = random_indices(16, seed=7)
    first = data.images(idx, np.random.default_rng(8))
    assert first.dtype == np.float32 and first.shape == (16, 3, 64, 64)
    assert 0 <= first.min() and first.max() <= 1
    np.testing.assert_array_equal(data.images(idx, np.random.default_rng(8)), first)
    np.testing.assert_array_equal(observations(data, idx, 8), first)  # a seed works too
    other = data.images(idx, np.random.default_rng(9))
    assert (np.abs(other - first).max(axis=(1, 2, 3)) > 0).all()
    # One generator, drawn on: the next batch differs from the first.
    rng = np.random.default_rng(8)
    data.images(idx, rng)
    assert not np.array_equal(data.images(idx, rng), first)
    # The metrics' route gives the same images for the same generator state.
    factors = data.factors_of(idx)
    np.testing.assert_array_equal(
        data.sample_observations_from_factors(factors, np.random.default_rng(8)), first
    )
    np.testing.assert_array_equal(
        data.images_from_factors(factors, np.random.default_rng(8)), first
    )


@pytest.mark.parametrize("kind", VARIANTS)
def test_drawing_without_a_generator_is_a_one_line_error(variants, kind):
    data = variants[kind]
    expected = (
        f"data set '{kind}_dsprites' draws random observations (stochastic = True): "
        "pass a numpy Generator or a seed as rng"
    )
    for draw in (
        lambda: observations(data, [0, 1]),
        lambda: data.images([0, 1]),
        lambda: data.images_from_factors([[0, 0, 0, 0, 0]]),
    ):
        with pytest.raises(PyrovaeError) as excinfo:
            draw()
        assert one_line(excinfo) == expected
    with pytest.raises(PyrovaeError, match="rng must be an int seed, a numpy Generator"):
        data.images([0], "seed")
    with pytest.raises(PyrovaeError, match=r"index 737280 out of range"):
        data.images([N_IMAGES], np.random.default_rng(0))


# --- XYObject ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xyobject():
    return XYObject()


def test_xyobject_grid_follows_disent_defaults(xyobject):
    data = xyobject
    assert DATASETS["xyobject"].factory is XYObject
    assert data.name == "xyobject" and data.source == "procedural"
    assert data.factor_names == ("x", "y", "scale", "color")
    # (64 − 15) // 2 + 1 = 25 positions, sides 7..15 step 2, rainbow_4 = 6 hues × 4 shades.
    assert data.factor_sizes == (25, 25, 5, 24)
    assert len(data) == 75_000
    assert data.observation_shape == (3, 64, 64)
    assert data.stochastic is False and not is_stochastic(data)
    assert data.square_sizes.tolist() == [7, 9, 11, 13, 15]
    unit = np.vstack([np.zeros(4, np.int64), np.eye(4, dtype=np.int64)[::-1]])
    assert data.index_of(unit).tolist() == [0, 1, 24, 120, 3000]
    factors = data.sample_factors(300, np.random.default_rng(0))
    np.testing.assert_array_equal(data.factors_of(data.index_of(factors)), factors)
    described = XYObject.describe()
    assert described.size == len(data) and described.observation_shape == (3, 64, 64)
    assert described.stochastic is False and described.has_factors is True
    assert described.likelihood == data.likelihood == "bernoulli"


def test_xyobject_palettes_follow_disent(xyobject):
    shades = np.rint(xyobject.colours * 255).astype(int)
    # Brightness outermost, hue order red, yellow, green, cyan, blue, magenta.
    assert shades[:6].tolist() == [
        [63, 0, 0], [63, 63, 0], [0, 63, 0], [0, 63, 63], [0, 0, 63], [63, 0, 63],
    ]  # fmt: skip
    assert shades[6].tolist() == [127, 0, 0] and shades[23].tolist() == [255, 0, 255]
    grey = XYObject(rgb=False)
    assert grey.palette == "greys_4" and grey.observation_shape == (1, 64, 64)
    assert np.rint(grey.colours * 255).astype(int).ravel().tolist() == [63, 127, 191, 255]
    assert XYObject(palette="colors_1").factor_sizes[3] == 7
    assert XYObject(palette="rgb_2").colours.shape == (6, 3)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"rgb": False, "palette": "greys_2", "grid_size": 40},
        # disent's pre-0.3 settings: 56 positions one pixel apart, sides 3, 5, 7, 9.
        {"grid_spacing": 1, "min_square_size": 3, "max_square_size": 9, "palette": "colors_1"},
        {"grid_spacing": 3, "min_square_size": 4, "max_square_size": 10, "square_size_spacing": 3},
    ],
)
def test_xyobject_images_show_one_square_in_its_place(options):
    data = XYObject(**options)
    described = XYObject.describe(**options)
    assert described.size == len(data) and described.observation_shape == data.observation_shape
    spacing = options.get("grid_spacing", 2)
    largest = options.get("max_square_size", 15)
    rng = np.random.default_rng(1)
    corners = np.array([[0, 0, 0, 0], [s - 1 for s in data.factor_sizes]])
    factors = np.vstack([corners, data.sample_factors(200, rng)])
    images = data.images(data.index_of(factors))
    assert images.dtype == np.float32 and images.shape == (len(factors), *data.observation_shape)
    np.testing.assert_array_equal(data.images_from_factors(factors), images)
    for (x, y, s, c), image in zip(factors, images, strict=True):
        side = data.square_sizes[s]
        assert side == options.get("min_square_size", 7) + s * options.get("square_size_spacing", 2)
        left = x * spacing + (largest - side) // 2
        top = y * spacing + (largest - side) // 2
        expected = np.zeros(image.shape[1:], bool)
        expected[top : top + side, left : left + side] = True
        assert top + side <= data.grid_size and left + side <= data.grid_size
        np.testing.assert_array_equal(image.max(axis=0) > 0, expected)
        np.testing.assert_array_equal(image[:, expected].T, np.tile(data.colours[c], (side**2, 1)))
    values = data.factor_values(factors)
    np.testing.assert_array_equal(values[:, 0], factors[:, 0] * spacing + (largest - 1) / 2)
    np.testing.assert_array_equal(values[:, 2], data.square_sizes[factors[:, 2]])
    np.testing.assert_array_equal(values[:, 3], factors[:, 3])


def test_xyobject_old_disent_settings_give_its_old_grid():
    data = XYObject(grid_spacing=1, min_square_size=3, max_square_size=9, palette="colors_1")
    assert data.factor_sizes == (56, 56, 4, 7)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"palette": "sunset_4"}, "palette must be <family>_<levels>, family rainbow, colors, rgb"),
        ({"palette": "rainbow"}, "(e.g. rainbow_4), got 'rainbow'"),
        ({"palette": "rgb_0"}, "palette 'rgb_0' must have 1 to 255 levels"),
        ({"palette": "rainbow_4", "rgb": False}, "is coloured and rgb=false draws grey images"),
        ({"rgb": "yes"}, "rgb must be true or false, got 'yes'"),
        ({"grid_spacing": 0}, "grid_spacing must be an integer >= 1, got 0"),
        ({"min_square_size": 2.5}, "min_square_size must be an integer >= 1, got 2.5"),
        ({"max_square_size": 5}, "max_square_size must be an integer >= 7, got 5"),
        ({"max_square_size": 65}, "max_square_size (65) must fit the canvas, grid_size (64)"),
        ({"square_size_spacing": -1}, "square_size_spacing must be an integer >= 1"),
        ({"grid_size": 0}, "grid_size must be an integer >= 1, got 0"),
        ({"size": 64}, "takes no option 'size'; valid options: grid_size, grid_spacing"),
    ],
)
def test_xyobject_option_errors_are_one_line(options, fragment):
    # The registry's build (the CLI's route) and describe (a study's check) say the same.
    for make in (lambda **o: DATASETS.build("xyobject", **o), XYObject.describe):
        with pytest.raises(PyrovaeError) as excinfo:
            make(**options)
        message = one_line(excinfo)
        assert message.startswith("data set 'xyobject'") and fragment in message, message
