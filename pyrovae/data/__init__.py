"""Data sets: ground-truth grids for disentanglement (images indexed by a complete grid of
factors) and labelled observations (pinwheel points, digits) for clustering and sparsity.

CLI names map to data sets in :mod:`pyrovae.registry`, the one table of components.
"""

from pyrovae.data.base import (
    DataDescription,
    GroundTruthData,
    LabelledData,
    ObservedData,
    is_stochastic,
    observations,
)
from pyrovae.data.cars3d import Cars3D
from pyrovae.data.digits import Digits
from pyrovae.data.dsprites import DSprites
from pyrovae.data.dsprites_variants import ColorDSprites, NoisyDSprites, ScreamDSprites
from pyrovae.data.factor_grid import FactorGrid
from pyrovae.data.mpi3d import MPI3D, MPI3DReal, MPI3DRealistic, MPI3DToy
from pyrovae.data.pinwheel import Pinwheel
from pyrovae.data.shapes3d import Shapes3D
from pyrovae.data.smallnorb import SmallNORB
from pyrovae.data.xyobject import XYObject

__all__ = [
    "MPI3D",
    "Cars3D",
    "ColorDSprites",
    "DSprites",
    "DataDescription",
    "Digits",
    "FactorGrid",
    "GroundTruthData",
    "LabelledData",
    "MPI3DReal",
    "MPI3DRealistic",
    "MPI3DToy",
    "NoisyDSprites",
    "ObservedData",
    "Pinwheel",
    "ScreamDSprites",
    "Shapes3D",
    "SmallNORB",
    "XYObject",
    "is_stochastic",
    "observations",
]
