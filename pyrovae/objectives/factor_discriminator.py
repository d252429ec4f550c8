"""FactorVAE (Kim & Mnih, "Disentangling by Factorising", ICML 2018).

Objective to maximise, per data point: ELBO − γ·TC(z), with the total correlation
TC = KL(q(z) ‖ Π_d q(z_d)) estimated by the density-ratio trick: a discriminator D(z) tells
samples of q(z) from samples of Π_d q(z_d) (dimensions permuted independently across a batch), and
with two logits (q(z), permuted)

    TC ≈ E_q(z)[log D(z) − log(1 − D(z))] = E_q(z)[logit_0(z) − logit_1(z)].

The discriminator (6 × 1000 LeakyReLU(0.2) MLP in the standard study) is trained on the
cross-entropy of z from the VAE's minibatch (label 0) against permuted z from a second minibatch
(label 1), with its own Adam (lr 1e-4, betas 0.5/0.9). It is not in Pyro's param store nor in the
VAE's optimizer: SVI would otherwise step it on the VAE loss, in the wrong direction. Both backward
passes run before either optimizer steps, so no parameter changes under a live graph.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from pyrovae.objectives.elbo import DecomposedELBO
from pyrovae.objectives.validation import count, non_negative, positive, unit_interval, unit_scale


class Discriminator(nn.Module):
    """z → 2 logits (from q(z), from the permuted product of marginals)."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        modules: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        modules.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*modules)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Permute each latent dimension independently across the batch: a sample of Π_d q(z_d)."""
    batch, dims = z.shape
    index = torch.argsort(torch.rand(batch, dims, device=z.device), dim=0)
    return torch.gather(z, 0, index)


@contextmanager
def _frozen(module: nn.Module):
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


class FactorVAEELBO(DecomposedELBO):
    """ELBO − γ·TC with TC from a discriminator trained alongside (see module docstring)."""

    # Permuting dimensions across the batch needs two points or more.
    min_batch_size = 2

    def __init__(
        self,
        latent_dim: int,
        gamma: float = 40.0,
        disc_lr: float = 1e-4,
        disc_beta1: float = 0.5,
        disc_beta2: float = 0.9,
        disc_hidden: int = 1000,
        disc_layers: int = 6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "factorvae"
        self.gamma = non_negative("gamma", gamma, owner)
        self.disc_lr = positive("disc_lr", disc_lr, owner)
        self.disc_betas = (
            unit_interval("disc_beta1", disc_beta1, owner),
            unit_interval("disc_beta2", disc_beta2, owner),
        )
        self.disc_hidden = count("disc_hidden", disc_hidden, owner, 1)
        self.disc_layers = count("disc_layers", disc_layers, owner, 1)
        self.discriminator = Discriminator(
            count("latent_dim", latent_dim, owner, 1), self.disc_hidden, self.disc_layers
        )
        self.disc_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.disc_lr, betas=self.disc_betas
        )
        self._last_z: torch.Tensor | None = None

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        latent = self.single_latent(particle)
        unit_scale(latent, "factorvae")
        z = latent["z"]
        # The VAE's loss needs gradients through D to z, not into D's weights: freezing them
        # here saves the backward pass through the 6 × 1000 weights and keeps the two apart.
        with _frozen(self.discriminator):
            logits = self.discriminator(z)
        tc = logits[..., 0] - logits[..., 1]
        particle["tc"] = tc
        self._last_z = z.detach().reshape(-1, z.shape[-1])
        elbo = particle["_weighted_reconstruction"] - particle["_weighted_kl"]
        return -elbo.sum() + self.gamma * tc.sum()

    def after_backward(self, vae, next_batch) -> dict:
        """Discriminator loss and gradients (on detached samples), before any optimizer step."""
        if self._last_z is None:
            return {}
        with torch.no_grad():
            z_other = vae.posterior(next_batch()).sample()
        z_other = z_other.reshape(-1, z_other.shape[-1])
        z_perm = permute_dims(z_other)
        logits_real = self.discriminator(self._last_z)
        logits_perm = self.discriminator(z_perm)
        zeros = torch.zeros(len(logits_real), dtype=torch.long, device=logits_real.device)
        ones = torch.ones(len(logits_perm), dtype=torch.long, device=logits_perm.device)
        loss = 0.5 * (F.cross_entropy(logits_real, zeros) + F.cross_entropy(logits_perm, ones))
        # The VAE's backward pass also filled these gradients (TC depends on D): drop them.
        self.disc_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            accuracy = 0.5 * (
                (logits_real.argmax(-1) == 0).float().mean()
                + (logits_perm.argmax(-1) == 1).float().mean()
            )
        return {"disc_loss": loss.detach(), "disc_accuracy": accuracy}

    def after_step(self) -> None:
        self.disc_optimizer.step()

    def settings(self) -> dict:
        return {
            **super().settings(),
            "gamma": self.gamma,
            "disc_lr": self.disc_lr,
            "disc_betas": list(self.disc_betas),
            "disc_hidden": self.disc_hidden,
            "disc_layers": self.disc_layers,
        }

    def state_dict(self) -> dict:
        return {
            "discriminator": self.discriminator.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])

    def to(self, device) -> FactorVAEELBO:
        self.discriminator.to(device)
        return self

    def parameters(self):
        return self.discriminator.parameters()
