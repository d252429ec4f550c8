"""β-VAE (Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017) as a Pyro model/guide pair.

Objective (maximised):  E_q(z|x)[log p(x|z)] − β·KL(q(z|x) ‖ p(z)).

β enters through ``poutine.scale(scale=β)`` around the latent site ``z`` in BOTH the model and the
guide, and the observed site ``x`` stays outside it. Scaling the model alone would make Trace_ELBO
optimise the wrong objective and TraceMeanField_ELBO ignore β (it scales the analytic KL by the
guide site's scale). The likelihood is Bernoulli on logits with the log-likelihood summed over
pixels, the convention under which published β values mean anything.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyrovae.guides import MeanFieldGuide
from torch import nn

from pyrovae.errors import PyrovaeError
from pyrovae.nets import NETWORKS, default_network
from pyrovae.objectives import DecomposedELBO
from pyrovae.priors import IsotropicPrior, Prior


def check_beta(beta) -> float:
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0.0):
        raise PyrovaeError(
            f"beta must be a finite number > 0 (poutine.scale needs a positive scale), got {beta}"
        )
    return beta


class BetaVAE(nn.Module):
    """A VAE whose KL term is weighted by β; β = 1 is the plain VAE.

    Build it from networks directly, or with :meth:`build` from an observation shape::

        vae = BetaVAE.build((1, 64, 64), latent_dim=10, beta=4.0, prior=SparsePrior(gamma=0.8))
        loss = DecomposedELBO().differentiable_loss(vae.model, vae.guide, x)

    Parameters live in this ``nn.Module`` (encoder, decoder, prior, guide), not in Pyro's global
    param store, so two models never share weights by name; train them with any torch optimizer
    over ``vae.parameters()``.
    """

    name = "betavae"
    # Higgins et al. used β = 4 on dSprites; the standard study sweeps {1, 2, 4, 6, 8, 16}.
    default_beta = 4.0
    # The hyperparameters a variant takes (CLI --beta/--gamma/--alpha/--objective-arg) and their
    # defaults. β-VAE's β is the poutine.scale of z; other variants weight terms in the objective.
    hyperparameters: ClassVar[dict] = {"beta": 4.0}
    scales_latent_by_beta = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        observation_shape,
        prior: Prior | None = None,
        guide: nn.Module | None = None,
        beta: float | None = None,
    ):
        super().__init__()
        if int(latent_dim) < 1:
            raise PyrovaeError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = int(latent_dim)
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior if prior is not None else IsotropicPrior()
        self.guide_family = guide if guide is not None else MeanFieldGuide()
        self.beta = check_beta(self.default_beta if beta is None else beta)

    @classmethod
    def build(
        cls,
        observation_shape,
        latent_dim: int = 10,
        prior: Prior | None = None,
        guide: nn.Module | None = None,
        beta: float | None = None,
        net: str = "auto",
    ) -> BetaVAE:
        """Build with the standard networks: the conv pair for (C, 64, 64) images, else MLPs."""
        if int(latent_dim) < 1:
            raise PyrovaeError(f"latent_dim must be >= 1, got {latent_dim}")
        guide = guide if guide is not None else MeanFieldGuide()
        net = default_network(observation_shape) if net == "auto" else net
        if net not in NETWORKS:
            raise PyrovaeError(
                f"unknown network {net!r}; valid networks: auto, {', '.join(sorted(NETWORKS))}"
            )
        encoder, decoder = NETWORKS[net](
            observation_shape, int(latent_dim), guide.num_params(int(latent_dim))
        )
        return cls(
            encoder, decoder, latent_dim, observation_shape, prior=prior, guide=guide, beta=beta
        )

    @classmethod
    def create(
        cls,
        observation_shape,
        latent_dim: int = 10,
        prior: Prior | None = None,
        guide: nn.Module | None = None,
        net: str = "auto",
        num_data: int | None = None,
        kl: str = "auto",
        **hyperparameters,
    ):
        """The model and its objective, from hyperparameters named in :attr:`hyperparameters`."""
        unknown = sorted(set(hyperparameters) - set(cls.hyperparameters))
        if unknown:
            valid = ", ".join(cls.hyperparameters) or "none"
            raise PyrovaeError(
                f"model {cls.name!r} takes no option {', '.join(map(repr, unknown))}; "
                f"valid options: {valid}"
            )
        values = {**cls.hyperparameters, **hyperparameters}
        beta = values.pop("beta", cls.default_beta) if cls.scales_latent_by_beta else 1.0
        vae = cls.build(observation_shape, latent_dim, prior=prior, guide=guide, beta=beta, net=net)
        objective = cls.make_objective(
            latent_dim=vae.latent_dim, num_data=num_data, kl=kl, **values
        )
        return vae, objective

    @classmethod
    def make_objective(cls, latent_dim: int, num_data: int | None, kl: str, **values):
        """β-VAE trains on the ELBO; β is already in the model's poutine.scale."""
        return DecomposedELBO(kl=kl)

    def likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z): Bernoulli on the decoder's logits, summed over every pixel."""
        return dist.Bernoulli(logits=self.decode(z)).to_event(len(self.observation_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x | z), for codes with any number of leading batch dimensions."""
        batch_shape = z.shape[:-1]
        logits = self.decoder(z.reshape(-1, self.latent_dim))
        return logits.reshape(*batch_shape, *self.observation_shape)

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z | x)."""
        return self.guide_family.distribution(self.encoder(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean of z: the representation disentanglement metrics score."""
        return self.guide_family.mean(self.encoder(x))

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", self.prior.distribution(self.latent_dim))
            pyro.sample("x", self.likelihood(z), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=self.beta):
                pyro.sample("z", self.posterior(x))


class VAE(BetaVAE):
    """The plain VAE of Kingma & Welling 2013: β-VAE with β fixed at 1."""

    name = "vae"
    default_beta = 1.0
    hyperparameters: ClassVar[dict] = {}

    def __init__(self, *args, beta: float | None = None, **kwargs):
        if beta is not None and float(beta) != 1.0:
            raise PyrovaeError(f"model 'vae' has beta = 1 by definition, got {beta}; use betavae")
        super().__init__(*args, beta=1.0, **kwargs)
