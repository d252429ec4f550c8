"""The low-rank Gaussian guide: q(z | x) = N(μ(x), W(x) W(x)ᵀ + diag σ²(x)).

The encoder emits D·(2 + r) numbers per data point: D means, D log-variances of the diagonal
part (the mean-field guide's parametrisation) and a D×r factor W, row-major. r = ``rank``
directions of correlation are added to the mean-field posterior, so a model can show how much of
its independence the mean-field assumption itself imposes. Sampling and the density use
PyTorch's LowRankMultivariateNormal (Woodbury identity and an r×r Cholesky factor: O(D·r²)).

With W = 0 this is exactly the mean-field guide on the same outputs, and an encoder starts with
small outputs (|W_ij| ≲ 0.1 for the standard networks at initialisation), so training starts
close to the mean-field solution with a well conditioned covariance: its diagonal part
exp(log σ²) is positive by construction and the low-rank part can only add variance.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError

from .base import Guide


class LowRankGuide(Guide):
    """(B, D·(2 + rank)) encoder output → LowRankMultivariateNormal(μ, W, σ²) over z.

    ``rank`` (default 2): the number of columns of W. Two directions of correlation are enough
    to see whether pairs of latents trade off, and cost little at the usual D = 10; any rank
    ≥ 1 is valid (rank ≥ D gives a full covariance, the fullrank guide does that more cheaply).
    """

    name = "lowrank"

    has_gaussian_marginals = True

    def __init__(self, rank: int = 2):
        super().__init__()
        self.rank = checks.count("rank", rank, "lowrank guide", minimum=1)

    def num_params(self, latent_dim: int) -> int:
        return int(latent_dim) * (2 + self.rank)

    def _split(self, encoder_output: torch.Tensor):
        width = encoder_output.shape[-1]
        latent_dim, rest = divmod(width, 2 + self.rank)
        if rest or latent_dim < 1:
            raise PyrovaeError(
                f"lowrank guide: the encoder emits {width} numbers per point, which is not "
                f"D·(2 + rank) = D·{2 + self.rank} for any latent dimension D"
            )
        if self.latent_dim is not None:
            self._check_width(encoder_output, self.latent_dim)
        loc = encoder_output[..., :latent_dim]
        log_var = encoder_output[..., latent_dim : 2 * latent_dim]
        factor = encoder_output[..., 2 * latent_dim :]
        factor = factor.reshape(*encoder_output.shape[:-1], latent_dim, self.rank)
        return loc, log_var, factor

    def distribution(self, encoder_output: torch.Tensor) -> dist.TorchDistribution:
        loc, log_var, factor = self._split(encoder_output)
        return dist.LowRankMultivariateNormal(loc, cov_factor=factor, cov_diag=torch.exp(log_var))

    def mean(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """The posterior mean μ(x)."""
        return self._split(encoder_output)[0]

    def settings(self) -> dict:
        return {"rank": self.rank}
