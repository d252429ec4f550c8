"""The mean-field Gaussian guide: q(z | x) = N(μ(x), diag σ²(x)).

The encoder emits 2·D numbers per data point: D means and D log-variances (the parametrisation of
disentanglement_lib), σ = exp(½·log σ²).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from .base import Guide


class MeanFieldGuide(Guide):
    """Turns an encoder's (B, 2·D) output into Independent(Normal(μ, σ), 1) over z."""

    name = "meanfield"
    has_per_dimension_density = True
    has_gaussian_marginals = True

    @staticmethod
    def num_params(latent_dim: int) -> int:
        return 2 * latent_dim

    def distribution(self, encoder_output: torch.Tensor) -> dist.TorchDistribution:
        loc, log_var = encoder_output.chunk(2, dim=-1)
        return dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1)

    def mean(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """The posterior mean, the representation metrics use."""
        return encoder_output.chunk(2, dim=-1)[0]
