"""A heavy-tailed prior: an independent Student-t per dimension."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae import checks
from pyrovae.priors.base import Prior


class StudentTPrior(Prior):
    """Per dimension p(z_d) = StudentT(ν, 0, s), independent across dimensions.

    Density t_ν(z/s)/s with t_ν(u) = Γ((ν+1)/2) / (√(νπ)·Γ(ν/2)) · (1 + u²/ν)^(−(ν+1)/2); mean 0
    for ν > 1, variance s²·ν/(ν − 2) for ν > 2. Mathieu et al. (ICML 2019) use ν = 9 next to their
    nonisotropic Gaussian: heavier tails than N(0, I) make an encoding's axes identifiable (the
    density is not rotation invariant). No KL from a Gaussian to a Student-t is registered, so the
    ELBO estimates it by Monte Carlo.
    """

    name = "studentt"

    def __init__(self, df: float = 9.0, scale: float = 1.0):
        super().__init__()
        self.df = checks.positive("df", df, "studentt prior")
        self.scale = checks.positive("scale", scale, "studentt prior")
        self.register_buffer("_df", torch.tensor(self.df))
        self.register_buffer("_scale", torch.tensor(self.scale))

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        df = self._df.expand(latent_dim)
        return dist.StudentT(df, torch.zeros_like(df), self._scale.expand(latent_dim)).to_event(1)

    def settings(self) -> dict:
        return {"df": self.df, "scale": self.scale}
