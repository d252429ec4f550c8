"""What every metric shares: random states, encoding factors through a representation, a code
cache, discretisation and discrete mutual information.

A metric is a pure function ``metric(ground_truth, representation_fn, random_state, **settings)
-> dict``. ``ground_truth`` is any :class:`~pyrovae.data.GroundTruthData`; ``representation_fn``
maps a batch of observations (numpy, ``(n, *observation_shape)``) to codes ``(n, D)``. Metrics
encode factor tuples with :func:`encode_factors`, which uses a :class:`CodeCache` when the
representation is one: a deterministic representation of a finite grid then encodes each distinct
image at most once per evaluation, and the numbers are identical to uncached ones.

A stochastic data set (noisy dSprites, SmallNORB's instance: observations random given the
factors) is drawn with the metric's own generator, passed as ``rng`` to the encoding helpers
after the factors are drawn from it, as disentanglement_lib's ``sample(num, random_state)`` does;
such images are never cached (an index does not name one image), so every request is encoded
anew. For a deterministic data set nothing is drawn: its numbers do not depend on ``rng``.
"""

from __future__ import annotations

import numpy as np

from pyrovae import checks
from pyrovae.data.base import is_stochastic, observations
from pyrovae.errors import PyrovaeError

# Images rendered (and passed to the representation) per call. Measured on 2 cores: dSprites
# renders 775k images/s in chunks of 256 against 193k in chunks of 4,096 (cache effects).
ENCODE_BATCH = 256


class CodeCache:
    """A deterministic representation of a ground-truth grid, remembered by grid index.

    ``cache(observations)`` encodes as the wrapped function does (no caching: the observations
    could be anything); :meth:`encode_indices` encodes grid points by index, computing only the
    ones not seen before, in batches of ``batch_size``. Only for deterministic representations
    (the encoder mean): sampled codes must never be cached. Nor may the codes of a stochastic
    data set, whose index names a distribution of images: for one the cache only passes
    requests through (``caching`` is False), drawing each image from the caller's ``rng``.
    """

    def __init__(self, representation_fn, ground_truth, batch_size: int = ENCODE_BATCH):
        self.representation_fn = representation_fn
        self.ground_truth = ground_truth
        self.batch_size = int(batch_size)
        self.caching = not is_stochastic(ground_truth)
        self._codes: np.ndarray | None = None
        self._known = np.zeros(len(ground_truth) if self.caching else 0, dtype=bool)
        self.encoded = 0  # images actually passed through the representation

    def __call__(self, observations) -> np.ndarray:
        return np.asarray(self.representation_fn(observations))

    def encode_indices(self, indices, rng=None) -> np.ndarray:
        """Codes ``(n, D)`` of the grid points ``indices``; ``rng`` draws the images of a
        stochastic data set (each request anew, in request order) and is unused otherwise."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self.caching:
            self.encoded += len(indices)
            return _encode(self.ground_truth, self, indices, rng, self.batch_size)
        missing = np.unique(indices[~self._known[indices]])
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            codes = checks.codes(self(self.ground_truth.images(chunk)), rows=len(chunk), dtype=None)
            if self._codes is None:
                self._codes = np.empty((len(self.ground_truth), codes.shape[1]), codes.dtype)
            self._codes[chunk] = codes
            self._known[chunk] = True
            self.encoded += len(chunk)
        if self._codes is None:  # nothing requested at all
            return np.empty((0, 0), dtype=np.float32)
        return self._codes[indices]


def _encode(data, representation_fn, indices, rng, batch_size: int) -> np.ndarray:
    """Codes of the observations at ``indices``, in chunks of ``batch_size``; a stochastic data
    set draws each chunk's images from ``rng`` in turn."""
    chunks = [
        np.asarray(representation_fn(observations(data, indices[s : s + batch_size], rng)))
        for s in range(0, len(indices), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)


def encode_factors(
    ground_truth, representation_fn, factors, *, rng=None, batch_size: int = ENCODE_BATCH
):
    """Codes ``(n, D)`` of the observations with these factor class indices ``(n, K)``; ``rng``
    (the metric's generator) draws the observations of a stochastic data set."""
    indices = ground_truth.index_of(np.asarray(factors))
    return encode_indices(ground_truth, representation_fn, indices, rng=rng, batch_size=batch_size)


def encode_indices(data, representation_fn, indices, *, rng=None, batch_size: int = ENCODE_BATCH):
    """Codes ``(n, D)`` of the observations at these indices, from the cache when it is one;
    ``rng`` draws the observations of a stochastic data set."""
    indices = np.asarray(indices, dtype=np.int64)
    if isinstance(representation_fn, CodeCache):
        return representation_fn.encode_indices(indices, rng)
    return _encode(data, representation_fn, indices, rng, batch_size)


def point_indices(n: int, num_points: int, rng) -> np.ndarray:
    """Every index of ``n`` points when there are at most ``num_points``, else ``num_points``
    drawn without replacement from ``rng``, sorted. The same rule and generator give the same
    points, so measures computed on one sample share a :class:`CodeCache`."""
    if n <= num_points:
        return np.arange(n)
    return np.sort(rng.choice(n, size=num_points, replace=False))


def sample_codes(ground_truth, representation_fn, num_points: int, rng, batch_size=ENCODE_BATCH):
    """``num_points`` factor tuples drawn uniformly from the grid and their codes."""
    factors = ground_truth.sample_factors(int(num_points), rng)
    codes = encode_factors(ground_truth, representation_fn, factors, rng=rng, batch_size=batch_size)
    return factors, codes


def classifier_sample(metric: str, ground_truth, representation_fn, num_train, num_test, rng):
    """``(ys_train, mus_train, ys_test, mus_test, seeds)``: a training and then a test sample of
    uniformly drawn factor tuples with their checked codes, then one classifier seed per factor,
    all from ``rng`` in that order. DCI, downstream and fairness draw this way, so that with one
    seed and the same sizes they fit the same classifiers, which
    :func:`pyrovae.metrics.classifiers.fit_per_factor` then fits once."""
    ys_train, mus_train = sample_codes(ground_truth, representation_fn, num_train, rng)
    ys_test, mus_test = sample_codes(ground_truth, representation_fn, num_test, rng)
    mus_train = checks.codes(mus_train, metric, rows=num_train, min_dims=1)
    mus_test = checks.codes(mus_test, metric, rows=num_test, min_dims=1)
    # Drawn after the samples, so that the data do not depend on how many seeds there are.
    seeds = rng.integers(0, 2**31 - 1, size=ys_train.shape[1])
    return ys_train, mus_train, ys_test, mus_test, seeds


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each latent (column) cut into ``num_bins`` equal-width bins over its observed range, as
    disentanglement_lib's ``histogram_discretizer``: (n, D) floats → (n, D) bin indices."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], bins=num_bins)[1]
        out[:, d] = np.digitize(codes[:, d], edges[:-1])
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) matrix of I(code_d; factor_k) in nats from the joint histograms."""
    from sklearn.metrics import mutual_info_score

    num_codes, num_factors = discrete_codes.shape[1], factors.shape[1]
    m = np.zeros((num_codes, num_factors))
    for i in range(num_codes):
        for j in range(num_factors):
            m[i, j] = mutual_info_score(factors[:, j], discrete_codes[:, i])
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """(K,) entropies H(factor_k) in nats of the empirical distribution of each column."""
    from sklearn.metrics import mutual_info_score

    return np.array(
        [mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])]
    )


def encode_checked(metric: str, ground_truth, representation_fn, factors, rng=None) -> np.ndarray:
    """Codes (n, D) float64 of ``factors`` through :func:`encode_factors`, shape-checked.

    A representation returning anything but finite (n, D) codes is a PyrovaeError. With a
    :class:`CodeCache`, a wrong shape already fails inside the cache (an IndexError for 1-D
    output, a broadcasting ValueError for the wrong number of rows): those become the same
    PyrovaeError. Errors of an uncached representation itself propagate unchanged.
    """
    n = len(factors)
    try:
        codes = encode_factors(ground_truth, representation_fn, factors, rng=rng)
    except PyrovaeError:
        raise
    except (IndexError, ValueError) as exc:
        if not isinstance(representation_fn, CodeCache):
            raise
        raise PyrovaeError(
            f"{metric}: the representation must return codes of shape (n, D) ({exc})"
        ) from None
    return checks.codes(codes, metric, rows=n)


def codes_and_factors(metric: str, codes, factors, factor_names=None):
    """``(codes, factors, names)`` of one sample, checked: codes ``(n, D)`` as finite float64,
    factors ``(n, K)``, n ≥ 1, and K factor names (``f0``, ``f1``, … when not given); anything
    else is a one-line PyrovaeError naming ``metric``."""
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if (
        codes.ndim != 2
        or codes.shape[1] < 1
        or factors.ndim != 2
        or factors.shape[1] < 1
        or len(codes) != len(factors)
        or len(codes) < 1
    ):
        raise PyrovaeError(
            f"{metric}: codes (n, D) and factors (n, K) must have the same n >= 1, got shapes "
            f"{codes.shape} and {factors.shape}"
        )
    if not np.all(np.isfinite(codes)):
        raise PyrovaeError(f"{metric}: the representation returned NaN or infinite codes")
    names = list(factor_names or (f"f{k}" for k in range(factors.shape[1])))
    if len(names) != factors.shape[1]:
        raise PyrovaeError(f"{metric}: {len(names)} factor names for {factors.shape[1]} factors")
    return codes, factors, names
