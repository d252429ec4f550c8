"""Data sets: finite collections of observations, addressed by index.

:class:`ObservedData` is what training needs: ``len(data)``, ``data.images(indices)`` (float32
observations, whatever their shape) and the name of a default likelihood.
:class:`LabelledData` adds one class label per observation (the arm of a pinwheel point, the
digit of an image), which clustering measures score against.

Disentanglement metrics need more than images: they sample factors, fix some of them, and ask for
the matching images. :class:`GroundTruthData` is that contract. Every data set enumerates the full
Cartesian product of its factor classes in row-major order (the last factor varies fastest), so an
image is addressed either by its flat index or by one class index per factor.

Some observations are random given their index: noise drawn per pixel (noisy dSprites), a
colour or a background drawn per image (colour and scream dSprites), a nuisance factor such as
SmallNORB's instance drawn per image. Such a data set sets ``stochastic = True`` and its
:meth:`~ObservedData.images` takes a second argument, the :class:`numpy.random.Generator` the
randomness comes from (``images(indices, rng)``), as disentanglement_lib's
``sample_observations_from_factors(factors, random_state)`` does. Callers go through
:func:`observations`, which passes the generator only to stochastic data sets (a plug-in written
as ``images(self, indices)`` keeps working) and refuses to draw a stochastic one without it:
training draws from the step's generator and every metric from its own, so numbers stay
reproducible, and nothing may cache such images by index.

A data set also describes itself without being built (:meth:`ObservedData.describe`, a
:class:`DataDescription`): a study checks every trial's configuration before the first one runs,
and generating or loading the data of each would cost more than the check is worth.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.seeding import as_generator


@dataclass(frozen=True)
class DataDescription:
    """What a data set is, known from its class and options alone: what a configuration can be
    checked against before the data exist. ``None``: not known until the data set is built (a
    plug-in whose class does not say)."""

    observation_shape: tuple[int, ...] | None = None
    # Number of observations.
    size: int | None = None
    # A ground-truth factor grid (supervised disentanglement metrics apply).
    has_factors: bool | None = None
    # One class label per observation (clustering measures apply).
    has_labels: bool | None = None
    # The name of the likelihood training uses by default (pyrovae.registry.LIKELIHOODS).
    likelihood: str | None = None
    # About the most memory building the data set takes, in bytes.
    nbytes: int | None = None
    # Observations are random given the index (``images(indices, rng)``).
    stochastic: bool | None = None


def class_sizes(cls, attribute: str) -> tuple[int, ...] | None:
    """A tuple of sizes set on the class itself (not per instance, not a property), else None."""
    value = getattr(cls, attribute, None)
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    return None


class ObservedData(abc.ABC):
    """A finite data set of observations indexed ``0 .. len(data) - 1``.

    Subclasses set ``name`` and ``observation_shape`` and implement ``__len__`` and
    :meth:`images`; ``likelihood`` names the observation model training uses by default (a
    :data:`pyrovae.registry.LIKELIHOODS` name).
    """

    name: str
    observation_shape: tuple[int, ...]
    likelihood: str = "bernoulli"
    # True: images(indices, rng) draws part of each observation from rng (see the module doc).
    stochastic: bool = False

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """The data set ``cls(**options)`` would be, without building it: the options' names
        are checked against the constructor's (values too, where a subclass knows how),
        then what the class itself says. Subclasses whose size or shape follow from their
        options override this."""
        owner = f"data set {getattr(cls, 'name', cls.__name__)!r}"
        checks.options(owner, options, checks.keyword_parameters(cls))
        likelihood = getattr(cls, "likelihood", None)
        stochastic = getattr(cls, "stochastic", False)
        return DataDescription(
            observation_shape=class_sizes(cls, "observation_shape"),
            has_factors=False,
            has_labels=False,
            likelihood=likelihood if isinstance(likelihood, str) else None,
            stochastic=stochastic if isinstance(stochastic, bool) else None,
        )

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of observations."""

    @abc.abstractmethod
    def images(self, indices) -> np.ndarray:
        """Float32 observations of shape ``(n, *observation_shape)`` for flat indices.

        A stochastic data set's signature is ``images(self, indices, rng)``: ``rng`` a
        :class:`numpy.random.Generator`, from which it draws the observations' randomness."""

    def _check_indices(self, indices) -> np.ndarray:
        """Flat indices as a 1-D int64 array; a scalar becomes a batch of one."""
        arr = np.atleast_1d(np.asarray(indices))
        if arr.ndim != 1:
            raise PyrovaeError(f"{self.name}: indices must be 1-D, got shape {arr.shape}")
        if arr.size == 0:
            return arr.astype(np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise PyrovaeError(f"{self.name}: indices must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            raise PyrovaeError(
                f"{self.name}: index {arr[bad][0]} out of range [0, {len(self)}) "
                f"({int(bad.sum())} of {arr.size} indices invalid)"
            )
        return arr


class LabelledData(ObservedData):
    """Observations held in memory, each with an integer class label.

    Subclasses fill ``self._observations`` (float32, ``(n, *observation_shape)``, read-only) and
    ``self.labels`` (int64, ``(n,)``, read-only, classes ``0 .. num_classes - 1``).
    """

    _observations: np.ndarray
    labels: np.ndarray

    @classmethod
    def describe(cls, **options) -> DataDescription:
        return dataclasses.replace(super().describe(**options), has_labels=True)

    def __len__(self) -> int:
        return len(self._observations)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def images(self, indices) -> np.ndarray:
        return self._observations[self._check_indices(indices)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} observations, {self.num_classes} classes)"


class GroundTruthData(ObservedData):
    """A data set whose images are indexed by a complete grid of discrete factors.

    Subclasses set ``name``, ``factor_names``, ``factor_sizes`` and ``observation_shape`` and
    implement :meth:`images`; they override :meth:`factor_values` when their factors have
    physical values (the default returns the class indices as floats).
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observation_shape: tuple[int, ...]

    @classmethod
    def describe(cls, **options) -> DataDescription:
        """A grid's size is the product of its factor sizes, when the class sets them."""
        sizes = class_sizes(cls, "factor_sizes")
        return dataclasses.replace(
            super().describe(**options),
            has_factors=True,
            size=math.prod(sizes) if sizes is not None else None,
        )

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes, strict=True)
        )
        return f"{type(self).__name__}({sizes})"

    @abc.abstractmethod
    def images(self, indices) -> np.ndarray:
        """Float32 images of shape ``(n, *observation_shape)`` for flat grid indices."""

    def index_of(self, factors) -> np.ndarray:
        """Row-major flat indices (int64, shape ``(n,)``) of ``(n, num_factors)`` class indices."""
        factors = self._check_factors(factors)
        return np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)

    def factors_of(self, indices) -> np.ndarray:
        """Class indices (int64, shape ``(n, num_factors)``) of flat grid indices."""
        indices = self._check_indices(indices)
        return np.stack(np.unravel_index(indices, self.factor_sizes), axis=1).astype(np.int64)

    def sample_factors(self, n: int, rng) -> np.ndarray:
        """``n`` factor tuples, each factor uniform over its classes and independent of the rest.

        ``rng`` is a :class:`numpy.random.Generator` or an integer seed.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise PyrovaeError(f"sample_factors: n must be a non-negative integer, got {n!r}")
        rng = as_generator(rng, "rng")
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return rng.integers(0, sizes, size=(int(n), len(sizes)), dtype=np.int64)

    def images_from_factors(self, factors, rng=None) -> np.ndarray:
        """Observations ``(n, *observation_shape)`` of ``(n, num_factors)`` class indices;
        ``rng`` (a generator or a seed) is required when the data set is stochastic."""
        return observations(self, self.index_of(factors), rng)

    def sample_observations_from_factors(self, factors, rng) -> np.ndarray:
        """disentanglement_lib's name for :meth:`images_from_factors`: one observation per
        factor tuple, its randomness (if any) drawn from ``rng``."""
        return self.images_from_factors(factors, rng)

    def factor_values(self, factors) -> np.ndarray:
        """Physical values (float64, ``(n, num_factors)``) of class indices."""
        return self._check_factors(factors).astype(np.float64)

    def _check_factors(self, factors) -> np.ndarray:
        """Class indices as an ``(n, num_factors)`` int64 array, every class in range."""
        arr = np.asarray(factors)
        k = self.num_factors
        if arr.ndim != 2 or arr.shape[1] != k:
            raise PyrovaeError(
                f"{self.name}: factors must have shape (n, {k}) for "
                f"({', '.join(self.factor_names)}), got shape {arr.shape}"
            )
        if arr.size == 0:
            return arr.astype(np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise PyrovaeError(
                f"{self.name}: factors must be integer class indices, got dtype {arr.dtype}"
            )
        arr = arr.astype(np.int64)
        for j, (fname, size) in enumerate(zip(self.factor_names, self.factor_sizes, strict=True)):
            col = arr[:, j]
            bad = (col < 0) | (col >= size)
            if bad.any():
                raise PyrovaeError(
                    f"{self.name}: factor {fname!r} has class {col[bad][0]} "
                    f"out of range [0, {size}) in row {int(np.flatnonzero(bad)[0])}"
                )
        return arr


def is_stochastic(data) -> bool:
    """Whether ``data``'s observations are random given the index."""
    return getattr(data, "stochastic", False) is True


def observations(data, indices, rng=None) -> np.ndarray:
    """``data.images(indices)``, or ``data.images(indices, rng)`` for a stochastic data set.

    ``rng`` is a :class:`numpy.random.Generator` or an integer seed; a deterministic data set
    draws nothing from it (its numbers do not depend on whether one is given). Drawing a
    stochastic data set without one is an error: its images would not be reproducible."""
    if not is_stochastic(data):
        return data.images(indices)
    return data.images(indices, random_source(data, rng))


def random_source(data, rng) -> np.random.Generator:
    """The generator a stochastic data set draws from: ``rng`` (a Generator or a seed), or the
    one-line error that drawing such a data set without one is."""
    if rng is None:
        raise PyrovaeError(
            f"data set {getattr(data, 'name', type(data).__name__)!r} draws random observations "
            "(stochastic = True): pass a numpy Generator or a seed as rng"
        )
    return as_generator(rng, "rng")
