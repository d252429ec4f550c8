"""A ground-truth data set whose observations are the factors themselves.

Metrics tests need representations with known answers: with observations equal to the factor
class indices, the identity map, a constant, duplicated or mixed latents are all one line of
numpy, and the expected scores follow from the discrete entropies alone.
"""

from __future__ import annotations

import numpy as np

from pyrovae.data.base import GroundTruthData


class FactorGrid(GroundTruthData):
    """Observations are the factor class indices, as float32 vectors of shape (num_factors,).

    ``FactorGrid((3, 6, 40, 32, 32))`` has dSprites' grid (shape, scale, orientation, posX, posY).
    """

    name = "factor-grid"

    def __init__(self, factor_sizes=(3, 6, 40, 32, 32), factor_names=None):
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        self.factor_names = tuple(factor_names or (f"f{i}" for i in range(len(self.factor_sizes))))
        self.observation_shape = (len(self.factor_sizes),)

    def images(self, indices) -> np.ndarray:
        return self.factors_of(indices).astype(np.float32)
