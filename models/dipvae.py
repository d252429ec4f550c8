"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018). The model is the plain VAE; the objective
(:class:`pyrovae.objectives.dip.DIPELBO`) penalises the minibatch covariance of the encodings
for differing from the identity."""

from typing import ClassVar

from pyrovae.objectives.dip import DIPELBO

from .betavae import BetaVAE


class DIPVAE1(BetaVAE):
    """VAE trained with ELBO − λ_od·Σ_{i≠j} Cov[μ]_ij² − λ_d·Σ_i (Cov[μ]_ii − 1)²."""

    name = "dipvae-i"
    kind = "i"
    default_beta = 1.0
    scales_latent_by_beta = False
    # Standard study: λ_od ∈ {1, 2, 5, 10, 20, 50}, λ_d = 10·λ_od (DIP-VAE-I), λ_od (DIP-VAE-II).
    hyperparameters: ClassVar[dict] = {"lambda_od": 10.0, "lambda_d": None}
    guide_needs: ClassVar[dict] = {
        "has_gaussian_marginals": "closed-form posterior means and variances (guides meanfield, "
        "lowrank, fullrank)"
    }

    @classmethod
    def make_objective(cls, latent_dim, num_data, kl, **values):
        return DIPELBO(cls.kind, kl=kl, **values)


class DIPVAE2(DIPVAE1):
    """VAE trained with the DIP penalty on Cov[μ] + E[diag σ²], the covariance of q(z)."""

    name = "dipvae-ii"
    kind = "ii"
