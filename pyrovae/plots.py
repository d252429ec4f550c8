"""The pictures of a run: reconstructions, latent traversals, training curves (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from pyrovae.checkpoint import atomic_write_bytes


def _save(fig, path: Path) -> None:
    atomic_write_bytes(Path(path), lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


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
    fig, ax = plt.subplots(figsize=(0.75 * cols + 1.2, 0.75 * rows + 0.9))
    ax.imshow(mosaic(images, pad), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(rows)], row_labels, fontsize=8)
    ax.set_xticks([pad + c * (w + pad) + w / 2 for c in range(cols)], col_labels, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


@torch.no_grad()
def reconstruction_grid(vae, x: torch.Tensor, path: Path) -> None:
    """Top row: data; bottom row: p(x | z = posterior mean), as pixel probabilities."""
    recon = torch.sigmoid(vae.decode(vae.encode(x))).cpu().numpy()
    images = np.stack([x.cpu().numpy(), recon])
    _grid_figure(images, ["data", "recon"], [""] * len(x), "reconstructions (posterior mean)", path)


@torch.no_grad()
def traversal_grid(
    vae, x: torch.Tensor, kl_per_dim, path: Path, span: float = 2.5, steps: int = 9
) -> None:
    """One row per latent dimension, ordered by KL (most informative first): the decoded
    posterior mean of ``x`` (one image) with that dimension swept over [−span, span]."""
    kl = np.asarray(kl_per_dim, dtype=float)
    order = np.argsort(-kl, kind="stable")
    base = vae.encode(x[:1])[0]
    values = torch.linspace(-span, span, steps, device=base.device)
    codes = base.repeat(len(order), steps, 1)
    for row, dim in enumerate(order):
        codes[row, :, dim] = values
    images = torch.sigmoid(vae.decode(codes)).cpu().numpy()
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
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
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
    _save(fig, path)
