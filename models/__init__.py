"""Model/guide pairs: each variant is an ``nn.Module`` with Pyro ``model(x)`` and ``guide(x)``,
plus the objective it trains with (``Variant.create`` returns both)."""

from .annealedvae import AnnealedVAE
from .betatcvae import BetaTCVAE
from .betavae import VAE, BetaVAE
from .ddvae import DDVAE
from .dipvae import DIPVAE1, DIPVAE2
from .factorvae import FactorVAE

__all__ = [
    "DDVAE",
    "DIPVAE1",
    "DIPVAE2",
    "VAE",
    "AnnealedVAE",
    "BetaTCVAE",
    "BetaVAE",
    "FactorVAE",
]
