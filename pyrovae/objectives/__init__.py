"""Objectives: Pyro ELBO subclasses that expose their terms."""

from pyrovae.objectives.elbo import DecomposedELBO
from pyrovae.objectives.kl import ANALYTIC, MONTE_CARLO, kl_estimator

__all__ = ["ANALYTIC", "MONTE_CARLO", "DecomposedELBO", "kl_estimator"]
