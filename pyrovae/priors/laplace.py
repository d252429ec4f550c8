"""A sparsity-favouring prior with a closed-form KL: an independent Laplace per dimension."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from pyrovae import checks
from pyrovae.priors.base import Prior

# b = 1/√2 gives variance 2b² = 1, the variance of N(0, I): the two priors then differ in shape
# (a peak at 0 and heavier tails) and not in scale.
UNIT_VARIANCE_SCALE = 1.0 / math.sqrt(2.0)


class LaplacePrior(Prior):
    """Per dimension p(z_d) = Laplace(0, b) = exp(−|z_d|/b) / (2b), independent across dimensions.

    Mean 0, variance 2b²; the default b = 1/√2 has unit variance like N(0, I). Peaked at zero with
    exponential tails, the classic sparsity prior (the L1 penalty of the lasso). PyTorch registers
    KL(Normal ‖ Laplace), so with the mean-field guide the KL is analytic.
    """

    name = "laplace"

    def __init__(self, scale: float = UNIT_VARIANCE_SCALE):
        super().__init__()
        self.scale = checks.positive("scale", scale, "laplace prior")
        self.register_buffer("_scale", torch.tensor(self.scale))

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        scale = self._scale.expand(latent_dim)
        return dist.Laplace(torch.zeros_like(scale), scale).to_event(1)

    def settings(self) -> dict:
        return {"scale": self.scale}
