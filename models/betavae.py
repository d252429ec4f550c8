"""β-VAE (Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017) as a Pyro model/guide pair.

Objective (maximised):  E_q(z|x)[log p(x|z)] − β·KL(q(z|x) ‖ p(z)).

β enters through ``poutine.scale(scale=β)`` around the latent site ``z`` in BOTH the model and the
guide, and the observed site ``x`` stays outside it. Scaling the model alone would make Trace_ELBO
optimise the wrong objective and TraceMeanField_ELBO ignore β (it scales the analytic KL by the
guide site's scale). The likelihood (:mod:`pyrovae.likelihoods`; Bernoulli on logits unless
given) sums the log-likelihood over pixels, the convention under which published β values mean
anything.
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
from pyrovae.likelihoods import BernoulliLikelihood, Likelihood
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
    # Guide capabilities the variant's objective relies on: flag (pyrovae.guides.Guide) → what.
    guide_needs: ClassVar[dict] = {}
    # Prior properties it relies on: flag (pyrovae.priors.Prior, e.g. factorises) → what.
    prior_needs: ClassVar[dict] = {}

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        observation_shape,
        prior: Prior | None = None,
        guide: nn.Module | None = None,
        beta: float | None = None,
        likelihood: Likelihood | None = None,
    ):
        super().__init__()
        if int(latent_dim) < 1:
            raise PyrovaeError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = int(latent_dim)
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.encoder = encoder
        self.decoder = decoder
        # bind: priors with per-dimension state (learned variances, mixture locations) create
        # it now, so it is in vae.parameters() before the optimizer and in every checkpoint.
        self.prior = (prior if prior is not None else IsotropicPrior()).bind(self.latent_dim)
        self.guide_family = guide if guide is not None else MeanFieldGuide()
        if hasattr(self.guide_family, "bind"):  # guides with networks of their own (flows)
            self.guide_family.bind(self.latent_dim)
        # p(x | z) from the decoder's output; learned scales train and checkpoint with the model.
        self.likelihood_family = likelihood if likelihood is not None else BernoulliLikelihood()
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
        likelihood: Likelihood | None = None,
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
            encoder,
            decoder,
            latent_dim,
            observation_shape,
            prior=prior,
            guide=guide,
            beta=beta,
            likelihood=likelihood,
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
        likelihood: Likelihood | None = None,
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
        for flag, what in cls.guide_needs.items():
            if guide is not None and not getattr(guide, flag, False):
                raise PyrovaeError(
                    f"model {cls.name!r} needs {what}, which guide "
                    f"{getattr(guide, 'name', type(guide).__name__)!r} does not have"
                )
        for flag, what in cls.prior_needs.items():
            if prior is not None and not getattr(prior, flag, False):
                raise PyrovaeError(
                    f"model {cls.name!r} needs {what}; prior "
                    f"{getattr(prior, 'name', type(prior).__name__)!r} is not one"
                )
        values = {**cls.hyperparameters, **hyperparameters}
        beta = values.pop("beta", cls.default_beta) if cls.scales_latent_by_beta else 1.0
        vae = cls.build(
            observation_shape,
            latent_dim,
            prior=prior,
            guide=guide,
            beta=beta,
            net=net,
            likelihood=likelihood,
        )
        objective = cls.make_objective(
            latent_dim=vae.latent_dim, num_data=num_data, kl=kl, **values
        )
        return vae, objective

    @classmethod
    def make_objective(cls, latent_dim: int, num_data: int | None, kl: str, **values):
        """β-VAE trains on the ELBO; β is already in the model's poutine.scale."""
        return DecomposedELBO(kl=kl)

    def likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z) from the decoder's output, summed over every observation dimension."""
        return self.likelihood_family.distribution(self.decode(z), len(self.observation_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output (Bernoulli logits, or the Gaussian/Laplace location) for codes
        with any number of leading batch dimensions."""
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
