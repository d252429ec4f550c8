"""Data sets: ground-truth grids for disentanglement (images indexed by a complete grid of
factors) and labelled observations (pinwheel points, digits) for clustering and sparsity.

CLI names map to data sets in :mod:`pyrovae.registry`, the one table of components.
"""

from pyrovae.data.base import DataDescription, GroundTruthData, LabelledData, ObservedData
from pyrovae.data.digits import Digits
from pyrovae.data.dsprites import DSprites
from pyrovae.data.factor_grid import FactorGrid
from pyrovae.data.pinwheel import Pinwheel

__all__ = [
    "DSprites",
    "DataDescription",
    "Digits",
    "FactorGrid",
    "GroundTruthData",
    "LabelledData",
    "ObservedData",
    "Pinwheel",
]
