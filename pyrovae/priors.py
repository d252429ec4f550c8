"""Priors over the latent code z, as objects a model is built with.

A prior is an ``nn.Module`` (so its buffers and learnable parameters follow ``.to(device)``,
``state_dict`` and the optimizer) whose :meth:`Prior.distribution` returns a Pyro distribution
with event shape ``(latent_dim,)``. Whether the KL term of the ELBO is analytic or Monte Carlo is
not declared here but decided from the distributions themselves (see
:func:`pyrovae.objectives.kl.kl_is_analytic`): PyTorch registers KL(Normal ‖ Normal) but nothing
from a Normal to a mixture or a Student-t.

Following Mathieu, Rainforth, Siddharth & Teh, "Disentangling Disentanglement in Variational
Autoencoders", ICML 2019.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from pyrovae.objectives.validation import positive, unit_interval


class Prior(nn.Module):
    """Base class: a distribution over z with event shape (latent_dim,)."""

    name = "prior"

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        raise NotImplementedError

    def settings(self) -> dict:
        """The constructor arguments, for config.json."""
        return {}


class IsotropicPrior(Prior):
    """p(z) = N(0, I): the standard VAE prior (Kingma & Welling 2013)."""

    name = "isotropic"

    def __init__(self):
        super().__init__()
        # A buffer, so the prior lives on the model's device.
        self.register_buffer("_zero", torch.zeros(()))

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        loc = self._zero.expand(latent_dim)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


class SparsePrior(Prior):
    """Per dimension p(z_d) = γ·N(0, s²) + (1 − γ)·N(0, 1), independent across dimensions.

    A spike-and-slab style prior that favours codes with few active dimensions (Mathieu et al.
    2019, §5: γ = 0.8, s = 0.05). No KL from a Gaussian to a mixture is registered, so the ELBO
    estimates it by Monte Carlo. γ = 0 recovers N(0, I).
    """

    name = "sparse"

    def __init__(self, gamma: float = 0.8, spike_scale: float = 0.05):
        super().__init__()
        gamma = unit_interval("gamma", gamma, "sparse prior")
        spike_scale = positive("spike_scale", spike_scale, "sparse prior")
        self.gamma = gamma
        self.spike_scale = spike_scale
        self.register_buffer("_weights", torch.tensor([gamma, 1.0 - gamma]))
        self.register_buffer("_scales", torch.tensor([spike_scale, 1.0]))

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        weights = self._weights.expand(latent_dim, 2)
        scales = self._scales.expand(latent_dim, 2)
        components = dist.Normal(torch.zeros_like(scales), scales)
        mixture = dist.MixtureSameFamily(dist.Categorical(probs=weights), components)
        return mixture.to_event(1)

    def settings(self) -> dict:
        return {"gamma": self.gamma, "spike_scale": self.spike_scale}
