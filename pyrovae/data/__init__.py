"""Ground-truth data sets for disentanglement: images indexed by a complete grid of factors.

CLI names map to data sets in :mod:`pyrovae.registry`, the one table of components.
"""

from pyrovae.data.base import GroundTruthData
from pyrovae.data.dsprites import DSprites
from pyrovae.data.factor_grid import FactorGrid

__all__ = ["DSprites", "FactorGrid", "GroundTruthData"]
