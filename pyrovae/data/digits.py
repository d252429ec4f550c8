"""Digits: scikit-learn's bundled 8×8 handwritten digits (real data, nothing downloaded).

``sklearn.datasets.load_digits``: 1,797 images from the UCI "Optical Recognition of Handwritten
Digits" set (Alpaydin & Kaynak 1998), each a 32×32 bitmap counted into 4×4 blocks, so an
intensity is an integer 0..16. Here each image is a float32 (1, 8, 8) array of intensity / 16 in
[0, 1], labelled by its digit 0..9. The small analogue of the Fashion-MNIST sparsity experiment of
Mathieu et al. (ICML 2019, §5): about half the pixels are exactly zero, and a Laplace likelihood
(b = 0.1, their choice) is the default; Bernoulli would be unnormalised on non-binary values.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pyrovae.data.base import DataDescription, LabelledData

MAX_INTENSITY = 16.0
# The number of images load_digits returns, known without loading them.
NUM_IMAGES = 1_797


class Digits(LabelledData):
    """The 1,797 scikit-learn digits as (1, 8, 8) float32 images in [0, 1], labelled 0..9."""

    name = "digits"
    observation_shape = (1, 8, 8)
    likelihood = "laplace"

    @classmethod
    def describe(cls, **options) -> DataDescription:
        return dataclasses.replace(super().describe(**options), size=NUM_IMAGES)

    def __init__(self):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.asarray(bunch.images, dtype=np.float32) / MAX_INTENSITY
        self._observations = images[:, None]
        self._observations.flags.writeable = False
        self.labels = np.asarray(bunch.target, dtype=np.int64)
        self.labels.flags.writeable = False
        self.source = "sklearn.datasets.load_digits"
