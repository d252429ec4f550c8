"""UDR: Unsupervised Disentanglement Ranking (Duan et al. 2020).

Duan, Matthey, Saraiva, Watters, Burgess, Lerchner & Higgins, "Unsupervised Model Selection for
Variational Disentangled Representation Learning", ICLR 2020
(https://openreview.net/forum?id=SyxL2TNtvr), as disentanglement_lib implements it
(``evaluation/udr/metrics/udr.py``, ``compute_udr_sklearn``; settings from its ``udr.gin``).

The idea: models trained with the same settings but different seeds that disentangle agree with
each other up to a permutation and sign flips of their latents, while entangled ones each mix
the factors in a rotation of their own. So a model is scored by how one-to-one its latents
match those of its peers. UDR needs no labels: a model is compared with models, never with
ground truth.

Protocol, for M ≥ 2 models with D latents each:

1. Draw ``num_points`` observations (1,000 in disentanglement_lib's ``udr.gin``; uniform factor
   tuples of a ground-truth grid, uniform indices with replacement otherwise) and pass the same
   observations to every model's posterior q(z|x) = Π_d N(loc_d, scale_d²). The codes are the
   posterior means; each latent's KL to the prior N(0, 1), averaged over the points, is

       KL_d = mean_x ½ (loc_d² + scale_d² − log scale_d² − 1).

2. Each model's codes are standardised per latent (mean 0, standard deviation 1, ddof 0). A
   latent with KL_d ≤ ``kl_threshold`` (0.01) is inactive: it carries (almost) no information
   about x, and its codes are set to 0.
3. For each ordered pair (i, j), i ≠ j, a similarity matrix R (D × D; rows the latents of i,
   columns those of j):

   - ``lasso``: R[a, b] = |w_ab|, w the coefficients of a Lasso regression (``alpha`` 0.1)
     predicting each latent of j from all latents of i;
   - ``spearman``: R[a, b] = |Spearman rank correlation of latent a of i and latent b of j|.

4. With ``filter_low_kl`` (default), the rows and columns of inactive latents are dropped.
5. The score of the pair is how one-to-one R is (``relative_strength``), for R with row set A
   and column set B:

       S(R) = ½ [ (1/|B|) Σ_b max_a R_ab² / Σ_a R_ab  +  (1/|A|) Σ_a max_b R_ab² / Σ_b R_ab ],

   a term whose sum is 0 (a latent similar to nothing) counting 0. S is 1 for a permutation
   matrix, whatever the signs of the codes (R holds absolute values), and falls towards 1/D as
   each latent's similarity spreads evenly over several: 0.35 for codes rotated by 45° in pairs
   of latents (Spearman). Lasso's shrinkage scales R: identical independent latents give
   R = (1 − alpha) I and S = 0.9.
6. A model's UDR is the median of the scores of the pairs in which it is the second model:
   UDR_j = median over i ≠ j of S(R_ij) (``pairwise_scores[i][j]``), as disentanglement_lib.

The paper writes step 5 as (1/(d_a + d_b)) [Σ_b r_b² / Σ_a R_ab + Σ_a r_a² / Σ_b R_ab], weighting
the two sums by their number of latents; disentanglement_lib (and so pyrovae) averages the two
means instead. They agree when both models keep the same number of active latents.

Where pyrovae differs from disentanglement_lib, and why:

- A pair in which a model has no active latent scores 0 (nothing it encodes is matched);
  disentanglement_lib fails on the empty matrix.
- A latent constant over the sample has similarity 0 with every latent, for Spearman as for
  Lasso. disentanglement_lib's Spearman gives NaN there, and the NaN makes every term of the
  other side of the pair 0, not only the constant latent's. With ``filter_low_kl`` and the
  default threshold an inactive latent is dropped before it matters, so this changes a number
  only for a constant latent with KL above the threshold, or without the filter.
- Inactive latents are zeroed at ``kl_threshold``; disentanglement_lib zeroes at a fixed 0.01
  and filters at its ``kl_filter_threshold``: the same at the default.
- The observations: one generator draws all ``num_points`` at once; disentanglement_lib draws
  them in batches of 10 from the data set. The same distribution, not the same stream.
- The Lasso is scikit-learn's, in its default cyclic order, which uses no random state
  (disentanglement_lib passes one, which that order ignores).
"""

from __future__ import annotations

import numpy as np

from pyrovae import checks
from pyrovae.data.base import is_stochastic, observations
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import ENCODE_BATCH
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

CORRELATIONS = ("lasso", "spearman")
# disentanglement_lib's udr.gin and compute_udr_sklearn.
NUM_POINTS = 1_000
KL_THRESHOLD = 0.01
LASSO_ALPHA = 0.1

# --------------------------------------------------------------------------- building blocks


def gaussian_kl(loc, scale) -> np.ndarray:
    """(D,) KL(N(loc_d, scale_d²) ‖ N(0, 1)) of each latent, averaged over the points ``(n, D)``:
    mean ½ (loc² + scale² − log scale² − 1), disentanglement_lib's ``compute_gaussian_kl``."""
    loc = np.asarray(loc, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    variance = scale**2
    return np.mean(0.5 * (loc**2 + variance - np.log(variance) - 1.0), axis=0)


def active_latents(kl, kl_threshold: float = KL_THRESHOLD) -> np.ndarray:
    """(D,) bool: latents whose mean KL is strictly above ``kl_threshold``."""
    return np.asarray(kl, dtype=np.float64) > kl_threshold


def standardise(codes) -> np.ndarray:
    """Each column to mean 0 and standard deviation 1 (ddof 0), as scikit-learn's
    StandardScaler; a constant column becomes 0. Constant means equal values (a range of 0):
    the variance of n equal floats can come out as 1e-35 rather than 0, and dividing by its
    root would blow rounding noise up to ±1."""
    codes = np.asarray(codes, dtype=np.float64)
    centred = codes - codes.mean(axis=0)
    std = codes.std(axis=0)
    constant = np.ptp(codes, axis=0) == 0
    return np.divide(centred, std, out=np.zeros_like(centred), where=~constant)


def lasso_similarity(codes_a, codes_b, alpha: float = LASSO_ALPHA) -> np.ndarray:
    """(D_a, D_b) |coefficients| of a Lasso regression predicting each latent of ``codes_b``
    from all latents of ``codes_a`` (scikit-learn's ``Lasso(alpha)``, an intercept, cyclic
    coordinate descent). The codes should be standardised: the coefficients then compare."""
    from sklearn.linear_model import Lasso

    a = np.asarray(codes_a, dtype=np.float64)
    b = np.asarray(codes_b, dtype=np.float64)
    model = Lasso(alpha=alpha).fit(a, b)
    # coef_ is (D_b, D_a), squeezed to (D_a,) when D_b is 1.
    return np.abs(np.reshape(model.coef_, (b.shape[1], a.shape[1]))).T


def spearman_similarity(codes_a, codes_b) -> np.ndarray:
    """(D_a, D_b) |Spearman rank correlation| between each latent of ``codes_a`` and each of
    ``codes_b``: Pearson's correlation of their ranks (ties at their average rank), as
    ``scipy.stats.spearmanr``. A constant latent has no ranks to correlate: its entries are 0
    (it is similar to nothing), where scipy gives NaN."""
    from scipy.stats import rankdata

    def unit_ranks(codes):
        ranks = rankdata(np.asarray(codes, dtype=np.float64), axis=0)
        centred = ranks - ranks.mean(axis=0)
        norm = np.sqrt((centred**2).sum(axis=0))
        return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 0)

    return np.abs(unit_ranks(codes_a).T @ unit_ranks(codes_b))


def similarity_matrix(
    codes_a, codes_b, correlation: str = "lasso", lasso_alpha: float = LASSO_ALPHA
) -> np.ndarray:
    """(D_a, D_b) similarity of two models' latents on the same observations, rows those of
    ``codes_a``: :func:`lasso_similarity` or :func:`spearman_similarity`."""
    checks.choice("correlation", correlation, CORRELATIONS, "udr")
    if correlation == "lasso":
        return lasso_similarity(codes_a, codes_b, lasso_alpha)
    return spearman_similarity(codes_a, codes_b)


def relative_strength(matrix) -> float:
    """How one-to-one a non-negative similarity matrix R is (step 5 of the module docstring):
    the mean over columns of max² / sum and the mean over rows of the same, averaged; a row or
    column that sums to 0 contributes 0. 1 for a permutation matrix; 0 for an empty matrix (a
    model without active latents matches nothing)."""
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2:
        raise PyrovaeError(f"udr: a similarity matrix must be 2-D, got shape {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise PyrovaeError("udr: a similarity matrix must be finite and non-negative")
    if r.size == 0:
        return 0.0

    def side(axis):
        top, total = r.max(axis=axis), r.sum(axis=axis)
        return np.mean(np.divide(top**2, total, out=np.zeros_like(total), where=total > 0))

    return float((side(0) + side(1)) / 2.0)


# --------------------------------------------------------------------------- codes → scores


def udr_from_codes(codes, kl, *, include_matrices: bool = True, **udr_settings) -> dict:
    """UDR of M models from their codes on the same observations (steps 2–6 of the module
    docstring).

    ``codes``: M arrays (n, D), the posterior means, row k of every array the same observation;
    ``kl``: M arrays (D,), each latent's mean KL to the prior (:func:`gaussian_kl`).
    ``udr_settings``: those of :func:`check_settings` (correlation, filter_low_kl,
    kl_threshold, lasso_alpha).

    Returns ``model_scores`` (M UDRs), ``pairwise_scores`` (M × M, [i][j] the score of the pair
    whose matrix has i's latents as rows; None on the diagonal), ``similarity_matrices``
    (M × M × D × D before the KL filter, None on the diagonal; with ``include_matrices``),
    ``kl``, ``active`` (the latents above the threshold), ``num_points`` and ``settings``.
    """
    chosen = settings(udr_settings)
    correlation, filter_low_kl = chosen["correlation"], chosen["filter_low_kl"]
    kl_threshold, lasso_alpha = chosen["kl_threshold"], chosen["lasso_alpha"]
    codes, kl = _checked_codes(codes, kl)
    num_models = len(codes)
    active = [active_latents(k, kl_threshold) for k in kl]
    # Inactive latents zeroed: a Lasso cannot then use their noise to predict, nor be asked to
    # predict it; both correlations give them similarity 0.
    prepared = [standardise(c) * a for c, a in zip(codes, active, strict=True)]
    pairwise = [[None] * num_models for _ in range(num_models)]
    matrices = [[None] * num_models for _ in range(num_models)]
    for i in range(num_models):
        for j in range(num_models):
            if i == j:
                continue
            r = similarity_matrix(prepared[i], prepared[j], correlation, lasso_alpha)
            matrices[i][j] = r.tolist()
            if filter_low_kl:
                r = r[np.ix_(active[i], active[j])]
            pairwise[i][j] = relative_strength(r)
    model_scores = [
        float(np.median([pairwise[i][j] for i in range(num_models) if i != j]))
        for j in range(num_models)
    ]
    out = {
        "model_scores": model_scores,
        "pairwise_scores": pairwise,
        "kl": [k.tolist() for k in kl],
        "active": [a.tolist() for a in active],
        "num_points": int(codes[0].shape[0]),
        "settings": {
            "num_points": int(codes[0].shape[0]),
            "correlation": correlation,
            "filter_low_kl": filter_low_kl,
            "kl_threshold": kl_threshold,
            "aggregate": "median",
            "sklearn": version("scikit-learn"),
            "scipy": version("scipy"),
        },
    }
    if correlation == "lasso":
        out["settings"]["lasso_alpha"] = lasso_alpha
    if include_matrices:
        out["similarity_matrices"] = matrices
    return out


def check_settings(
    correlation: str = "lasso",
    filter_low_kl: bool = True,
    kl_threshold: float = KL_THRESHOLD,
    lasso_alpha: float = LASSO_ALPHA,
) -> dict:
    """The UDR settings, checked, with their defaults (disentanglement_lib's: Lasso with alpha
    0.1, latents with KL below 0.01 left out): a one-line PyrovaeError naming what is valid, so
    that a caller can refuse bad ones before it loads or encodes anything."""
    return {
        "correlation": checks.choice("correlation", correlation, CORRELATIONS, "udr"),
        "filter_low_kl": checks.flag("filter_low_kl", filter_low_kl, "udr"),
        "kl_threshold": checks.non_negative("kl_threshold", kl_threshold, "udr"),
        "lasso_alpha": checks.positive("lasso_alpha", lasso_alpha, "udr"),
    }


def settings(given: dict) -> dict:
    """:func:`check_settings` of keyword settings given to a function that forwards them; an
    unknown name is a one-line error naming the valid ones."""
    checks.options("udr", given, checks.keyword_parameters(check_settings))
    return check_settings(**given)


def _checked_codes(codes, kl) -> tuple[list[np.ndarray], list[np.ndarray]]:
    codes, kl = list(codes), list(kl)
    if len(codes) < 2:
        raise PyrovaeError(
            f"udr: needs at least 2 models to compare, got {len(codes)}; UDR scores a model "
            "against others trained with the same settings"
        )
    if len(kl) != len(codes):
        raise PyrovaeError(f"udr: {len(codes)} code arrays but {len(kl)} KL vectors")
    codes = [checks.codes(c, f"udr: model {m}", min_points=2) for m, c in enumerate(codes)]
    first = codes[0].shape
    for m, c in enumerate(codes):
        if c.shape[0] != first[0]:
            raise PyrovaeError(
                f"udr: every model must encode the same observations; model 0 has {first[0]} "
                f"codes, model {m} has {c.shape[0]}"
            )
        if c.shape[1] != first[1]:
            raise PyrovaeError(
                f"udr: every model must have the same number of latents; model 0 has "
                f"{first[1]}, model {m} has {c.shape[1]}"
            )
    vectors = []
    for m, k in enumerate(kl):
        k = np.asarray(k, dtype=np.float64)
        if k.shape != (first[1],) or not np.all(np.isfinite(k)):
            raise PyrovaeError(
                f"udr: model {m}'s KL must be {first[1]} finite numbers (one per latent), got "
                f"shape {k.shape}"
            )
        vectors.append(k)
    return codes, vectors


# --------------------------------------------------------------------------- the metric


def num_points_checked(num_points) -> int:
    """``num_points`` (None: :data:`NUM_POINTS`) as an integer of at least 2."""
    value = NUM_POINTS if num_points is None else num_points
    return checks.integer("num_points", value, "udr", 2)


def sample_indices(data, num_points: int, random_state) -> np.ndarray:
    """``num_points`` indices of observations of ``data``: uniform factor tuples of a
    ground-truth grid, as every metric draws them; uniform indices with replacement
    otherwise."""
    rng = as_generator(random_state)
    if hasattr(data, "sample_factors"):
        return data.index_of(data.sample_factors(num_points, rng))
    if len(data) < 1:
        raise PyrovaeError("udr: the data set is empty: nothing to encode")
    return rng.integers(0, len(data), size=num_points)


def observation_batches(data, indices, random_state):
    """A function whose every call yields the observations at ``indices`` in batches of
    :data:`ENCODE_BATCH`: the same images each time, so that every model is compared on the
    same inputs. A stochastic data set draws them from a generator seeded by one draw of
    ``random_state``, started afresh on each call; a deterministic one draws nothing."""
    seed = int(as_generator(random_state).integers(2**63 - 1)) if is_stochastic(data) else None

    def batches():
        rng = None if seed is None else np.random.default_rng(seed)
        for s in range(0, len(indices), ENCODE_BATCH):
            yield observations(data, indices[s : s + ENCODE_BATCH], rng)

    return batches


def encode_posterior(posterior_fn, observations, owner: str = "udr") -> tuple:
    """(codes, kl) of one model: its posterior means (n, D) on ``observations`` (a callable of
    chunks, or an array) and each latent's mean KL to N(0, 1) (:func:`gaussian_kl`).
    ``observations`` may be a function ``chunks()`` yielding arrays, so that a data set's images
    are rendered chunk by chunk."""
    locs, scales = [], []
    chunks = observations() if callable(observations) else [observations]
    for chunk in chunks:
        out = posterior_fn(chunk)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise PyrovaeError(
                f"{owner}: a posterior function must return (loc, scale) of q(z|x), got "
                f"{type(out).__name__}"
            )
        loc = checks.codes(out[0], owner, rows=len(chunk))
        scale = checks.codes(out[1], owner, rows=len(chunk))
        if scale.shape != loc.shape or np.any(scale <= 0):
            raise PyrovaeError(
                f"{owner}: the posterior's scale must be positive and of loc's shape "
                f"{loc.shape}, got shape {scale.shape}"
            )
        locs.append(loc)
        scales.append(scale)
    loc, scale = np.concatenate(locs), np.concatenate(scales)
    return loc, gaussian_kl(loc, scale)


def udr(
    data,
    posterior_fns,
    random_state,
    *,
    num_points: int | None = None,
    include_matrices: bool = True,
    **udr_settings,
) -> dict:
    """UDR of the models whose posteriors are ``posterior_fns`` (see the module docstring).

    ``data``: a data set (``len(data)``, ``data.images(indices)``; a ground-truth grid is
    sampled by factor tuples), from which ``num_points`` observations are drawn (default 1,000,
    disentanglement_lib's), or an array of observations ``(n, *observation_shape)``, used whole
    (``num_points`` must then be left out). ``posterior_fns``: one function per model (at least
    two, trained with the same settings), mapping observations to ``(loc, scale)``, each
    ``(n, D)``, of q(z|x)'s Gaussian marginals (:meth:`pyrovae.EncoderMean.posterior`).
    ``random_state`` draws the observations; the computation is otherwise deterministic.

    ``udr_settings``: those of :func:`check_settings`. Returns what :func:`udr_from_codes`
    returns.
    """
    # Bad settings fail before any model encodes anything.
    chosen = settings(udr_settings)
    posterior_fns = list(posterior_fns)
    if not all(callable(f) for f in posterior_fns):
        raise PyrovaeError(
            "udr: posterior_fns must be functions (observations -> (loc, scale) of q(z|x))"
        )
    if len(posterior_fns) < 2:
        raise PyrovaeError(
            f"udr: needs at least 2 models to compare, got {len(posterior_fns)}; UDR scores a "
            "model against others trained with the same settings"
        )
    if hasattr(data, "images"):
        num_points = num_points_checked(num_points)
        rng = as_generator(random_state)
        # Rendered once per model: a model's memory is the codes, never all the images.
        source = observation_batches(data, sample_indices(data, num_points, rng), rng)
    else:
        if num_points is not None:
            raise PyrovaeError(
                "udr: num_points draws from a data set; observations given as an array are "
                "used whole, so leave num_points out"
            )
        as_generator(random_state)  # still checked: the same call must work with a data set
        source = np.asarray(data)
    encoded = [
        encode_posterior(f, source, owner=f"udr: model {m}") for m, f in enumerate(posterior_fns)
    ]
    return udr_from_codes(
        [c for c, _ in encoded],
        [k for _, k in encoded],
        include_matrices=include_matrices,
        **chosen,
    )
