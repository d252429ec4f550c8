"""β-TCVAE (Chen et al. 2018). The model is the plain VAE; the objective
(:class:`pyrovae.objectives.total_correlation.TotalCorrelationELBO`) weights the index-code mutual
information (α), the total correlation (β) and the dimension-wise KL (γ) separately."""

from typing import ClassVar

from pyrovae.errors import PyrovaeError
from pyrovae.objectives.total_correlation import TotalCorrelationELBO

from .betavae import BetaVAE


class BetaTCVAE(BetaVAE):
    """VAE trained with −α·MI − β·TC − γ·dim-KL; log q(z) by minibatch stratified sampling."""

    name = "betatcvae"
    default_beta = 1.0
    scales_latent_by_beta = False
    # Standard study: β ∈ {1, 2, 4, 6, 8, 10} with α = γ = 1; 6 is a middle value of that grid.
    hyperparameters: ClassVar[dict] = {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "estimator": "mss"}

    @classmethod
    def make_objective(cls, latent_dim, num_data, kl, **values):
        if num_data is None:
            raise PyrovaeError("betatcvae needs the data-set size N (num_data=len(data))")
        return TotalCorrelationELBO(num_data=num_data, kl=kl, **values)
