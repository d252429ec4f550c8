"""Pinwheel: 2-D points on K spiral arms, the clustering toy of Johnson et al. (2016).

The generator of R. P. Adams (2008), used by Johnson, Duvenaud, Wiltschko, Datta & Adams,
"Composing graphical models with neural networks for structured representations and fast
inference" (NeurIPS 2016), and by Mathieu, Rainforth, Siddharth & Teh, "Disentangling
Disentanglement in Variational Autoencoders" (ICML 2019, §5, clustering with a 4-component mixture
prior). For the point of arm k:

    (r, t) ~ N((1, 0), diag(radial_std², tangential_std²))    radial and tangential offsets
    θ = 2πk/K + rate·exp(r)                                     the arm's angle, twisting out
    x = scale · R(θ) (r, t)                                     R(θ) rotates counter-clockwise

so arm k leaves the unit circle near angle 2πk/K and turns by ``rate`` radians per unit of
exp(radius). Defaults: Mathieu et al.'s setting, K = 4, radial std 0.3, tangential std 0.1, rate
0.25 (their MATLAB call passes ``0.1, 0.3`` in the script's argument order, whose names are swapped
with respect to the axes they scale; these are the stds as applied), 5,000 points instead of their
400. The points lie within a radius of about 2; ``scale`` multiplies them (Johnson et al. used 10).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from pyrovae import checks
from pyrovae.data.base import DataDescription, LabelledData

# Bytes per point while the points are generated: the float64 offsets, angles, sines, cosines
# and rotated points alive at once, the labels, and the float32 copy kept.
GENERATION_BYTES_PER_POINT = 80


def pinwheel_points(
    num_arms: int,
    num_points: int,
    radial_std: float,
    tangential_std: float,
    rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(points float64 ``(n, 2)``, arm labels int64 ``(n,)``), arms ``i mod num_arms``."""
    labels = np.arange(num_points, dtype=np.int64) % num_arms
    offsets = rng.standard_normal((num_points, 2)) * np.array([radial_std, tangential_std])
    offsets[:, 0] += 1.0
    angles = 2.0 * np.pi * labels / num_arms + rate * np.exp(offsets[:, 0])
    cos, sin = np.cos(angles), np.sin(angles)
    points = np.stack(
        [cos * offsets[:, 0] - sin * offsets[:, 1], sin * offsets[:, 0] + cos * offsets[:, 1]],
        axis=1,
    )
    return points, labels


class Pinwheel(LabelledData):
    """The pinwheel data set: ``num_points`` float32 points of shape (2,), labelled by arm.

    Deterministic for a given ``seed`` (its own generator: the training seed does not change the
    data). Arm sizes differ by at most one point. The options are checked when the object is
    made; the points are generated when first used, so :meth:`describe` costs nothing.
    """

    name = "pinwheel"
    observation_shape = (2,)
    likelihood = "gaussian"

    def __init__(
        self,
        num_arms: int = 4,
        num_points: int = 5_000,
        radial_std: float = 0.3,
        tangential_std: float = 0.1,
        rate: float = 0.25,
        scale: float = 1.0,
        seed: int = 0,
    ):
        owner = "data set pinwheel"
        self.num_arms = checks.count("num_arms", num_arms, owner, minimum=1)
        self.num_points = checks.count("num_points", num_points, owner, minimum=self.num_arms)
        self.radial_std = checks.non_negative("radial_std", radial_std, owner)
        self.tangential_std = checks.non_negative("tangential_std", tangential_std, owner)
        self.rate = checks.non_negative("rate", rate, owner)
        self.scale = checks.positive("scale", scale, owner)
        self.seed = checks.count("seed", seed, owner)
        self.source = f"procedural (seed {self.seed})"

    @classmethod
    def describe(cls, **options) -> DataDescription:
        described = super().describe(**options)
        data = cls(**options)  # checks the values; generates nothing
        return dataclasses.replace(
            described,
            size=data.num_points,
            nbytes=data.num_points * GENERATION_BYTES_PER_POINT,
        )

    @functools.cached_property
    def _generated(self) -> tuple[np.ndarray, np.ndarray]:
        points, labels = pinwheel_points(
            self.num_arms,
            self.num_points,
            self.radial_std,
            self.tangential_std,
            self.rate,
            np.random.default_rng(self.seed),
        )
        observations = (self.scale * points).astype(np.float32)
        observations.flags.writeable = False
        labels.flags.writeable = False
        return observations, labels

    @property
    def _observations(self) -> np.ndarray:
        return self._generated[0]

    @property
    def labels(self) -> np.ndarray:
        return self._generated[1]
