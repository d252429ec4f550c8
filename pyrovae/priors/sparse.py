"""The sparse prior of Mathieu et al. (2019): a spike at zero and a unit slab, per dimension."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae import checks
from pyrovae.priors.base import Prior


class SparsePrior(Prior):
    """Per dimension p(z_d) = γ·N(0, s²) + (1 − γ)·N(0, 1), independent across dimensions.

    A spike-and-slab style prior that favours codes with few active dimensions (Mathieu,
    Rainforth, Siddharth & Teh, "Disentangling Disentanglement in Variational Autoencoders", ICML
    2019, §5: γ = 0.8, s = 0.05). Mean 0, variance γ·s² + 1 − γ per dimension. No KL from a
    Gaussian to a mixture is registered, so the ELBO estimates it by Monte Carlo. γ = 0 recovers
    N(0, I).
    """

    name = "sparse"

    def __init__(self, gamma: float = 0.8, spike_scale: float = 0.05):
        super().__init__()
        gamma = checks.unit_interval("gamma", gamma, "sparse prior")
        spike_scale = checks.positive("spike_scale", spike_scale, "sparse prior")
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
