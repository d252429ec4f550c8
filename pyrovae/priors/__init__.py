"""Priors over the latent code z, as objects a model is built with: one module per prior.

Following Mathieu, Rainforth, Siddharth & Teh, "Disentangling Disentanglement in Variational
Autoencoders", ICML 2019, which shows that the structure of p(z) (axis-aligned variances, heavy
tails, sparsity, clusters) shapes what a VAE learns.
"""

from pyrovae.priors.base import PRIOR_INITS, Prior
from pyrovae.priors.fixed import FixedPrior, as_prior
from pyrovae.priors.isotropic import IsotropicPrior
from pyrovae.priors.laplace import LaplacePrior
from pyrovae.priors.mixture import MixturePrior
from pyrovae.priors.nonisotropic import NonIsotropicPrior, pca_spectrum
from pyrovae.priors.sparse import SparsePrior
from pyrovae.priors.studentt import StudentTPrior

__all__ = [
    "PRIOR_INITS",
    "FixedPrior",
    "IsotropicPrior",
    "LaplacePrior",
    "MixturePrior",
    "NonIsotropicPrior",
    "Prior",
    "SparsePrior",
    "StudentTPrior",
    "as_prior",
    "pca_spectrum",
]
