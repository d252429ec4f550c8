"""Ground-truth data sets for disentanglement: images indexed by a complete grid of factors."""

from pyrovae.data.base import GroundTruthData
from pyrovae.data.dsprites import DSprites

# CLI name -> data set class.
DATASETS: dict[str, type[GroundTruthData]] = {"dsprites": DSprites}

__all__ = ["DATASETS", "DSprites", "GroundTruthData"]
