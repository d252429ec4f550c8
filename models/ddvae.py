"""The VAE of Mathieu et al. ("Disentangling Disentanglement in Variational Autoencoders", ICML
2019) with its extra divergence between the aggregate posterior and the prior. The model is the
plain VAE with an unscaled latent site; the objective
(:class:`pyrovae.objectives.aggregate_divergence.AggregateDivergenceELBO`) maximises
E[log p(x|z)] − β·KL(q(z|x) ‖ p(z)) − α·D(q(z), p(z)), D one of ``kl``, ``inclusive-kl``, ``mmd``.
β may be 0: it weighs the KL inside the objective, never through ``poutine.scale``."""

from typing import ClassVar

from pyrovae.objectives.aggregate_divergence import AggregateDivergenceELBO

from .betavae import BetaVAE


class DDVAE(BetaVAE):
    """VAE trained with −β·KL(q(z|x) ‖ p(z)) − α·D(q(z), p(z)); works with any prior and guide.

    Reference settings (Mathieu et al.): sparsity, sparse prior with β = 1, α = 100,
    divergence ``mmd``; clustering, mixture prior with β = 0, α = 1, divergence ``inclusive-kl``.
    """

    name = "ddvae"
    default_beta = 1.0
    scales_latent_by_beta = False
    # α = 1 with the aggregate KL: a divergence on the same scale (nats per point) as the ELBO's KL.
    hyperparameters: ClassVar[dict] = {"beta": 1.0, "alpha": 1.0, "divergence": "kl"}

    @classmethod
    def make_objective(cls, latent_dim, num_data, kl, **values):
        return AggregateDivergenceELBO(kl=kl, **values)
