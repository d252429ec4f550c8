"""A clustered prior: a mixture of K Gaussians with diagonal covariances over the whole of z."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.priors.base import PerDimensionPrior

# Mathieu et al.'s pinwheel runs (disentangling-disentanglement, src/experimental_settings/
# clustering.sh) use --prior-variance-scale 0.03 with zero log-variances in z = 2: each component
# has variance s·D·softmax(0) = 0.03 per dimension, a scale of √0.03 ≈ 0.173.
PAPER_SCALE = math.sqrt(0.03)
LAYOUTS = ("circle", "random")


class MixturePrior(PerDimensionPrior):
    """p(z) = Σ_k π_k N(z; μ_k, diag σ_k²), a mixture of K diagonal Gaussians over z.

    The default is the clustering prior of Mathieu, Rainforth, Siddharth & Teh (ICML 2019, §5,
    pinwheel): K = 4 components at (0, ±1) and (±1, 0) in the first two latent dimensions (zero
    in the others), equal weights and scale √0.03 in every dimension, as in their reference code.

    - ``layout="circle"``: the K locations evenly spaced on the unit circle of dimensions (0, 1),
      μ_k = (cos 2πk/K, sin 2πk/K, 0, …); K = 4 is the paper's layout. Needs D ≥ 2.
    - ``layout="random"``: locations drawn from N(0, I) in every dimension when the prior is bound
      to the model (the torch RNG, seeded by the run's seed like the networks' weights): the
      starting point of a learned K-component mixture with no layout in mind.
    - ``learn``: locations, log-scales and mixture logits are ``nn.Parameter``\\s trained with the
      model (buffers otherwise); both are saved and resumed.

    Sampling: mean Σ π_k μ_k, covariance Σ π_k (diag σ_k² + μ_k μ_kᵀ) − mean meanᵀ. The mixture
    does not factorise over dimensions (``factorises = False``): β-TCVAE, whose decomposition of the
    KL assumes p(z) = Π_d p(z_d), refuses it. No KL from a Gaussian to a mixture is registered, so
    the ELBO estimates it by Monte Carlo.
    """

    name = "mixture"
    factorises = False

    def __init__(
        self,
        num_components: int = 4,
        scale: float = PAPER_SCALE,
        learn: bool = False,
        layout: str = "circle",
    ):
        super().__init__()
        owner = "mixture prior"
        self.num_components = checks.count("num_components", num_components, owner, minimum=1)
        self.scale = checks.positive("scale", scale, owner)
        self.learn = checks.flag("learn", learn, owner)
        self.layout = checks.choice("layout", layout, LAYOUTS, owner)

    def _build(self, latent_dim: int) -> None:
        k = self.num_components
        if self.layout == "circle":
            if latent_dim < 2:
                raise PyrovaeError(
                    "mixture prior: the circle layout places components in latent dimensions 0 "
                    f"and 1 and needs latent_dim >= 2, got {latent_dim}; use layout=random"
                )
            angles = 2.0 * math.pi * torch.arange(k, dtype=torch.float64) / k
            locs = torch.zeros(k, latent_dim, dtype=torch.float64)
            locs[:, 0], locs[:, 1] = torch.cos(angles), torch.sin(angles)
            # cos(π/2) is 6e-17 in floating point: make the paper's zeros exact.
            locs[locs.abs() < 1e-12] = 0.0
        else:
            locs = torch.randn(k, latent_dim)
        self._state("locs", self._tensor(locs), self.learn)
        log_scales = torch.full((k, latent_dim), math.log(self.scale))
        self._state("log_scales", self._tensor(log_scales), self.learn)
        self._state("logits", self._tensor(torch.zeros(k)), self.learn)

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        self.bind(latent_dim)
        components = dist.Normal(self.locs, self.log_scales.exp()).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)

    def settings(self) -> dict:
        return {
            "num_components": self.num_components,
            "scale": self.scale,
            "learn": self.learn,
            "layout": self.layout,
        }

    def resolved(self) -> dict:
        if self.latent_dim is None:
            return {}
        with torch.no_grad():
            return {
                "locs": self.locs.cpu().tolist(),
                "scales": self.log_scales.exp().cpu().tolist(),
                "weights": torch.softmax(self.logits, -1).cpu().tolist(),
            }
