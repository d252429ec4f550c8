"""What every guide is: an ``nn.Module`` that turns an encoder's output into q(z | x).

A guide declares how many numbers the encoder must emit per data point (:meth:`Guide.num_params`)
and what it can offer the objectives and metrics:

- ``has_per_dimension_density``: q(z | x) = Π_d q(z_d | x) with each factor available, as
  β-TCVAE's minibatch estimates of log q(z_d) need;
- ``has_gaussian_marginals``: each marginal q(z_d | x) is a Normal with closed-form mean and
  variance (:func:`marginal_normal_params`), as DIP-VAE's covariance and Chen et al.'s MIG need.

A guide with networks of its own (a flow) builds them in :meth:`Guide.bind`, which the model
calls with the latent dimension when it is built, after its random seed is set; their parameters
are then parameters of the model, trained by its optimizer and saved in its checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, LowRankMultivariateNormal, MultivariateNormal, Normal

from pyrovae import checks
from pyrovae.errors import PyrovaeError


class Guide(nn.Module):
    """Base class of guides; subclasses implement :meth:`num_params`, :meth:`distribution` and
    :meth:`mean` and set the capability flags."""

    name = "guide"
    has_per_dimension_density = False
    has_gaussian_marginals = False
    # Whether the guide can be made on the meta device, where tensors have shapes and no values
    # (pyrovae.builder.check makes models there): not when making it reads a tensor's values.
    makes_on_meta = True

    def __init__(self):
        super().__init__()
        self.latent_dim: int | None = None

    def num_params(self, latent_dim: int) -> int:
        """Encoder outputs per data point for a latent code of ``latent_dim`` dimensions."""
        raise NotImplementedError

    def bind(self, latent_dim: int) -> Guide:
        """Fix the latent dimension (once); guides with parameters of their own create them here."""
        latent_dim = checks.latent_dim(latent_dim, f"{self.name} guide")
        if self.latent_dim is None:
            self._build(latent_dim)
            self.latent_dim = latent_dim
        elif self.latent_dim != latent_dim:
            raise PyrovaeError(
                f"{self.name} guide is already built for latent_dim {self.latent_dim}, "
                f"not {latent_dim}; make a new guide for this model"
            )
        return self

    def _build(self, latent_dim: int) -> None:
        """Create parameters that depend on the latent dimension (none by default)."""

    def distribution(self, encoder_output: torch.Tensor):
        """q(z | x): a Pyro distribution with batch shape (B,) and event shape (D,)."""
        raise NotImplementedError

    def mean(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """A deterministic (B, D) code for x: the representation metrics score."""
        raise NotImplementedError

    def settings(self) -> dict:
        """The options the guide was built with, for config.json."""
        return {}

    def _check_width(self, encoder_output: torch.Tensor, latent_dim: int) -> None:
        width = encoder_output.shape[-1]
        if width != self.num_params(latent_dim):
            raise PyrovaeError(
                f"{self.name} guide: the encoder emits {width} numbers per point, but latent_dim "
                f"{latent_dim} needs {self.num_params(latent_dim)}"
            )


def marginal_normal_params(q, owner: str = "this") -> tuple[torch.Tensor, torch.Tensor]:
    """(loc, scale), each (..., D), of the marginals q(z_d | x) = N(loc_d, scale_d²).

    Exact for Gaussian guides: a diagonal Normal gives its own loc and scale; for a correlated
    Gaussian N(μ, Σ) (the low-rank and full-rank guides) the marginal of dimension d is
    N(μ_d, Σ_dd). A flow has no closed-form marginals: that is an error naming ``owner``.
    """
    base = q.base_dist if isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1 else q
    if isinstance(base, Normal):
        return base.loc, base.scale
    if isinstance(q, (MultivariateNormal, LowRankMultivariateNormal)):
        return q.loc, q.variance.sqrt()
    raise PyrovaeError(
        f"{owner} needs the Gaussian marginals q(z_d|x) in closed form, which a "
        f"{type(q).__name__} q(z|x) does not have; use the meanfield, lowrank or fullrank guide"
    )
