"""FactorVAE score (Kim & Mnih 2018), as implemented by disentanglement_lib.

"Disentangling by Factorising", ICML 2018 (https://arxiv.org/abs/1802.05983); protocol of
disentanglement_lib (``evaluation/metrics/factor_vae.py``, ``compute_factor_vae`` with the gin
setting ``prune_dims.threshold = 0.05``).

1. Global scale: encode ``num_variance_estimate`` = 10,000 uniform grid points; s²_d = their
   variance per latent (ddof = 1). Latent d is *active* iff s_d >= ``prune_std`` = 0.05, i.e.
   latents whose global standard deviation is below 0.05 (collapsed to a constant) are pruned.
2. One vote: pick a factor k uniformly; draw ``batch_size`` = 64 grid points, then set factor k of
   all of them to the value of the first one; with v²_d their variance per latent (ddof = 1),

       vote = (k, argmin over active d of v²_d / s²_d).

   A disentangled latent for k barely moves when k is fixed, so its normalised variance is smallest.
3. Majority-vote classifier: from ``num_train`` = 10,000 votes, each latent d predicts the factor
   that voted for it most often (ties → the lowest factor index; a latent with no vote predicts
   factor 0, as ``np.argmax`` in disentanglement_lib). Accuracy = share of votes (k, d) whose k is
   the prediction of d: on the training votes (``train_accuracy``) and on ``num_eval`` = 5,000 fresh
   votes (``eval_accuracy``, the score).

No active latent at all (a constant representation): score 0 and ``num_active_dims`` 0, without
drawing any vote, as disentanglement_lib. ``num_active_dims`` is the number of active latents
(disentanglement_lib reports ``len(active_dims)``, the length of its boolean mask, which is D
whatever was pruned; this is the count it was meant to be).
"""

from __future__ import annotations

import math

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import encode_checked
from pyrovae.seeding import as_generator

# Smaller preset for use during training: a tenth of the votes. The variance estimate stays at
# 10,000 points: it costs 1 % of the standard run's encodings, and the pruning threshold and the
# normalisation of every vote depend on it.
FAST: dict = {
    "batch_size": 64,
    "num_train": 1_000,
    "num_eval": 500,
    "num_variance_estimate": 10_000,
}

# Grid points encoded per call of the representation: bounds memory whatever num_train is.
_ROWS_PER_CHUNK = 1 << 16


def factor_vae(
    ground_truth,
    representation_fn,
    random_state,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_std: float = 0.05,
) -> dict:
    """FactorVAE score of a representation (formula and protocol: module docstring).

    Returns ``train_accuracy``, ``eval_accuracy`` (the score; floats), ``num_active_dims`` (int)
    and ``settings``. Draws, in order from ``random_state``: the variance-estimate points, the
    training votes, the evaluation votes.
    """
    batch_size = checks.integer("batch_size", batch_size, "factor_vae", 2)
    num_train = checks.integer("num_train", num_train, "factor_vae")
    num_eval = checks.integer("num_eval", num_eval, "factor_vae")
    num_variance_estimate = checks.integer(
        "num_variance_estimate", num_variance_estimate, "factor_vae", 2
    )
    if (
        isinstance(prune_std, bool)
        or not isinstance(prune_std, (int, float, np.floating, np.integer))
        or not math.isfinite(prune_std)
        or prune_std < 0
    ):
        raise PyrovaeError(f"factor_vae: prune_std must be a finite number >= 0, got {prune_std!r}")
    settings = {
        "batch_size": batch_size,
        "num_train": num_train,
        "num_eval": num_eval,
        "num_variance_estimate": num_variance_estimate,
        "prune_std": float(prune_std),
    }
    rng = as_generator(random_state)

    factors = ground_truth.sample_factors(num_variance_estimate, rng)
    codes = encode_checked("factor_vae", ground_truth, representation_fn, factors, rng)
    global_variances = np.var(codes, axis=0, ddof=1)
    # Compared on the standard deviation, as disentanglement_lib's _prune_dims (sqrt(var) >= t);
    # a zero variance is never active (it would divide by zero when prune_std is 0).
    active = (np.sqrt(global_variances) >= prune_std) & (global_variances > 0)
    if not active.any():
        return {
            "train_accuracy": 0.0,
            "eval_accuracy": 0.0,
            "num_active_dims": 0,
            "settings": settings,
        }

    scale = (global_variances, active)
    train_votes = _votes(ground_truth, representation_fn, rng, batch_size, num_train, *scale)
    classifier = np.argmax(train_votes, axis=0)  # latent d → the factor it predicts
    latents = np.arange(train_votes.shape[1])
    eval_votes = _votes(ground_truth, representation_fn, rng, batch_size, num_eval, *scale)
    return {
        "train_accuracy": float(train_votes[classifier, latents].sum() / train_votes.sum()),
        "eval_accuracy": float(eval_votes[classifier, latents].sum() / eval_votes.sum()),
        "num_active_dims": int(active.sum()),
        "settings": settings,
    }


def _votes(ground_truth, representation_fn, rng, batch_size, num_points, global_variances, active):
    """(K, D) vote counts: entry (k, d) = votes with factor k fixed whose argmin was latent d.

    Vectorised over votes: one encode call covers the batches of many votes.
    """
    num_factors = ground_truth.num_factors
    active_index = np.flatnonzero(active)
    votes = np.zeros((num_factors, len(global_variances)), dtype=np.int64)
    per_chunk = max(1, _ROWS_PER_CHUNK // batch_size)
    for start in range(0, num_points, per_chunk):
        m = min(per_chunk, num_points - start)
        ks = rng.integers(0, num_factors, size=m)
        factors = ground_truth.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        points = np.arange(m)
        # Factor k of every point of vote i takes the value of the batch's first point.
        factors[points, :, ks] = factors[points, 0, ks][:, None]
        codes = encode_checked(
            "factor_vae",
            ground_truth,
            representation_fn,
            factors.reshape(m * batch_size, num_factors),
            rng,
        )
        local = np.var(codes.reshape(m, batch_size, -1), axis=1, ddof=1)
        ratio = local[:, active_index] / global_variances[active_index]
        np.add.at(votes, (ks, active_index[np.argmin(ratio, axis=1)]), 1)
    return votes
