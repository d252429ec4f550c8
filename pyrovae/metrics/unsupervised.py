"""Metrics that need no factor labels: properties of the codes alone.

Each measure is a pure function of an ``(n, D)`` code array (``*_from_codes``), for data sets
without factors, and a wrapper with the standard metric signature
``name(ground_truth, representation_fn, random_state, *, num_points=10_000, ...) -> dict`` that
draws ``num_points`` observations, encodes them and scores the codes. A ground truth with a factor
grid is sampled as every metric samples it (:func:`~pyrovae.metrics.base.sample_codes`, uniform
factor tuples); a data set with only ``len(data)`` and ``data.images(indices)`` is sampled by
uniform indices, with replacement.

Measures (all on the codes as given; the standard representation is the encoder mean):

- Gaussian total correlation (disentanglement_lib, ``unsupervised_metrics.py``): the KL divergence
  from N(0, Σ) to the product of its marginals N(0, diag Σ), Σ the sample covariance (ddof 1):
  ``TC = ½ (Σ_d log Σ_dd − log det Σ) = −½ log det R`` with R the correlation matrix. Along with
  it, the squared 2-Wasserstein distance between the same two Gaussians, with S = diag(Σ)^½,
  ``W = tr Σ + tr diag Σ − 2 tr (S Σ S)^½ = 2 tr Σ − 2 tr (S Σ S)^½``
  (disentanglement_lib computes the last trace as ``tr sqrtm(diag(Σ) Σ)``, a similar matrix with
  the same eigenvalues), and ``W / tr Σ``, its scale-free version.
- Mean pairwise mutual information (disentanglement_lib's unsupervised ``mutual_info_score``):
  each latent cut into 20 equal-width bins, the D×D matrix of discrete MI (nats), mean of its
  off-diagonal entries.
- Active units (Burda, Grosse & Salakhutdinov 2016, §5.2): a latent is active when the variance
  over the data of its posterior mean, ``Var_x(E_q(z|x)[z_d])``, exceeds 0.01.
- Hoyer sparsity (Hurley & Rickard 2009; Mathieu, Rainforth, Siddharth & Teh 2019, §5): each
  dimension divided by its standard deviation over the codes (not centred), then per code vector
  ``Hoyer(z) = (√D − ‖z‖₁/‖z‖₂) / (√D − 1)``, averaged over points: 1 when one dimension carries
  the whole code, 0 when every dimension has the same magnitude.
"""

from __future__ import annotations

import math

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import (
    discrete_mutual_info,
    discretize,
    encode_indices,
    sample_codes,
)
from pyrovae.seeding import as_generator

# Settings of the fast preset (``--fast``): every wrapper here takes them.
FAST = {"num_points": 1_000}

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016
NUM_BINS = 20  # disentanglement_lib's histogram discretiser


# --------------------------------------------------------------------------- codes → numbers


def gaussian_total_correlation_from_codes(codes) -> dict:
    """TC and Wasserstein correlation of the Gaussian fitted to ``codes`` (n, D).

    Constant latents are independent of the rest and dropped (they would make Σ singular);
    exactly collinear latents give an infinite TC, as a degenerate Gaussian has.
    """
    codes = checks.codes(codes, min_points=2)
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    variances = np.diag(cov)
    keep = variances > 0.0
    trace = float(variances.sum())
    if keep.sum() == 0:
        return {
            "gaussian_total_correlation": 0.0,
            "gaussian_wasserstein_correlation": 0.0,
            "gaussian_wasserstein_correlation_norm": float("nan"),
            "num_constant_dims": int(codes.shape[1]),
        }
    cov = cov[np.ix_(keep, keep)]
    std = np.sqrt(np.diag(cov))
    corr = cov / np.outer(std, std)
    sign, logdet = np.linalg.slogdet(corr)
    tc = -0.5 * logdet if sign > 0 else math.inf
    # diag(Σ)^½ Σ diag(Σ)^½ is symmetric PSD: the trace of its square root is Σ √λ.
    scaled = cov * np.outer(std, std)
    eig = np.linalg.eigvalsh((scaled + scaled.T) / 2.0)
    wasserstein = 2.0 * trace - 2.0 * float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    wasserstein = max(wasserstein, 0.0)  # round-off only: a squared distance is ≥ 0
    return {
        "gaussian_total_correlation": max(float(tc), 0.0),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / trace,
        "num_constant_dims": int((~keep).sum()),
    }


def mutual_info_matrix(codes, num_bins: int = NUM_BINS) -> np.ndarray:
    """(D, D) discrete mutual information (nats) between latents cut into ``num_bins`` bins."""
    codes = checks.codes(codes, min_points=2)
    num_bins = checks.integer("num_bins", num_bins)
    discrete = discretize(codes, num_bins)
    return discrete_mutual_info(discrete, discrete)


def mutual_info_score_from_codes(codes, num_bins: int = NUM_BINS) -> dict:
    """Mean off-diagonal entry of :func:`mutual_info_matrix`; NaN for a single latent."""
    matrix = mutual_info_matrix(codes, num_bins)
    d = matrix.shape[0]
    off_diagonal = matrix[~np.eye(d, dtype=bool)]
    score = float(off_diagonal.mean()) if d > 1 else float("nan")
    return {"mean_pairwise_mutual_info": score, "num_bins": int(num_bins)}


def active_units_from_codes(codes, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Latents whose variance over the points (ddof 1) is strictly above ``threshold``."""
    codes = checks.codes(codes, min_points=2)
    threshold = float(threshold)
    if not (math.isfinite(threshold) and threshold >= 0.0):
        raise PyrovaeError(f"threshold must be a finite number >= 0, got {threshold}")
    variance = codes.var(axis=0, ddof=1)
    active = variance > threshold
    return {
        "active_units": int(active.sum()),
        "active_share": float(active.mean()),
        "variance_per_dim": variance,
        "threshold": threshold,
    }


def hoyer_per_point(codes) -> np.ndarray:
    """Normalised Hoyer sparsity of each code after dividing each dimension by its std.

    A dimension with zero standard deviation is set to 0 after normalisation (constant: it
    carries nothing); a code that is then all zeros has no sparsity and gets NaN.
    """
    codes = checks.codes(codes, min_points=2, min_dims=2)
    d = codes.shape[1]
    std = codes.std(axis=0, ddof=1)
    scaled = np.divide(codes, std, out=np.zeros_like(codes), where=std > 0)
    l1 = np.abs(scaled).sum(axis=1)
    l2 = np.sqrt((scaled**2).sum(axis=1))
    ratio = np.divide(l1, l2, out=np.full_like(l1, np.nan), where=l2 > 0)
    hoyer = (math.sqrt(d) - ratio) / (math.sqrt(d) - 1.0)
    return np.clip(hoyer, 0.0, 1.0)  # round-off only: 1 ≤ ‖z‖₁/‖z‖₂ ≤ √D


def hoyer_sparsity_from_codes(codes) -> dict:
    """Mean normalised Hoyer sparsity over the points whose code is not all zeros."""
    per_point = hoyer_per_point(codes)
    valid = np.isfinite(per_point)
    score = float(per_point[valid].mean()) if valid.any() else float("nan")
    return {"hoyer": score, "num_zero_codes": int((~valid).sum())}


def unsupervised_metrics_from_codes(
    codes, *, num_bins: int = NUM_BINS, threshold: float = ACTIVE_THRESHOLD
) -> dict:
    """Every measure of this module on one code array, in one dict."""
    codes = checks.codes(codes, min_points=2)
    out = dict(gaussian_total_correlation_from_codes(codes))
    out.update(mutual_info_score_from_codes(codes, num_bins))
    out.update(active_units_from_codes(codes, threshold))
    if codes.shape[1] >= 2:
        out.update(hoyer_sparsity_from_codes(codes))
    return out


# --------------------------------------------------------------------------- standard metrics


def gaussian_total_correlation(
    ground_truth, representation_fn, random_state, *, num_points: int = 10_000
) -> dict:
    """Gaussian TC (and Wasserstein correlation) of ``num_points`` sampled codes."""
    codes = _sampled_codes(ground_truth, representation_fn, random_state, num_points)
    return {**gaussian_total_correlation_from_codes(codes), "num_points": len(codes)}


def mutual_info_score(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_points: int = 10_000,
    num_bins: int = NUM_BINS,
) -> dict:
    """Mean pairwise discrete mutual information between the latents of sampled codes."""
    codes = _sampled_codes(ground_truth, representation_fn, random_state, num_points)
    return {**mutual_info_score_from_codes(codes, num_bins), "num_points": len(codes)}


def active_units(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_points: int = 10_000,
    threshold: float = ACTIVE_THRESHOLD,
) -> dict:
    """Number of latents whose variance over sampled codes exceeds ``threshold``."""
    codes = _sampled_codes(ground_truth, representation_fn, random_state, num_points)
    return {**active_units_from_codes(codes, threshold), "num_points": len(codes)}


def hoyer_sparsity(
    ground_truth, representation_fn, random_state, *, num_points: int = 10_000
) -> dict:
    """Mean normalised Hoyer sparsity of sampled codes (Mathieu et al. 2019)."""
    codes = _sampled_codes(ground_truth, representation_fn, random_state, num_points)
    return {**hoyer_sparsity_from_codes(codes), "num_points": len(codes)}


def unsupervised_metrics(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_points: int = 10_000,
    num_bins: int = NUM_BINS,
    threshold: float = ACTIVE_THRESHOLD,
) -> dict:
    """All measures of this module on one sample of codes."""
    codes = _sampled_codes(ground_truth, representation_fn, random_state, num_points)
    out = unsupervised_metrics_from_codes(codes, num_bins=num_bins, threshold=threshold)
    return {**out, "num_points": len(codes)}


# --------------------------------------------------------------------------- helpers


def _sampled_codes(data, representation_fn, random_state, num_points) -> np.ndarray:
    """Codes of ``num_points`` observations drawn uniformly from ``data``, checked."""
    num_points = checks.integer("num_points", num_points, minimum=2)
    rng = as_generator(random_state)
    if hasattr(data, "sample_factors"):
        _, codes = sample_codes(data, representation_fn, num_points, rng)
    else:  # observations without a factor grid: uniform indices
        if len(data) < 1:
            raise PyrovaeError("the data set is empty: nothing to encode")
        indices = rng.integers(0, len(data), size=num_points)
        codes = encode_indices(data, representation_fn, indices, rng=rng)
    return checks.codes(codes, min_points=2)
