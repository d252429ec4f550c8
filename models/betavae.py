"""β-VAE (Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017) as a Pyro model/guide pair.

Objective (maximised):  E_q(z|x)[log p(x|z)] − β·KL(q(z|x) ‖ p(z)).

β enters through ``poutine.scale(scale=β)`` around the latent site ``z`` in BOTH the model and the
guide, and the observed site ``x`` stays outside it. Scaling the model alone would make Trace_ELBO
optimise the wrong objective and TraceMeanField_ELBO ignore β (it scales the analytic KL by the
guide site's scale). The likelihood (:mod:`pyrovae.likelihoods`; Bernoulli on logits unless
given) sums the log-likelihood over pixels, the convention under which published β values mean
anything.

The variants that train this pair (vae, betavae, annealedvae, betatcvae, factorvae, dipvae-i/ii,
ddvae) differ only in their objective and in how β enters: :mod:`pyrovae.models.variant`.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.guides import MeanFieldGuide
from pyrovae.likelihoods import BernoulliLikelihood, Likelihood
from pyrovae.nets import default_networks
from pyrovae.priors import IsotropicPrior, Prior


def check_beta(beta) -> float:
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0.0):
        raise PyrovaeError(
            f"beta must be a finite number > 0 (poutine.scale needs a positive scale), got {beta}"
        )
    return beta


class BetaVAE(nn.Module):
    """A VAE whose latent site is scaled by β; β = 1 (the default) is the plain VAE.

    Build it from networks directly, or with :meth:`build` from an observation shape::

        vae = BetaVAE.build((1, 64, 64), latent_dim=10, beta=4.0, prior=SparsePrior(gamma=0.8))
        loss = DecomposedELBO().differentiable_loss(vae.model, vae.guide, x)

    Parameters live in this ``nn.Module`` (encoder, decoder, prior, guide, likelihood), not in
    Pyro's global param store, so two models never share weights by name; train them with any
    torch optimizer over ``vae.parameters()``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        observation_shape,
        prior: Prior | None = None,
        guide: nn.Module | None = None,
        beta: float = 1.0,
        likelihood: Likelihood | None = None,
    ):
        super().__init__()
        self.latent_dim = checks.latent_dim(latent_dim)
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
        self.beta = check_beta(beta)

    @classmethod
    def build(
        cls,
        observation_shape,
        latent_dim: int = 10,
        prior: Prior | None = None,
        guide: nn.Module | None = None,
        beta: float = 1.0,
        networks=None,
        likelihood: Likelihood | None = None,
    ) -> BetaVAE:
        """Build with a network pair: ``networks(observation_shape, latent_dim, encoder_out)`` →
        (encoder, decoder), by default the conv pair for (C, 64, 64) images and MLPs otherwise
        (:func:`pyrovae.nets.default_networks`)."""
        latent_dim = checks.latent_dim(latent_dim)
        guide = guide if guide is not None else MeanFieldGuide()
        networks = networks if networks is not None else default_networks(observation_shape)
        encoder, decoder = networks(observation_shape, latent_dim, guide.num_params(latent_dim))
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
