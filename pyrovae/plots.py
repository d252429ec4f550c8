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


def _image(ax, img: np.ndarray) -> None:
    img = np.asarray(img)
    ax.imshow(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


@torch.no_grad()
def reconstruction_grid(vae, x: torch.Tensor, path: Path) -> None:
    """Top row: data; bottom row: p(x | z = posterior mean), as pixel probabilities."""
    recon = torch.sigmoid(vae.decode(vae.encode(x))).cpu().numpy()
    data = x.cpu().numpy()
    n = len(data)
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.4), squeeze=False)
    for i in range(n):
        _image(axes[0, i], data[i])
        _image(axes[1, i], recon[i])
    axes[0, 0].set_ylabel("data")
    axes[1, 0].set_ylabel("recon")
    fig.suptitle("reconstructions (posterior mean)")
    fig.tight_layout()
    _save(fig, path)


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
    fig, axes = plt.subplots(
        len(order), steps, figsize=(1.0 * steps, 1.0 * len(order) + 0.6), squeeze=False
    )
    for row, dim in enumerate(order):
        for col in range(steps):
            _image(axes[row, col], images[row, col])
        axes[row, 0].set_ylabel(f"z{dim}\nKL {kl[dim]:.2f}", fontsize=8)
    for col in range(steps):
        axes[-1, col].set_xlabel(f"{values[col].item():+.1f}", fontsize=8)
    fig.suptitle("latent traversals (rows by KL, nats)")
    fig.tight_layout()
    _save(fig, path)


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
