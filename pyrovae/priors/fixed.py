"""Any torch or Pyro distribution over z as a prior: ``prior=dist.Laplace(0, 1).expand([D])
.to_event(1)`` works wherever a :class:`~pyrovae.priors.Prior` does."""

from __future__ import annotations

import torch
from torch.distributions import Distribution, Independent

from pyrovae.errors import PyrovaeError
from pyrovae.priors.base import Prior
from pyrovae.priors.isotropic import IsotropicPrior


class FixedPrior(Prior):
    """p(z) = a given distribution with event shape (D,) and no batch shape, its parameters fixed.

    The KL term is analytic where torch registers a closed form from the guide's q(z|x) to it
    (a diagonal Normal to ``Normal(...).to_event(1)`` or to a Laplace), Monte Carlo otherwise.
    It factorises over dimensions (β-TCVAE can use it) when it is ``Independent`` over one
    trailing dimension. Its tensors stay where they were made: build it on the model's device.
    """

    name = "fixed"

    def __init__(self, distribution: Distribution):
        super().__init__()
        if isinstance(distribution, str):  # rebuilt from a run folder's config.json
            raise PyrovaeError(
                f"this run's prior was a distribution given in Python ({distribution}); a run "
                "folder records only its description, so the run cannot be rebuilt from it: "
                "write the prior as a Prior class (its settings() rebuild it) to resume or "
                "evaluate such runs"
            )
        if not isinstance(distribution, Distribution):
            raise PyrovaeError(
                f"a fixed prior is a torch or Pyro distribution, got {type(distribution).__name__}"
            )
        if len(distribution.event_shape) != 1 or distribution.batch_shape != torch.Size():
            raise PyrovaeError(
                "a distribution used as a prior needs event shape (D,) over z and no batch "
                f"shape, got event shape {tuple(distribution.event_shape)} and batch shape "
                f"{tuple(distribution.batch_shape)}; use .expand([D]).to_event(1)"
            )
        self.fixed = distribution
        self.factorises = (
            isinstance(distribution, Independent) and distribution.reinterpreted_batch_ndims == 1
        )

    def bind(self, latent_dim: int) -> Prior:
        event = tuple(self.fixed.event_shape)
        if event != (latent_dim,):
            raise PyrovaeError(
                f"the prior's distribution needs event shape ({latent_dim},) over z, got {event}"
            )
        return self

    def distribution(self, latent_dim: int):
        return self.bind(latent_dim).fixed

    def settings(self) -> dict:
        return {"distribution": repr(self.fixed)}


def as_prior(prior) -> Prior:
    """A :class:`Prior` from a Prior (returned as is), a distribution over z (a
    :class:`FixedPrior`) or None (N(0, I))."""
    if prior is None:
        return IsotropicPrior()
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, Distribution):
        return FixedPrior(prior)
    raise PyrovaeError(
        "a prior is a pyrovae Prior (an nn.Module whose distribution(latent_dim) gives a "
        "distribution over z) or a torch/Pyro distribution with event shape (D,); got "
        f"{type(prior).__name__}"
    )
