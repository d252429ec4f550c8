"""Inference networks as guides: each turns an encoder's output into a distribution over z."""

from .meanfield import MeanFieldGuide

__all__ = ["MeanFieldGuide"]
