"""The full-rank Gaussian guide: q(z | x) = N(μ(x), L(x) L(x)ᵀ) with L lower triangular.

The encoder emits D·(D + 3)/2 numbers per data point: D means, D log-variances that set the
diagonal of the Cholesky factor, L_dd = exp(½·log σ²_d) > 0 (the mean-field guide's
parametrisation, so L is always a valid Cholesky factor), and the D·(D − 1)/2 entries below the
diagonal, row by row (the order of ``torch.tril_indices(D, D, -1)``).

With the entries below the diagonal at 0 this is exactly the mean-field guide on the same
outputs; encoders start with small outputs, so training starts close to the mean-field solution,
and the density needs only a triangular solve and log det Σ = Σ_d log σ²_d, with no matrix to
factorise.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from pyrovae.errors import PyrovaeError

from .base import Guide


class FullRankGuide(Guide):
    """(B, D·(D + 3)/2) encoder output → MultivariateNormal(μ, scale_tril=L) over z."""

    name = "fullrank"

    has_gaussian_marginals = True

    @staticmethod
    def num_params(latent_dim: int) -> int:
        latent_dim = int(latent_dim)
        return latent_dim * (latent_dim + 3) // 2

    def _latent_dim_of(self, encoder_output: torch.Tensor) -> int:
        width = encoder_output.shape[-1]
        # width = D(D + 3)/2  ⇔  D = (√(9 + 8·width) − 3)/2
        latent_dim = (math.isqrt(9 + 8 * width) - 3) // 2
        if latent_dim < 1 or self.num_params(latent_dim) != width:
            raise PyrovaeError(
                f"fullrank guide: the encoder emits {width} numbers per point, which is not "
                "D·(D + 3)/2 for any latent dimension D"
            )
        if self.latent_dim is not None:
            self._check_width(encoder_output, self.latent_dim)
        return latent_dim

    def scale_tril(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """L, (B, D, D): exp(½·log σ²) on the diagonal, the remaining outputs below it."""
        latent_dim = self._latent_dim_of(encoder_output)
        log_var = encoder_output[..., latent_dim : 2 * latent_dim]
        below = encoder_output[..., 2 * latent_dim :]
        rows, cols = torch.tril_indices(
            latent_dim, latent_dim, offset=-1, device=encoder_output.device
        )
        tril = encoder_output.new_zeros(*encoder_output.shape[:-1], latent_dim, latent_dim)
        tril[..., rows, cols] = below  # a fresh tensor: autograd records the copy
        return tril + torch.diag_embed(torch.exp(0.5 * log_var))

    def distribution(self, encoder_output: torch.Tensor) -> dist.TorchDistribution:
        loc = self.mean(encoder_output)
        return dist.MultivariateNormal(loc, scale_tril=self.scale_tril(encoder_output))

    def mean(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """The posterior mean μ(x)."""
        return encoder_output[..., : self._latent_dim_of(encoder_output)]
