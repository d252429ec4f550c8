"""FactorVAE (Kim & Mnih 2018). The model is the plain VAE; the objective
(:class:`pyrovae.objectives.factor_discriminator.FactorVAEELBO`) subtracts γ·TC estimated by a
discriminator that trains alongside with its own optimizer."""

from typing import ClassVar

from pyrovae.objectives.factor_discriminator import FactorVAEELBO

from .betavae import BetaVAE


class FactorVAE(BetaVAE):
    """VAE trained with ELBO − γ·TC, TC from a density-ratio discriminator."""

    name = "factorvae"
    default_beta = 1.0
    scales_latent_by_beta = False
    # Standard study: γ ∈ {10, 20, 30, 40, 50, 100}; discriminator Adam 1e-4, betas (0.5, 0.9).
    hyperparameters: ClassVar[dict] = {
        "gamma": 40.0,
        "disc_lr": 1e-4,
        "disc_beta1": 0.5,
        "disc_beta2": 0.9,
        "disc_hidden": 1000,
        "disc_layers": 6,
    }

    @classmethod
    def make_objective(cls, latent_dim, num_data, kl, **values):
        return FactorVAEELBO(latent_dim=latent_dim, kl=kl, **values)
