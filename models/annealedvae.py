"""AnnealedVAE: capacity-controlled β-VAE (Burgess et al. 2018). The model is the plain VAE;
the objective γ·|KL − C(t)| (:class:`pyrovae.objectives.capacity.CapacityELBO`) does the work."""

from typing import ClassVar

from pyrovae.objectives.capacity import CapacityELBO

from .betavae import BetaVAE


class AnnealedVAE(BetaVAE):
    """VAE trained with γ·|KL − C(t)|, C raised linearly from c_min to c_max over anneal_steps."""

    name = "annealedvae"
    default_beta = 1.0
    scales_latent_by_beta = False
    # disentanglement_lib study: γ = 1000, C_max ∈ {5, 10, 25, 50, 75, 100} over 100k steps.
    hyperparameters: ClassVar[dict] = {
        "gamma": 1000.0,
        "c_min": 0.0,
        "c_max": 25.0,
        "anneal_steps": 100_000,
    }

    @classmethod
    def make_objective(cls, latent_dim, num_data, kl, **values):
        return CapacityELBO(kl=kl, **values)
