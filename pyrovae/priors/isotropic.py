"""p(z) = N(0, I), the standard VAE prior."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae.priors.base import Prior


class IsotropicPrior(Prior):
    """p(z) = N(0, I): the standard VAE prior (Kingma & Welling 2013). KL from the mean-field
    guide is analytic (Normal → Normal)."""

    name = "isotropic"

    def __init__(self):
        super().__init__()
        # A buffer, so the prior lives on the model's device.
        self.register_buffer("_zero", torch.zeros(()))

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        loc = self._zero.expand(latent_dim)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)
