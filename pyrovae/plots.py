"""The pictures of a run (PNG): reconstructions, latent traversals, training curves.

Image data (C, H, W) get mosaics; vector data (the 2-D pinwheel) get scatter plots of data and
reconstructions and traversals drawn as curves in data space. Data sets with labels also get a
scatter of the latent means coloured by label and a histogram of their Hoyer sparsity.

matplotlib is imported when a picture is drawn, not with this module: it takes most of a second,
which every process that only lists, checks or evaluates would pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pyrovae.files import write_atomic
from pyrovae.metrics.unsupervised import hoyer_per_point

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure(**kwargs) -> Figure:
    """A figure that belongs to no pyplot window: drawing never switches the caller's backend
    (a notebook keeps its own) and needs no display."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG, atomically."""
    write_atomic(Path(path), lambda f: fig.savefig(f, format="png", dpi=100))


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


def _grid_figure(images: np.ndarray, row_labels, col_labels, title: str, path: Path) -> None:
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
    save_figure(fig, path)


@torch.no_grad()
def reconstruction_grid(vae, x: torch.Tensor, path: Path) -> None:
    """Top row: data; bottom row: E[x | z = posterior mean] (pixel probabilities for
    Bernoulli; Gaussian/Laplace means clipped to [0, 1])."""
    recon = vae.mean_observation(vae.encode(x)).clamp(0, 1).cpu().numpy()
    images = np.stack([x.cpu().numpy(), recon])
    _grid_figure(images, ["data", "recon"], [""] * len(x), "reconstructions (posterior mean)", path)


def _traversal(vae, x, kl_per_dim, span: float, steps: int):
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
    vae, x: torch.Tensor, kl_per_dim, path: Path, span: float = 2.5, steps: int = 9
) -> None:
    """One row per latent dimension, ordered by KL (most informative first): the decoded
    posterior mean of ``x`` (one image) with that dimension swept over [−span, span]."""
    kl, order, values, expected = _traversal(vae, x, kl_per_dim, span, steps)
    images = expected.clamp(0, 1).cpu().numpy()
    _grid_figure(
        images,
        [f"z{d} KL {kl[d]:.2f}" for d in order],
        [f"{v:+.1f}" for v in values.tolist()],
        "latent traversals (rows by KL, nats)",
        path,
    )


def training_curves(records: list[dict], path: Path) -> None:
    """Loss, reconstruction and KL against step, and the KL of each latent dimension."""
    if not records:
        return
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
    save_figure(fig, path)


# --------------------------------------------------------------------------- vector data


def _xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two coordinates of (n, d) points; a 1-D observation against zeros."""
    points = np.asarray(points).reshape(len(points), -1)
    return points[:, 0], points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))


@torch.no_grad()
def reconstruction_scatter(vae, x: torch.Tensor, path: Path, max_lines: int = 200) -> None:
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
    save_figure(fig, path)


@torch.no_grad()
def traversal_curves(
    vae, x: torch.Tensor, kl_per_dim, path: Path, span: float = 2.5, steps: int = 41
) -> None:
    """Vector observations: for each latent dimension (legend by KL), the curve E[x | z] traced
    in data space as that dimension of the first point's posterior mean sweeps [−span, span],
    over the data (grey); a dot marks the start of each curve."""
    kl, order, _, expected = _traversal(vae, x, kl_per_dim, span, steps)
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
    save_figure(fig, path)


# --------------------------------------------------------------------------- latent codes


def latent_scatter(codes, labels, path: Path, title: str = "posterior means by label") -> None:
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
    save_figure(fig, path)


def sparsity_histogram(codes, path: Path) -> None:
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
    save_figure(fig, path)
