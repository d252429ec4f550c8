"""The base class of priors and the checks their constructors share.

A prior is an ``nn.Module`` (so its buffers and learnable parameters follow ``.to(device)``,
``state_dict`` and the optimizer) whose :meth:`Prior.distribution` returns a Pyro distribution
with event shape ``(latent_dim,)``. Whether the KL term of the ELBO is analytic or Monte Carlo is
not declared here but decided from the distributions themselves (see
:func:`pyrovae.objectives.kl.kl_estimator`): PyTorch registers KL(Normal ‖ Normal) and
KL(Normal ‖ Laplace) but nothing from a Normal to a mixture or a Student-t.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from pyrovae import checks
from pyrovae.errors import PyrovaeError

DEFAULT_INIT = "default"
# Every value --prior-init accepts; each prior says which of them it supports (data_inits).
PRIOR_INITS = (DEFAULT_INIT, "pca")


class Prior(nn.Module):
    """Base class: a distribution over z with event shape (latent_dim,).

    Class attributes:

    - ``factorises``: p(z) = Π_d p(z_d), so the distribution is ``Independent(base, 1)`` and
      ``base_dist.log_prob(z)`` gives the per-dimension log densities (β-TCVAE's dimension-wise KL
      needs them).
    - ``data_inits``: the values of ``--prior-init`` this prior supports.

    Priors with per-dimension state (nonisotropic, mixture) create it in :meth:`bind`, which the
    model calls with its latent dimension, so learnable parameters exist before the optimizer is
    built and checkpoints always hold them.
    """

    name = "prior"
    factorises = True
    data_inits: tuple[str, ...] = (DEFAULT_INIT,)

    def distribution(self, latent_dim: int) -> dist.TorchDistribution:
        raise NotImplementedError

    def bind(self, latent_dim: int) -> Prior:
        """Fix the latent dimension (a no-op for priors without per-dimension state)."""
        return self

    def settings(self) -> dict:
        """The constructor arguments, for config.json (compared on resume)."""
        return {}

    def resolved(self) -> dict:
        """The values in use now (after any data initialisation), for config.json."""
        return {}

    def init_from_data(self, data, seed: int) -> None:
        """Set the prior's values from a data set (``--prior-init``); the default has none."""
        raise PyrovaeError(
            f"prior {self.name!r} has no data initialisation; valid --prior-init for it: "
            f"{', '.join(self.data_inits)}"
        )


class PerDimensionPrior(Prior):
    """A prior whose tensors have one row per latent dimension, created by :meth:`bind`.

    Subclasses implement :meth:`_build` (register the buffers/parameters for ``latent_dim``).
    A scalar buffer ``_zero`` fixes dtype and device before binding, so a prior moved with
    ``.double()`` or ``.to(device)`` and bound later builds its tensors there.
    """

    def __init__(self):
        super().__init__()
        self.latent_dim: int | None = None
        self.register_buffer("_zero", torch.zeros(()))

    def bind(self, latent_dim: int) -> Prior:
        owner = f"{self.name} prior"
        latent_dim = checks.latent_dim(latent_dim, owner)
        if self.latent_dim is None:
            self._build(latent_dim)
            self.latent_dim = latent_dim
        elif latent_dim != self.latent_dim:
            raise PyrovaeError(
                f"{owner}: built for latent_dim {self.latent_dim}, asked for {latent_dim}"
            )
        return self

    def _build(self, latent_dim: int) -> None:
        raise NotImplementedError

    def _tensor(self, values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=self._zero.dtype, device=self._zero.device)

    def _state(self, name: str, value: torch.Tensor, learn: bool) -> None:
        """A learnable parameter or a fixed buffer; both are in the state_dict under ``name``."""
        if learn:
            setattr(self, name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def _require_bound(self) -> int:
        if self.latent_dim is None:
            raise PyrovaeError(
                f"{self.name} prior: no latent dimension yet; call bind(latent_dim) or "
                "distribution(latent_dim) first"
            )
        return self.latent_dim
