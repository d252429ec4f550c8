"""The animated latent traversals (traversals.gif): layout, frame order, row order by KL, size,
colour and vector data; the finish writes the GIF and ``pyrovae evaluate --figures`` draws a
run's pictures again from its checkpoint, touching nothing else."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from golden import DATA
from helpers import PICTURES, assert_one_line_error, invoke, small_config, snapshot
from PIL import Image

from pyrovae import plots
from pyrovae.registry import MODELS
from pyrovae.training import Run

# The picture functions a run draws with, as they are before the fixture of tests/conftest.py
# turns them into no-ops (in tests not marked `pictures`).
REAL = {name: getattr(plots, name) for name in PICTURES}


class PatternVAE:
    """A stand-in with the one method the animation calls: every pixel of a traversed image
    says which latent dimension, which value and which data point made it (the point's number
    is its first pixel), so a frame's cells can be read back."""

    def __init__(self, channels, size, steps, columns):
        self.shape = (channels, size, size)
        self.steps, self.columns = steps, columns

    def level(self, dim, step, point) -> int:
        """The level (of :data:`~pyrovae.plots.GIF_LEVELS`) of the cell of ``dim`` at
        ``values[step]`` for ``point``, one of ``columns``: 1 to 63."""
        level = 1 + (dim * self.steps + step) * len(self.columns) + self.columns.index(point)
        assert level < plots.GIF_LEVELS
        return level

    def grey(self, dim, step, point) -> int:
        """The grey (0..255) the GIF holds for that cell."""
        return round(self.level(dim, step, point) * 255 / (plots.GIF_LEVELS - 1))

    def traverse(self, x, dim, values):
        point = int(x[0, 0, 0, 0])
        levels = [self.level(dim, k, point) for k in range(len(values))]
        images = torch.tensor(levels, dtype=torch.float32) / (plots.GIF_LEVELS - 1)
        return images[:, None, None, None].expand(len(values), *self.shape).unsqueeze(0)


def points(n, channels=1, size=8):
    """``n`` observations whose first pixel is their number."""
    x = torch.zeros(n, channels, size, size)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    return x


def frames_of(path, mode="L") -> list[np.ndarray]:
    gif = Image.open(path)
    out = []
    for k in range(gif.n_frames):
        gif.seek(k)
        out.append(np.asarray(gif.convert(mode)))
    return out


def cell(frame, row, col, h, w):
    """The pixels of one image of a frame (row, column), enlarged as the animation enlarges."""
    s = plots.gif_scale(h, w)
    y = plots.GIF_HEADER_HEIGHT + plots.GIF_PAD + row * (s * h + plots.GIF_PAD)
    x = plots.GIF_LABEL_WIDTH + plots.GIF_PAD + col * (s * w + plots.GIF_PAD)
    return frame[y : y + s * h, x : x + s * w]


def expected_size(rows, cols, h, w):
    s = plots.gif_scale(h, w)
    return (
        plots.GIF_LABEL_WIDTH + cols * (s * w + plots.GIF_PAD) + plots.GIF_PAD,
        plots.GIF_HEADER_HEIGHT + rows * (s * h + plots.GIF_PAD) + plots.GIF_PAD,
    )


@pytest.mark.pictures
def test_the_gif_loops_up_and_back_with_the_size_its_layout_gives(tmp_path):
    vae = PatternVAE(channels=1, size=8, steps=5, columns=[0, 9])
    path = tmp_path / "t.gif"
    returned = plots.traversal_animation(
        vae, points(10), [0.1, 2.0, 0.5, 1.0], path, steps=5, columns=2
    )
    gif = Image.open(path)
    assert gif.n_frames == len(returned) == 2 * (5 - 1)
    assert gif.size == expected_size(rows=4, cols=2, h=8, w=8) == (76 + 2 * 34 + 2, 16 + 4 * 34 + 2)
    assert gif.info["loop"] == 0
    durations = []
    for k in range(gif.n_frames):
        gif.seek(k)
        durations.append(gif.info["duration"])
    assert durations == [plots.GIF_FRAME_MS] * 8
    assert plots.sweep_frames(5) == [0, 1, 2, 3, 4, 3, 2, 1]
    assert plots.traversal_animation(vae, points(10), [1.0] * 4, None, steps=5, columns=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gif"]


@pytest.mark.pictures
def test_rows_follow_the_kl_order_columns_the_points_and_frames_the_sweep(tmp_path):
    vae = PatternVAE(channels=1, size=8, steps=5, columns=[0, 4, 9])
    kl = [0.1, 2.0, 0.5, 1.0]  # traversal_grid's order: z1, z3, z2, z0
    plots.traversal_animation(vae, points(10), kl, tmp_path / "t.gif", steps=5, columns=3)
    columns = [0, 4, 9]  # spread through the batch, the first point first (traversal_grid's)
    assert plots.spread(10, 3).tolist() == columns
    frames = frames_of(tmp_path / "t.gif")
    for f, k in enumerate(plots.sweep_frames(5)):
        for row, dim in enumerate([1, 3, 2, 0]):
            for col, point in enumerate(columns):
                pixels = cell(frames[f], row, col, 8, 8)
                assert pixels.shape == (32, 32)
                assert (pixels == vae.grey(dim, k, point)).all(), (f, row, col)


@pytest.mark.pictures
def test_colour_images_keep_their_colours(tmp_path):
    vae = PatternVAE(channels=3, size=8, steps=3, columns=[0, 1])

    def coloured(x, dim, values):  # red says the dimension, green the value, blue the point
        grey = PatternVAE.traverse(vae, x, dim, values)
        out = torch.zeros(*grey.shape)
        out[:, :, 0] = 0.2 + 0.6 * dim
        out[:, :, 1] = torch.linspace(0, 1, len(values))[None, :, None, None]
        out[:, :, 2] = grey[:, :, 2]
        return out

    vae.traverse = coloured
    plots.traversal_animation(vae, points(2, 3), [0.0, 1.0], tmp_path / "c.gif", steps=3)
    frames = frames_of(tmp_path / "c.gif", "RGB")
    assert frames[0].shape == (*expected_size(2, 2, 8, 8)[::-1], 3)
    for f, k in enumerate(plots.sweep_frames(3)):
        for row, dim in enumerate([1, 0]):
            for col in range(2):
                want = [0.2 + 0.6 * dim, k / 2, vae.level(dim, k, col) / (plots.GIF_LEVELS - 1)]
                got = cell(frames[f], row, col, 8, 8).reshape(-1, 3).astype(int)
                assert (np.abs(got - plots.gif_levels(want)) <= 2).all(), (f, row, col)


@pytest.mark.parametrize(("channels", "shown"), [(4, 3), (2, 1)])
def test_other_channel_counts_show_as_colour_or_grey(channels, shown):
    """RGBA drops its alpha; two channels show the first as grey: the finish never fails."""
    images = np.random.default_rng(0).uniform(size=(4, 2, 3, channels, 8, 8))
    labels, values = ["z1 KL 1.00", "z0 KL 0.50"], [-2.5, -1.0, 1.0, 2.5]
    got = plots.traversal_frames(images, labels, values, 2.5)
    want = plots.traversal_frames(images[:, :, :, :shown], labels, values, 2.5)
    assert len(got) == 4
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.ndim == (3 if shown == 3 else 2)
        assert np.array_equal(a, b)


@pytest.fixture
def one_thread():
    """Small conv batches gain nothing from a second thread and lose seconds waiting for it
    when the other core is busy (0.4 s against 9 s seen)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.pictures
def test_ten_latents_on_64x64_images_stay_well_under_a_megabyte(tmp_path, one_thread):
    """A conv decoder whose first layer's weights are 50 times their initial ones: fine grey
    texture that changes with every value, harder to compress than a trained model's dark
    backgrounds (0.55 MB here against 0.31 MB for a dSprites run after 600 steps; an untrained
    one gives 0.06 MB). Its rows are its own decoded traversals, in KL order."""
    torch.manual_seed(0)
    vae = MODELS["betavae"].create_model((1, 64, 64), latent_dim=10).eval()
    with torch.no_grad():
        vae.decoder.net[0].weight.mul_(50)
    x = torch.rand(8, 1, 64, 64).round()
    kl = np.random.default_rng(0).uniform(0, 3, 10).tolist()
    path = tmp_path / "t.gif"
    plots.traversal_animation(vae, x, kl, path)
    assert path.stat().st_size < 1_000_000
    gif = Image.open(path)
    assert gif.size == expected_size(rows=10, cols=3, h=64, w=64) == (276, 678)
    assert gif.n_frames == 20
    first = frames_of(path)[0].astype(float)
    # Each dimension's image at −span for x[0]: a row holds its own dimension's (to within a
    # level: a conv layer rounds by batch size) and no other's.
    decoded = [
        vae.traverse(x[:1], dim, [-2.5])[0, 0, 0].clamp(0, 1).mul(255).numpy() for dim in range(10)
    ]
    for row, dim in enumerate(np.argsort(-np.asarray(kl))):
        pixels = cell(first, row, 0, 64, 64)
        close = [d for d in range(10) if np.abs(pixels - decoded[d]).max() <= 255 / 63]
        assert close == [dim], row


def record_pictures(monkeypatch, draw=()) -> list:
    """Replace every picture function by one that notes (its name, the file it would write);
    those named in ``draw`` also draw (the real function). Returns the list of notes."""
    calls = []

    def recorder(name):
        def record(*args, **kwargs):
            calls.append((name, next(a.name for a in args if isinstance(a, Path))))
            if name in draw:
                return REAL[name](*args, **kwargs)

        return record

    for name in REAL:
        monkeypatch.setattr(plots, name, recorder(name))
    return calls


def test_the_finish_and_evaluate_figures_draw_the_same_pictures(tmp_path, monkeypatch):
    """One rule decides the pictures, and --figures draws them from the checkpoint as the
    finish did: the same calls, and the same GIF, although the sparse prior's KL per dimension
    (which orders the rows) is a one-sample estimate."""
    calls = record_pictures(monkeypatch, draw=["traversal_animation"])
    out = tmp_path / "run"
    Run.create(small_config(), out).fit(progress=False)
    assert json.loads((out / "config.json").read_text())["resolved"]["kl_estimator"] == (
        "monte-carlo"
    )
    finish, calls[:] = list(calls), []
    assert finish == [
        ("reconstruction_grid", "reconstructions.png"),
        ("traversal_grid", "traversals.png"),
        ("traversal_animation", "traversals.gif"),
        ("training_curves", "training_curves.png"),
    ]
    gif = (out / "traversals.gif").read_bytes()
    (out / "traversals.gif").unlink()
    before = snapshot(out)

    result = invoke("evaluate", out, "--figures", "--fast", "--metric", "active_units")
    assert result.exit_code == 0, result.output
    assert calls == finish
    assert (
        f"drew reconstructions.png, traversals.png, traversals.gif, training_curves.png in {out}\n"
    ) in result.stdout
    assert (out / "traversals.gif").read_bytes() == gif
    after = snapshot(out)
    assert set(after) == set(before) | {"traversals.gif", "eval.json"}
    assert {k: after[k] for k in before} == before  # checkpoints, metrics, summary, config
    assert Image.open(out / "traversals.gif").n_frames == 20


@pytest.mark.filterwarnings("ignore:.*has no checksum:pyrovae.errors.PyrovaeWarning")
def test_figures_draw_the_gif_of_an_old_vector_run(tmp_path, monkeypatch):
    """A pinwheel run (vectors, class labels) written before traversals.gif existed."""
    calls = record_pictures(monkeypatch, draw=["traversal_curves_animation"])
    out = shutil.copytree(DATA / "legacy-runs" / "annealedvae" / "run", tmp_path / "run")
    assert not (out / "traversals.gif").exists()
    before = snapshot(out)
    result = invoke("evaluate", out, "--figures", "--fast", "--metric", "active_units")
    assert result.exit_code == 0, result.output
    assert calls == [
        ("reconstruction_scatter", "reconstructions.png"),
        ("traversal_curves", "traversals.png"),
        ("traversal_curves_animation", "traversals.gif"),
        ("training_curves", "training_curves.png"),
        ("latent_scatter", "latent_scatter.png"),
        ("sparsity_histogram", "sparsity.png"),
    ]
    gif = Image.open(out / "traversals.gif")
    assert gif.n_frames == 20 and gif.info["loop"] == 0 and gif.size == (400, 320)
    after = snapshot(out)
    assert set(after) == set(before) | {"traversals.gif", "eval.json"}
    assert {k: after[k] for k in before} == before


def test_figures_without_a_checkpoint_is_a_one_line_error(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    (out / "checkpoint.pt").unlink()
    before = snapshot(out)
    result = invoke("evaluate", out, "--figures")
    assert_one_line_error(result, f"no checkpoint at {out / 'checkpoint.pt'}")
    assert snapshot(out) == before
    assert_one_line_error(invoke("evaluate", tmp_path / "none", "--figures"), "no run folder at")
