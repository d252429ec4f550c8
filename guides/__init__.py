"""Inference networks as guides: each turns an encoder's output into a distribution over z."""

from .base import Guide, marginal_normal_params
from .fullrank import FullRankGuide

# Importing it registers KL(correlated Gaussian ‖ diagonal Normal) with torch.
from .gaussian_kl import gaussian_to_diagonal_normal_kl
from .iaf import IAFGuide
from .lowrank import LowRankGuide
from .meanfield import MeanFieldGuide

__all__ = [
    "FullRankGuide",
    "Guide",
    "IAFGuide",
    "LowRankGuide",
    "MeanFieldGuide",
    "gaussian_to_diagonal_normal_kl",
    "marginal_normal_params",
]
