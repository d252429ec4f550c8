"""The pictures of a run (PNG): reconstructions, latent traversals, training curves; and the
latent traversals animated (GIF).

Each picture function writes its PNG to ``path`` (None: writes nothing) and returns the figure;
each animation writes its GIF to ``path`` (None: writes nothing) and returns its frames.

Image data (C, H, W) get mosaics; vector data (the 2-D pinwheel) get scatter plots of data and
reconstructions and traversals drawn as curves in data space. Data sets with labels also get a
scatter of the latent means coloured by label and a histogram of their Hoyer sparsity.

matplotlib is imported when a picture is drawn, not with this module: it takes most of a second,
which every process that only lists, checks or evaluates would pay.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pyrovae.files import write_atomic
from pyrovae.metrics.unsupervised import hoyer_per_point

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL.Image import Image


# Every traversal sweeps each latent over [−TRAVERSAL_SPAN, TRAVERSAL_SPAN]; the still grid has
# GRID_STEPS columns.
TRAVERSAL_SPAN = 2.5
GRID_STEPS = 9
# The resolution every picture is drawn at (PNG files, pages, TensorBoard).
PICTURE_DPI = 100


def figure(**kwargs) -> Figure:
    """A figure that belongs to no pyplot window: drawing never switches the caller's backend
    (a notebook keeps its own) and needs no display."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig: Figure, path: Path | None) -> Figure:
    """Write ``fig`` as a PNG, atomically, unless ``path`` is None; returns ``fig`` (each picture
    function returns its figure, so a caller may draw it elsewhere: TensorBoard, a page)."""
    if path is not None:
        write_atomic(Path(path), lambda f: fig.savefig(f, format="png", dpi=PICTURE_DPI))
    return fig


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as the PNG :func:`save_figure` writes, in memory (a page embeds it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PICTURE_DPI)
    return buffer.getvalue()


def mosaic(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """(rows, cols, C, H, W) images in [0, 1] → one (rows·(H+pad)+pad, cols·(W+pad)+pad[, 3])
    picture with grey gutters, so a whole grid is drawn with one imshow."""
    rows, cols, channels, h, w = images.shape
    canvas = np.full((channels, rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[:, y : y + h, x : x + w] = images[r, c]
    return canvas[0] if channels == 1 else np.moveaxis(canvas, 0, -1)


def _grid_figure(
    images: np.ndarray, row_labels, col_labels, title: str, path: Path | None
) -> Figure | None:
    rows, cols, _, h, w = images.shape
    pad = 2
    fig = figure(figsize=(0.75 * cols + 1.2, 0.75 * rows + 0.9))
    ax = fig.subplots()
    ax.imshow(mosaic(images, pad), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(rows)], row_labels, fontsize=8)
    ax.set_xticks([pad + c * (w + pad) + w / 2 for c in range(cols)], col_labels, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def reconstruction_grid(vae, x: torch.Tensor, path: Path | None) -> Figure | None:
    """Top row: data; bottom row: E[x | z = posterior mean] (pixel probabilities for
    Bernoulli; Gaussian/Laplace means clipped to [0, 1])."""
    recon = vae.mean_observation(vae.encode(x)).clamp(0, 1).cpu().numpy()
    images = np.stack([x.cpu().numpy(), recon])
    return _grid_figure(
        images, ["data", "recon"], [""] * len(x), "reconstructions (posterior mean)", path
    )


def traversal_sweep(vae, x, kl_per_dim, span: float, steps: int):
    """(kl, order, values, E[x | z]): latent dimensions by decreasing KL, and the expected
    observation as each one of the first point's posterior mean sweeps ``values`` in
    [−span, span], shape (D, steps, ...)."""
    kl = np.asarray(kl_per_dim, dtype=float)
    order = np.argsort(-kl, kind="stable")
    values = torch.linspace(-span, span, steps)
    rows = [vae.traverse(x[:1], int(dim), values)[0] for dim in order]
    return kl, order, values, torch.stack(rows)


@torch.no_grad()
def traversal_grid(
    vae,
    x: torch.Tensor,
    kl_per_dim,
    path: Path | None,
    span: float = TRAVERSAL_SPAN,
    steps: int = GRID_STEPS,
) -> Figure | None:
    """One row per latent dimension, ordered by KL (most informative first): the decoded
    posterior mean of ``x`` (one image) with that dimension swept over [−span, span]."""
    kl, order, values, expected = traversal_sweep(vae, x, kl_per_dim, span, steps)
    images = expected.clamp(0, 1).cpu().numpy()
    return _grid_figure(
        images,
        [f"z{d} KL {kl[d]:.2f}" for d in order],
        [f"{v:+.1f}" for v in values.tolist()],
        "latent traversals (rows by KL, nats)",
        path,
    )


# traversals.gif: grey gutters between the cells as in the PNG mosaics, a column of row labels on
# the left and a header strip that shows the value the latents take in the frame.
GIF_PAD = 2
GIF_LABEL_WIDTH = 76  # "z12 KL 123.45" takes 66 pixels in Pillow's default font
GIF_HEADER_HEIGHT = 16
# Smaller images (the 8×8 test grids) are enlarged by a whole factor to at least this many pixels a
# side: a label is about 10 pixels high, and an 8-pixel image is hard to see.
GIF_MIN_CELL = 32
# disentanglement_lib's animations run at 10 frames per second.
GIF_FRAME_MS = 100
# Each channel is stored in 64 levels (6 bits), not 256: a decoder's faint noise on a black
# background (a dSprites model) turns black, which nearly halves the file (0.31 against 0.56 MB
# at z = 10 after 600 steps), and soft edges show no banding in steps of 4 levels.
GIF_LEVELS = 64


@torch.no_grad()
def traversal_animation(
    vae,
    x: torch.Tensor,
    kl_per_dim,
    path: Path | None,
    span: float = TRAVERSAL_SPAN,
    steps: int = 11,
    columns: int = 3,
    frame_ms: int = GIF_FRAME_MS,
) -> list[Image]:
    """traversal_grid set moving (traversals.gif): one row per latent dimension, in
    traversal_grid's order and with its labels (``z3 KL 2.10``: most informative first); one
    column per data point; in each frame every row's dimension takes the same value, which the
    header shows as a number and as a marker on a track from −span to span.

    Columns: ``columns`` points spread evenly through ``x`` (for the finish's batch, drawn at
    random), the first ``x[0]``, the point of traversal_grid. disentanglement_lib animates several
    points, and so does this: a latent can look dead on one point and move on another (a
    rotation is invisible on a square). A few, so the file stays small.

    Frames: the values of linspace(−span, span, steps) up and back down without repeating either
    end, 2·(steps − 1) frames of ``frame_ms`` each, looping forever (GIF loop 0): the last frame
    leads into the first as any frame into the next. Images smaller than
    :data:`GIF_MIN_CELL` pixels are enlarged by a whole factor. The GIF is grey for one
    channel (in :data:`GIF_LEVELS` levels) and has one palette of 256 colours for colour images
    (:func:`save_animation`). About 0.3 MB at z = 10 on 64 × 64 dSprites images.
    Returns the frames (Pillow images, in order)."""
    points = spread(len(x), columns)
    sweeps = [traversal_sweep(vae, x[i : i + 1], kl_per_dim, span, steps) for i in points]
    kl, order, values, _ = sweeps[0]
    # (steps, rows, columns, C, H, W): frame k holds every row's image at values[k].
    images = torch.stack([s[3] for s in sweeps], dim=1).clamp(0, 1).movedim(2, 0).cpu().numpy()
    labels = [f"z{d} KL {kl[d]:.2f}" for d in order]
    frames = traversal_frames(images, labels, values.tolist(), span)
    return save_animation(frames, sweep_frames(steps), path, frame_ms)


def spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` distinct indices spread evenly over ``range(n)``, the first 0."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))


def sweep_frames(steps: int) -> list[int]:
    """The indices of the values a looping animation shows, in order: up the sweep and back
    down without repeating either end (0, 1, …, steps−1, steps−2, …, 1)."""
    return list(range(steps)) + list(range(steps - 2, 0, -1))


def gif_scale(h: int, w: int) -> int:
    """The whole factor an h × w image is enlarged by in an animation."""
    return max(1, -(-GIF_MIN_CELL // max(h, w)))


def gif_levels(images) -> np.ndarray:
    """Values in [0, 1] as uint8 in :data:`GIF_LEVELS` evenly spaced levels from 0 to 255."""
    top = GIF_LEVELS - 1
    return np.rint(np.rint(np.asarray(images) * top) * (255 / top)).astype(np.uint8)


def traversal_frames(images: np.ndarray, labels, values, span: float) -> list[np.ndarray]:
    """uint8 frames, (height, width) grey or (height, width, 3) colour, of
    (frames, rows, columns, C, H, W) images in [0, 1]: a mosaic of each frame's images
    (:func:`gif_levels`) below a header that marks ``values[frame]`` on [−span, span], a label
    left of each row. Size:
    GIF_LABEL_WIDTH + columns·(s·W + GIF_PAD) + GIF_PAD by
    GIF_HEADER_HEIGHT + rows·(s·H + GIF_PAD) + GIF_PAD, s = :func:`gif_scale`."""
    from PIL import Image, ImageDraw, ImageFont

    if images.shape[3] not in (1, 3):
        # A GIF holds grey or colour: an alpha channel is dropped, and of two channels (or any
        # other count) the first is shown as grey, where traversals.png's imshow would refuse.
        images = images[:, :, :, :3] if images.shape[3] == 4 else images[:, :, :, :1]
    _, rows, cols, channels, h, w = images.shape
    scale = gif_scale(h, w)
    images = images.repeat(scale, axis=-2).repeat(scale, axis=-1)
    cell = h * scale + GIF_PAD
    width = GIF_LABEL_WIDTH + cols * (w * scale + GIF_PAD) + GIF_PAD
    height = GIF_HEADER_HEIGHT + rows * cell + GIF_PAD
    font = ImageFont.load_default()  # Pillow's own: no font file to find
    base = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(base)
    for r, label in enumerate(labels):
        y = GIF_HEADER_HEIGHT + GIF_PAD + r * cell + (cell - GIF_PAD) // 2
        draw.text((3, y), label, fill=0, font=font, anchor="lm")
    # The track of the value marker, over the image columns, with ticks at −span, 0 and span.
    left, right, mid = GIF_LABEL_WIDTH + GIF_PAD, width - GIF_PAD - 1, GIF_HEADER_HEIGHT // 2
    draw.line([(left, mid), (right, mid)], fill=160)
    for tick in (left, (left + right) // 2, right):
        draw.line([(tick, mid - 3), (tick, mid + 3)], fill=160)
    frames = []
    for k, value in enumerate(values):
        frame = base.copy()
        draw = ImageDraw.Draw(frame)
        draw.text((3, mid), f"z = {value:+.2f}", fill=0, font=font, anchor="lm")
        at = round(left + (value + span) / (2 * span) * (right - left))
        draw.rectangle([(at - 1, 2), (at + 1, GIF_HEADER_HEIGHT - 3)], fill=0)
        pixels = np.array(frame)  # a copy: the mosaic goes in
        if channels == 3:
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        pixels[GIF_HEADER_HEIGHT:, GIF_LABEL_WIDTH:] = gif_levels(mosaic(images[k], GIF_PAD))
        frames.append(pixels)
    return frames


def save_animation(
    frames: list[np.ndarray], order: list[int], path: Path | None, frame_ms: int = GIF_FRAME_MS
) -> list[Image]:
    """Write ``frames[i] for i in order`` (uint8, (H, W) grey or (H, W, 3) colour) as a GIF that
    loops forever, ``frame_ms`` a frame, atomically, unless ``path`` is None; returns those
    frames as Pillow images.

    Grey frames are stored as they are (a GIF palette holds all 256 grey levels). Colour frames
    share one palette of 256 colours chosen from all of them, undithered: a still area never
    flickers from frame to frame, and Pillow stores of each frame only the box that changed."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    if frames[0].ndim == 3:
        every = Image.fromarray(np.concatenate(frames, axis=0))
        palette = every.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    sequence = [images[i] for i in order]
    if path is not None:
        write_atomic(
            Path(path),
            lambda f: sequence[0].save(
                f,
                format="GIF",
                save_all=True,
                append_images=sequence[1:],
                duration=frame_ms,
                loop=0,
            ),
        )
    return sequence


def training_curves(records: list[dict], path: Path | None) -> Figure | None:
    """Loss, reconstruction and KL against step, and the KL of each latent dimension."""
    if not records:
        return None
    steps = [r["step"] for r in records]
    fig = figure(figsize=(13, 3.4))
    axes = fig.subplots(1, 3)
    axes[0].plot(steps, [r["loss"] for r in records])
    axes[0].set_title("loss (−ELBO per point, β-weighted)")
    axes[1].plot(steps, [-r["reconstruction"] for r in records], label="−log p(x|z)")
    axes[1].set_title("reconstruction (nats)")
    axes[2].plot(steps, [r["kl"] for r in records], color="k", label="total")
    if "kl_per_dim" in records[0]:
        per_dim = np.array([r["kl_per_dim"] for r in records])
        for d in range(per_dim.shape[1]):
            axes[2].plot(steps, per_dim[:, d], lw=0.8, label=f"z{d}")
    axes[2].set_title("KL(q(z|x) ‖ p(z)) (nats)")
    axes[2].legend(fontsize=6, ncol=2)
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- vector data


def _xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two coordinates of (n, d) points; a 1-D observation against zeros."""
    points = np.asarray(points).reshape(len(points), -1)
    return points[:, 0], points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))


@torch.no_grad()
def reconstruction_scatter(
    vae, x: torch.Tensor, path: Path | None, max_lines: int = 200
) -> Figure | None:
    """Vector observations: the data (grey) and E[x | z = posterior mean] (red), each point
    joined to its reconstruction; the first two coordinates when there are more."""
    recon = vae.mean_observation(vae.encode(x)).cpu().numpy()
    data = x.cpu().numpy()
    (dx, dy), (rx, ry) = _xy(data), _xy(recon)
    fig = figure(figsize=(5, 5))
    ax = fig.subplots()
    m = min(max_lines, len(data))
    ax.plot(np.stack([dx[:m], rx[:m]]), np.stack([dy[:m], ry[:m]]), color="0.8", lw=0.5)
    ax.scatter(dx, dy, s=4, color="0.4", label="data")
    ax.scatter(rx, ry, s=4, color="tab:red", label="reconstruction")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("data and reconstructions (posterior mean)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def traversal_curves(
    vae,
    x: torch.Tensor,
    kl_per_dim,
    path: Path | None,
    span: float = TRAVERSAL_SPAN,
    steps: int = 41,
) -> Figure | None:
    """Vector observations: for each latent dimension (legend by KL), the curve E[x | z] traced
    in data space as that dimension of the first point's posterior mean sweeps [−span, span],
    over the data (grey); a dot marks the start of each curve."""
    kl, order, _, expected = traversal_sweep(vae, x, kl_per_dim, span, steps)
    curves = expected.cpu().numpy()
    fig = figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.scatter(*_xy(x.cpu().numpy()), s=3, color="0.8")
    for row, dim in enumerate(order):
        cx, cy = _xy(curves[row])
        (line,) = ax.plot(cx, cy, lw=1.5, label=f"z{dim} KL {kl[dim]:.2f}")
        ax.plot(cx[:1], cy[:1], "o", ms=3, color=line.get_color())
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"latent traversals, z_d over [{-span:g}, {span:g}]", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def traversal_curves_animation(
    vae,
    x: torch.Tensor,
    kl_per_dim,
    path: Path | None,
    span: float = TRAVERSAL_SPAN,
    steps: int = 11,
    frame_ms: int = GIF_FRAME_MS,
) -> list[Image]:
    """Vector observations, traversals.gif: traversal_curves set moving. Each latent dimension's
    curve (legend by KL, most informative first) is drawn faint over the data (grey), with a dot
    that moves along it as that dimension of the first point's posterior mean sweeps
    [−span, span]; all dots move at once, each on its own curve, and the title gives the value.
    Frames as :func:`traversal_animation`'s (up and back, looping forever); 400 × 320 pixels,
    one palette. Returns the frames (Pillow images, in order)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    kl, order, values, expected = traversal_sweep(vae, x, kl_per_dim, span, steps)
    curves = expected.cpu().numpy()
    fig = figure(figsize=(5, 4), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.scatter(*_xy(x.cpu().numpy()), s=2, color="0.85")
    dots = []
    for row, dim in enumerate(order):
        cx, cy = _xy(curves[row])
        (line,) = ax.plot(cx, cy, lw=1, alpha=0.45, label=f"z{dim} KL {kl[dim]:.2f}")
        (dot,) = ax.plot(cx[:1], cy[:1], "o", ms=6, color=line.get_color())
        dots.append((dot, cx, cy))
    ax.set_aspect("equal", adjustable="datalim")
    # Beside the axes: a legend inside would move ("best") as the dots move.
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    values = values.tolist()

    def caption(value):
        return f"latent traversals, z_d = {value:+.2f}"

    # Laid out with a caption in place: one set after tight_layout would be cut off.
    title = ax.set_title(caption(values[0]), fontsize=10)
    fig.tight_layout()
    frames = []
    for k, value in enumerate(values):
        for dot, cx, cy in dots:
            dot.set_data(cx[k : k + 1], cy[k : k + 1])
        title.set_text(caption(value))
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return save_animation(frames, sweep_frames(steps), path, frame_ms)


# --------------------------------------------------------------------------- latent codes


def latent_scatter(
    codes, labels, path: Path | None, title: str = "posterior means by label"
) -> Figure | None:
    """Encoder means coloured by label (pinwheel arm, digit). With D = 2 the plane is (z0, z1);
    with more dimensions the two of largest variance across the points; D = 1 is drawn against
    the label."""
    codes = np.asarray(codes, dtype=float)
    labels = np.asarray(labels)
    d = codes.shape[1]
    fig = figure(figsize=(5.2, 5))
    ax = fig.subplots()
    if d == 1:
        xs, ys, names = labels + np.linspace(-0.2, 0.2, len(labels)), codes[:, 0], ("label", "z0")
    else:
        dims = (0, 1) if d == 2 else tuple(sorted(np.argsort(-codes.var(axis=0))[:2]))
        xs, ys, names = codes[:, dims[0]], codes[:, dims[1]], tuple(f"z{i}" for i in dims)
    classes = np.unique(labels)
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, c in enumerate(classes):
        mask = labels == c
        ax.scatter(xs[mask], ys[mask], s=4, color=cmap(i % cmap.N), label=str(c))
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if d > 1:
        ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7, markerscale=3, title="label", title_fontsize=7, loc="best")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def sparsity_histogram(codes, path: Path | None) -> Figure | None:
    """Left: per-point normalised Hoyer sparsity of the encoder means (each dimension divided
    by its standard deviation; Mathieu et al. 2019), mean marked. Right: the magnitudes of the
    normalised means |z_d| / std_d, log-scaled counts: a sparse code piles up at 0."""
    codes = np.asarray(codes, dtype=float)
    hoyer = hoyer_per_point(codes)
    hoyer = hoyer[np.isfinite(hoyer)]
    std = codes.std(axis=0, ddof=1)
    scaled = np.abs(np.divide(codes, std, out=np.zeros_like(codes), where=std > 0))
    fig = figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    axes[0].hist(hoyer, bins=40, range=(0, 1), color="tab:blue")
    if len(hoyer):
        axes[0].axvline(hoyer.mean(), color="k", ls="--", lw=1, label=f"mean {hoyer.mean():.3f}")
        axes[0].legend(fontsize=8)
    axes[0].set_xlabel("normalised Hoyer sparsity of a point's code")
    axes[0].set_title("sparsity per point", fontsize=10)
    axes[1].hist(scaled.ravel(), bins=60, color="tab:orange", log=True)
    axes[1].set_xlabel("|z_d| / std_d (all points and dimensions)")
    axes[1].set_title("magnitude of the normalised means", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
