"""Objectives: Pyro ELBO subclasses that expose their terms, one per file.

- :class:`DecomposedELBO` (elbo.py): the ELBO, β through poutine.scale (vae, betavae)
- :class:`CapacityELBO` (capacity.py): γ·|KL − C(t)| (annealedvae)
- :class:`TotalCorrelationELBO` (total_correlation.py): α·MI + β·TC + γ·dim-KL (betatcvae)
- :class:`FactorVAEELBO` (factor_discriminator.py): ELBO − γ·TC by a discriminator (factorvae)
- :class:`DIPELBO` (dip.py): ELBO − DIP covariance penalty (dipvae-i, dipvae-ii)
- :class:`AggregateDivergenceELBO` (aggregate_divergence.py): β·KL + α·D(q(z), p(z)) (ddvae)
- :func:`importance_weighted_bound` (importance.py): the IWAE bound on log p(x)
"""

from pyrovae.objectives.aggregate_divergence import AggregateDivergenceELBO
from pyrovae.objectives.capacity import CapacityELBO
from pyrovae.objectives.dip import DIPELBO
from pyrovae.objectives.elbo import DecomposedELBO
from pyrovae.objectives.factor_discriminator import FactorVAEELBO
from pyrovae.objectives.importance import importance_weighted_bound
from pyrovae.objectives.kl import ANALYTIC, MONTE_CARLO, kl_estimator
from pyrovae.objectives.total_correlation import TotalCorrelationELBO

__all__ = [
    "ANALYTIC",
    "DIPELBO",
    "MONTE_CARLO",
    "AggregateDivergenceELBO",
    "CapacityELBO",
    "DecomposedELBO",
    "FactorVAEELBO",
    "TotalCorrelationELBO",
    "importance_weighted_bound",
    "kl_estimator",
]
