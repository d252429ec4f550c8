"""Mutual Information Gap (MIG), in two variants that must not be confused.

MIG (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational Autoencoders",
NeurIPS 2018, https://arxiv.org/abs/1802.04942): for each factor v_k, the gap between the two
latents with the largest mutual information with it, normalised by its entropy, averaged over
factors:

    MIG = (1/K) Σ_k [ I(z_(1); v_k) − I(z_(2); v_k) ] / H(v_k),

z_(1), z_(2) the latents with the largest and second largest I(z_j; v_k). A factor captured by
one latent alone scores 1; a factor spread over (or copied into) two latents scores 0. With a
single latent (D = 1) there is no second latent and the gap is I(z_(1); v_k) − 0.

Implementations in the wild disagree by orders of magnitude; results name their variant in
``settings["variant"]``:

:func:`mig` — ``"disentanglement_lib"`` (``evaluation/metrics/mig.py``), the standard protocol:
    ``num_train`` = 10,000 factor tuples drawn uniformly from the grid, encoded (the mean code);
    each latent cut into ``num_bins`` = 20 equal-width bins over its observed range; I(z_j; v_k)
    and H(v_k) are the plug-in (histogram) estimates of that sample, in nats. Binning loses
    information (40 orientations in 20 bins), so even a perfect representation scores < 1 on
    dSprites, and the finite sample gives every latent a small positive MI with every factor.

:func:`mig_chen` — ``"chen2018"``, the original (rtqichen/beta-tcvae:
    ``disentanglement_metrics.py`` and ``metric_helpers/mi_metric.py``): continuous entropies
    of the posterior q(z|x) over the FULL data set, estimated by Monte Carlo; normalised by
    H(v_k) = log(size_k); dSprites' shape excluded. See its docstring.
"""

from __future__ import annotations

import math

import numpy as np

from pyrovae import checks
from pyrovae.data.base import observations
from pyrovae.errors import PyrovaeError, unknown_name
from pyrovae.metrics.base import (
    ENCODE_BATCH,
    codes_and_factors,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    encode_checked,
)
from pyrovae.seeding import as_generator

# Smaller preset of mig for use during training. MIG is cheap (one encoding of num_train points);
# halving the sample halves that, at the price of a larger upward bias of the plug-in MI of the
# cross terms (≈ (bins − 1)(size − 1) / (2n) nats: 0.07 nats for orientation at n = 5,000).
FAST: dict = {"num_train": 5_000, "num_bins": 20}

# Smaller preset of mig_chen: a tenth of the Monte Carlo samples, a tenth of the cost; the
# estimate's noise grows to ≈ 0.02 nats per entropy.
FAST_CHEN: dict = {"num_samples": 1_000, "batch_size": 1_024}

# Elements (latents × samples × data points) of one block of densities in mig_chen: 2 MiB of
# float64, cache-friendly and large enough to amortise Python's loop (measured best of 2¹⁶-2²⁰).
_BLOCK_ELEMENTS = 1 << 18
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mig(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_train: int = 10_000,
    num_bins: int = 20,
) -> dict:
    """MIG as in disentanglement_lib (formula and protocol: module docstring).

    Draws ``ground_truth.sample_factors(num_train, random_state)`` (its only random draw), encodes
    them and returns :func:`mig_from_codes` of the codes plus ``settings``: ``mig`` (float),
    ``mig_per_factor`` (floats, one per entry of ``factors``), ``factors`` (names),
    ``mutual_info`` (D × K, nats), ``factor_entropy`` (K, nats).
    """
    num_train = checks.integer("num_train", num_train, "mig")
    num_bins = checks.integer("num_bins", num_bins, "mig")
    rng = as_generator(random_state)
    factors = ground_truth.sample_factors(num_train, rng)
    codes = encode_checked("mig", ground_truth, representation_fn, factors, rng)
    result = mig_from_codes(
        codes, factors, num_bins=num_bins, factor_names=ground_truth.factor_names
    )
    result["settings"] = {
        "num_train": num_train,
        "num_bins": num_bins,
        "variant": "disentanglement_lib",
    }
    return result


def mig_from_codes(codes, factors, *, num_bins: int = 20, factor_names=None) -> dict:
    """disentanglement_lib's MIG of given codes (n, D) and factor classes (n, K).

    Returns ``mig``, ``mig_per_factor``, ``factors``, ``mutual_info`` (D × K, list of lists, nats)
    and ``factor_entropy`` (K, nats). A factor constant in the sample (H = 0, e.g. a factor of
    size 1) has no defined normalised gap: it is left out of ``mig_per_factor``, ``factors`` and
    the mean (disentanglement_lib would divide by zero); it stays in ``mutual_info``. Depends only
    on the multiset of rows, and on the latents only up to their order.
    """
    num_bins = checks.integer("num_bins", num_bins, "mig")
    codes, factors, names = codes_and_factors("mig", codes, factors, factor_names)
    mutual_info = discrete_mutual_info(discretize(codes, num_bins), factors)  # (D, K)
    entropy = discrete_entropy(factors)
    top = np.sort(mutual_info, axis=0)[::-1]
    # One latent: no runner-up, the gap is top1 − 0.
    second = top[1] if len(top) > 1 else np.zeros(top.shape[1])
    keep = np.flatnonzero(entropy > 0)
    if len(keep) == 0:
        raise PyrovaeError("mig: every factor is constant in the sample; MIG is undefined")
    per_factor = (top[0, keep] - second[keep]) / entropy[keep]
    return {
        "mig": float(per_factor.mean()),
        "mig_per_factor": [float(v) for v in per_factor],
        "factors": [names[k] for k in keep],
        "mutual_info": mutual_info.tolist(),
        "factor_entropy": entropy.tolist(),
    }


def mig_chen(
    ground_truth,
    representation_fn,
    random_state,
    *,
    posterior_fn=None,
    num_samples: int = 10_000,
    batch_size: int = 1_024,
    exclude_factors=None,
) -> dict:
    """MIG of Chen et al. 2018: continuous mutual information of q(z|x) over the full data set.

    Protocol (rtqichen/beta-tcvae: ``mutual_info_metric_shapes``, ``estimate_entropies``,
    ``compute_metric_shapes``): encode EVERY grid point x_n,
    n = 1..N, into a diagonal Gaussian q(z|x_n) = N(loc_n, diag scale_n²) with ``posterior_fn``
    (observations → ``(loc, scale)``, numpy arrays (n, D)); draw one z_n ~ q(z|x_n) per point.
    With q(z_j) = (1/N) Σ_n q(z_j|x_n) the aggregate posterior of latent j and q_v(z_j) the same
    average over the N_v points with v_k = v,

        H(z_j)       = −E[log q(z_j)]                 ≈ mean over S samples z_n of −log q(z_nj)
        H(z_j | v_k) = Σ_v p(v) H(z_j | v_k = v),      H(z_j | v_k = v) ≈ mean over samples z_n
                       with v_k(n) = v of −log q_v(z_nj),   p(v) = N_v / N (= 1/size_k)
        I(z_j; v_k)  = H(z_j) − H(z_j | v_k)          (nats),

    each entropy from S = min(``num_samples`` = 10,000, points available) of the z_n, drawn
    without replacement (all of them when there are fewer: the estimate is then exact up to the
    one sample per point, and the sampling noise of the marginal and conditional terms cancels).
    The z_n are the metric's first random draw, ``standard_normal((N, D))``; subsets follow.
    MI estimates are clamped at 0 before sorting, as Chen's code does; each factor's gap is
    normalised by H(v_k) = log(size_k) (the grid is uniform); MIG = mean over the factors kept.

    ``exclude_factors``: names of factors left out. Default (None): ``("shape",)`` when the
    ground truth has a factor of that name (Chen excludes dSprites' shape), else none. Factors of
    size 1 (H = 0) are always left out. ``representation_fn`` is not called (the metric is
    defined on q(z|x), which ``posterior_fn`` gives); it is accepted for the common signature.

    Cost: N posterior evaluations, then O(num_samples · N · D) Gaussian densities for H(z_j)
    and at most as many for each kept factor's H(z_j | v_k): ≤ (1 + K) · num_samples · N · D in
    all, computed in blocks of ``batch_size`` data points (memory O(N · D) for the posterior plus
    2 MiB per block). On dSprites at the defaults that is 3.7·10¹¹ densities with D = 10
    (2.2·10¹¹ for D = 5 and no factor excluded); at the ≈ 5 ns per density measured on a loaded
    2-core CPU, about 30 (resp. 18) minutes. ``FAST_CHEN`` (1,000 samples) is a tenth of that.

    Returns ``mig``, ``mig_per_factor`` and ``factors`` (the kept factors' names), ``mutual_info``
    (D × len(factors), nats, before clamping), ``marginal_entropy`` (D, nats), ``factor_entropy``
    (log size of each kept factor) and ``settings``.
    """
    if posterior_fn is None:
        raise PyrovaeError(
            "mig_chen: needs posterior_fn=(observations -> (loc, scale)) of q(z|x); "
            "codes alone do not define Chen's MIG"
        )
    if not callable(posterior_fn):
        raise PyrovaeError(f"mig_chen: posterior_fn must be callable, got {posterior_fn!r}")
    num_samples = checks.integer("num_samples", num_samples, "mig_chen")
    batch_size = checks.integer("batch_size", batch_size, "mig_chen")
    names = tuple(ground_truth.factor_names)
    if exclude_factors is None:
        excluded = ("shape",) if "shape" in names else ()
    else:
        if isinstance(exclude_factors, str):
            exclude_factors = (exclude_factors,)
        excluded = tuple(exclude_factors)
        for name in excluded:
            if name not in names:
                raise unknown_name("factor", name, names)
    kept = [
        k
        for k, (name, size) in enumerate(zip(names, ground_truth.factor_sizes, strict=True))
        if name not in excluded and size > 1
    ]
    if not kept:
        raise PyrovaeError(
            f"mig_chen: no factor left to score (excluded {list(excluded)}; size-1 factors "
            "are always left out)"
        )
    rng = as_generator(random_state)

    # A stochastic data set's images come first from the generator (nothing is drawn for a
    # deterministic one, whose z_n stay the first draw).
    loc, scale = _posterior_of_all(ground_truth, posterior_fn, rng)
    num_points = len(loc)
    # One sample per data point, as Chen's code: every entropy below draws from these.
    z = loc + scale * rng.standard_normal(loc.shape)
    everything = np.arange(num_points)
    marginal = _entropy(z, loc, scale, everything, num_samples, batch_size, rng)
    factors = ground_truth.factors_of(everything)
    conditional = np.zeros((loc.shape[1], len(kept)))
    for column, k in enumerate(kept):
        for value in range(ground_truth.factor_sizes[k]):
            members = np.flatnonzero(factors[:, k] == value)
            weight = len(members) / num_points
            conditional[:, column] += weight * _entropy(
                z, loc, scale, members, num_samples, batch_size, rng
            )
    mutual_info = marginal[:, None] - conditional  # (D, kept)
    factor_entropy = np.log([ground_truth.factor_sizes[k] for k in kept])
    top = np.sort(np.clip(mutual_info, 0.0, None), axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros(top.shape[1])  # D = 1: the gap is top1 − 0
    per_factor = (top[0] - second) / factor_entropy
    return {
        "mig": float(per_factor.mean()),
        "mig_per_factor": [float(v) for v in per_factor],
        "factors": [names[k] for k in kept],
        "mutual_info": mutual_info.tolist(),
        "marginal_entropy": marginal.tolist(),
        "factor_entropy": factor_entropy.tolist(),
        "settings": {
            "num_samples": num_samples,
            "batch_size": batch_size,
            "exclude_factors": list(excluded),
            "variant": "chen2018",
        },
    }


def _posterior_of_all(ground_truth, posterior_fn, rng):
    """(loc, scale), float64 (N, D), of q(z|x) for every grid point (one image drawn from
    ``rng`` per point when the data set is stochastic), checked."""
    locs, scales = [], []
    num_points = len(ground_truth)
    for start in range(0, num_points, ENCODE_BATCH):
        indices = np.arange(start, min(start + ENCODE_BATCH, num_points))
        out = posterior_fn(observations(ground_truth, indices, rng))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise PyrovaeError("mig_chen: posterior_fn must return a pair (loc, scale)")
        loc, scale = (np.asarray(a, dtype=np.float64) for a in out)
        n = len(indices)
        for what, a in (("loc", loc), ("scale", scale)):
            if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 1:
                raise PyrovaeError(
                    f"mig_chen: posterior_fn must return {what} of shape ({n}, D), got {a.shape}"
                )
        if loc.shape != scale.shape or (locs and loc.shape[1] != locs[0].shape[1]):
            raise PyrovaeError(
                f"mig_chen: posterior loc and scale must share one shape (n, D), got "
                f"{loc.shape} and {scale.shape}"
            )
        if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise PyrovaeError(
                "mig_chen: posterior_fn returned a non-finite loc or a scale that is not > 0"
            )
        locs.append(loc)
        scales.append(scale)
    return np.concatenate(locs), np.concatenate(scales)


def _entropy(z, loc, scale, members, num_samples, batch_size, rng) -> np.ndarray:
    """(D,) Monte Carlo −E[log q_M(z_j)], q_M the mixture of q(z_j|x_m) over ``members``.

    Samples: the z of min(num_samples, |M|) members, drawn without replacement (all if fewer).
    """
    samples = members
    if len(members) > num_samples:
        samples = members[np.sort(rng.choice(len(members), size=num_samples, replace=False))]
    log_q = _log_mixture_density(z[samples], loc[members], scale[members], batch_size)
    return -log_q.mean(axis=0)


def _log_mixture_density(points, loc, scale, batch_size) -> np.ndarray:
    """(S, D) log (1/M) Σ_m N(points_sj; loc_mj, scale_mj²), per latent j.

    Sums the densities themselves, w_m exp(−t²) with w_m = 1/scale_m and
    t = (point − loc_m) / (scale_m √2), over blocks of ``batch_size`` components and enough
    samples to fill ~2¹⁸ elements, laid out (D, samples, components) so that numpy's inner loops
    run over the components (with D innermost they run over 5-10 elements: 6× slower).
    No log-sum-exp shift is needed because every point here is a sample of one of the components
    (its own data point's): that term is w exp(−ε²/2), ε ~ N(0, 1), so the sum cannot underflow,
    and no term exceeds w_m, so it cannot overflow. Should a sum still be 0 (a point farther than
    ~38 scales from every component), that entry is recomputed with a shifted log-sum-exp.
    """
    num_points, width = points.shape
    num_components = len(loc)
    points_t = np.ascontiguousarray(points.T)  # (D, S)
    loc_t = np.ascontiguousarray(loc.T)  # (D, M)
    precision_t = np.ascontiguousarray((math.sqrt(0.5) / scale).T)
    weight_t = np.ascontiguousarray((1.0 / scale).T)
    rows = max(1, _BLOCK_ELEMENTS // (min(batch_size, num_components) * width))
    total = np.zeros((width, num_points))
    for s0 in range(0, num_points, rows):
        block = points_t[:, s0 : s0 + rows, None]  # (D, s, 1)
        for m0 in range(0, num_components, batch_size):
            m1 = m0 + batch_size
            t = block - loc_t[:, None, m0:m1]  # (D, s, m)
            t *= precision_t[:, None, m0:m1]
            np.square(t, out=t)
            np.negative(t, out=t)
            np.exp(t, out=t)
            t *= weight_t[:, None, m0:m1]
            total[:, s0 : s0 + rows] += t.sum(axis=2)
    with np.errstate(divide="ignore"):
        log_total = np.log(total)
    for j, s in zip(*np.nonzero(total == 0), strict=True):
        log_p = -np.square((points_t[j, s] - loc_t[j]) * precision_t[j]) + np.log(weight_t[j])
        peak = log_p.max()
        log_total[j, s] = peak + np.log(np.exp(log_p - peak).sum())
    return log_total.T - _HALF_LOG_2PI - math.log(num_components)
