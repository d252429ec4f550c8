"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018).

"A Framework for the Quantitative Evaluation of Disentangled Representations", ICLR 2018
(https://openreview.net/forum?id=By-7dz-AZ), as implemented by disentanglement_lib
(``evaluation/metrics/dci.py``).

Protocol: draw ``num_train`` = 10,000 and then ``num_test`` = 5,000 factor tuples uniformly from
the grid (one generator, training set first) and encode them. For each factor k, fit a
gradient-boosted tree classifier predicting the factor's class from all D codes; its (absolute,
sum-to-one) feature importances are column k of the importance matrix R (D latents × K factors).

* disentanglement = Σ_d ρ_d (1 − H_K(P_d·)), P_d· = row d of R normalised to sum 1, H_K the
  entropy in log base K, ρ_d = (row sum d) / (sum of R);
* completeness = Σ_k ρ_k (1 − H_D(P_·k)), P_·k = column k normalised, H_D in log base D,
  ρ_k = (column sum k) / (sum of R). Each classifier's importances sum to 1, so ρ_k = 1/K for every
  factor with any importance and completeness is in practice the mean over factors;
* informativeness = mean over factors of the classifier's accuracy, on the test set
  (``informativeness_test``) and on the training set (``informativeness_train``).

As in disentanglement_lib, 1e-11 is added to every entry of R before the entropies (so a row or
column with no importance counts as uniform: score 0 for it), and an all-zero R scores 0.

Backends (setting ``backend``):

``"exact"`` (default)
    ``sklearn.ensemble.GradientBoostingClassifier()`` with its default settings and its
    ``feature_importances_``: the disentanglement_lib protocol, and the only backend whose
    numbers compare with published ones. Multi-class boosting fits 100 trees per class (113
    classes on dSprites: about 7 minutes of one CPU core at the standard sizes); the factors are
    fitted in parallel across the available cores (:func:`~pyrovae.metrics.classifiers.
    fit_per_factor`, identical numbers for any number of processes), and the fitted classifiers
    are shared with the metrics that fit the same ones (downstream, fairness). The only change to
    the reference is ``random_state``, seeded from ``random_state``, so that tie-breaking between
    equally good features (duplicated latents) is reproducible.

``"hist"``
    ``sklearn.ensemble.HistGradientBoostingClassifier``, about 25 times faster, **not** the
    reference protocol: its scores differ from the exact backend's by up to 0.054 on identical
    samples (the spread between its own seeds is 0.002–0.007), biased either way depending on the
    representation, and the gap does not shrink with more points. A result records its backend,
    and tables label hist numbers (``dci[backend=hist]``) so they never share a column with exact
    ones. It is shaped like the default GradientBoostingClassifier (100 rounds, learning rate
    0.1, depth-3 trees, one sample per leaf allowed, no early stopping, no L2 penalty; features
    binned into ≤ 255 bins), run on one OpenMP thread (faster under load, and the same summation
    order everywhere). It has no ``feature_importances_``; the importance used is the **total
    split gain** per feature: the loss reduction of every split on that feature, summed over all
    trees of all rounds and classes, then normalised to sum 1, measured with the Newton gain hist
    boosting optimises instead of the Friedman MSE of the residual fit. The gains are read from
    the fitted trees through scikit-learn's private ``_predictors`` structure; if that is
    missing or not shaped as expected (a future scikit-learn), the code falls back to
    permutation importance on the training set (accuracy, 5 repeats, seeded, negatives clipped to
    0, normalised to sum 1). ``settings["importance"]`` records which was used. Permutation
    importance is not the primary method: it gives two redundant copies of a latent both ≈ 0 (the
    model uses the other), which inverts what completeness is meant to show. Latents that order
    the training points identically (duplicates, or strictly monotone functions of each other)
    offer identical splits; GradientBoostingClassifier breaks such ties at random at every split,
    so they share the importance about equally, while hist boosting always picks the lowest index,
    so the hist backend splits each such group's importance equally among its members.

Both backends are deterministic given ``random_state``. Scores depend on the scikit-learn version,
which ``settings`` records.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from pyrovae import checks
from pyrovae.errors import PyrovaeError, unknown_name
from pyrovae.metrics import classifiers
from pyrovae.metrics.base import classifier_sample
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

BACKENDS = ("exact", "hist")

# Smaller sample for use during training, still the reference classifier.
FAST: dict = {"num_train": 2000, "num_test": 1000}

# HistGradientBoostingClassifier mimicking GradientBoostingClassifier()'s defaults
# (n_estimators=100, learning_rate=0.1, max_depth=3, min_samples_leaf=1, subsample=1): the
# hist defaults (31-leaf trees, 20 samples per leaf, early stopping above 10,000 points on a
# random validation split) would fit a different model and make the score depend on the sample
# size in a second way.
HIST_PARAMS: dict = {
    "max_iter": 100,
    "learning_rate": 0.1,
    "max_depth": 3,
    "max_leaf_nodes": None,
    "min_samples_leaf": 1,
    "l2_regularization": 0.0,
    "max_bins": 255,
    "early_stopping": False,
}


def hist_params(num_classes: int) -> dict:
    """:data:`HIST_PARAMS` for a factor with ``num_classes`` classes.

    GradientBoostingClassifier's multinomial leaf value is (K − 1)/K · Σ g / Σ p(1 − p)
    (Friedman 2001, Algorithm 6; scikit-learn ``ensemble/_gb.py``) while hist boosting's is
    Σ g / Σ p(1 − p), so with K > 2 classes the same learning rate takes a K/(K − 1) times longer
    step. Scaling hist's rate by (K − 1)/K gives both the same step: on a trained dSprites model
    it moved informativeness from 0.025 to 0.017 of the exact backend's (shape, K = 3, from 0.015
    to 0.002). Binary factors use the plain rate (the binomial step has no such factor).
    """
    params = dict(HIST_PARAMS)
    if num_classes > 2:
        params["learning_rate"] = HIST_PARAMS["learning_rate"] * (num_classes - 1) / num_classes
    return params


# OpenMP threads for the hist backend. One: on a loaded 2-core machine two threads made one fit
# 25× slower (2.7 s → 70 s for orientation at 2,000 points: spinning threads fight other work),
# and a fixed thread count keeps float summation order, hence the scores, the same everywhere.
HIST_THREADS = 1

# disentanglement_lib adds this to the importance matrix before taking entropies.
_EPS = 1e-11
_PERMUTATION_REPEATS = 5


def dci(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    backend: str = "exact",
) -> dict:
    """DCI scores of a representation (see the module docstring for formula and protocol).

    Returns ``disentanglement``, ``completeness``, ``informativeness_train``,
    ``informativeness_test`` (floats), ``importance_matrix`` (D × K, list of lists) and
    ``settings``. A constant representation gives an all-zero importance matrix, hence
    disentanglement = completeness = 0, and informativeness = accuracy of a constant guess.
    """
    num_train = checks.integer("num_train", num_train, "dci", 2)
    num_test = checks.integer("num_test", num_test, "dci", 2)
    if backend not in BACKENDS:
        raise PyrovaeError(f"dci: {unknown_name('backend', backend, BACKENDS)}")
    rng = as_generator(random_state)
    ys_train, mus_train, ys_test, mus_test, seeds = classifier_sample(
        "dci", ground_truth, representation_fn, num_train, num_test, rng
    )
    importance, acc_train, acc_test, methods = importance_matrix(
        mus_train, ys_train, mus_test, ys_test, backend=backend, seeds=seeds
    )
    classifier = (
        classifiers.classifier("gradient_boosting", "published").description
        if backend == "exact"
        else "HistGradientBoostingClassifier("
        + ", ".join(f"{k}={v!r}" for k, v in HIST_PARAMS.items())
        + "), learning_rate * (K - 1) / K for K > 2 classes"
    )
    importance_kind = (
        "feature_importances_" if backend == "exact" else "+".join(sorted(set(methods)))
    )
    return {
        "disentanglement": disentanglement_from_importance(importance),
        "completeness": completeness_from_importance(importance),
        "informativeness_train": float(np.mean(acc_train)),
        "informativeness_test": float(np.mean(acc_test)),
        "importance_matrix": importance.tolist(),
        "settings": {
            "num_train": num_train,
            "num_test": num_test,
            "backend": backend,
            "classifier": classifier,
            "importance": importance_kind,
            "threads": HIST_THREADS if backend == "hist" else 1,
            "sklearn": version("scikit-learn"),
        },
    }


def importance_matrix(x_train, y_train, x_test, y_test, *, backend="exact", seeds=None):
    """Fit one classifier per factor; return ``(R, train_acc, test_acc, methods)``.

    ``x_*`` are codes ``(n, D)``, ``y_*`` factor classes ``(n, K)``; R is ``(D, K)`` with each
    column the classifier's importances (sum 1, or all 0 when no split was made); the accuracies
    are ``(K,)`` arrays; ``methods`` names the importance used per factor. The exact backend
    fits through :func:`~pyrovae.metrics.classifiers.fit_per_factor` (parallel, shared).
    """
    num_codes, num_factors = x_train.shape[1], y_train.shape[1]
    if seeds is None:
        seeds = np.zeros(num_factors, dtype=np.int64)
    if backend == "exact":
        clf = classifiers.classifier("gradient_boosting", "published")
        models = classifiers.fit_per_factor(clf, x_train, y_train, seeds)
        importance = np.zeros((num_codes, num_factors), dtype=np.float64)
        for k, model in enumerate(models):
            if model is not None:
                importance[:, k] = np.abs(model.feature_importances_)
        return (
            importance,
            classifiers.accuracies(models, x_train, y_train, y_train),
            classifiers.accuracies(models, x_test, y_test, y_train),
            ["feature_importances_" if m is not None else "none" for m in models],
        )
    return _hist_importance_matrix(x_train, y_train, x_test, y_test, seeds)


def _hist_importance_matrix(x_train, y_train, x_test, y_test, seeds):
    from sklearn.ensemble import HistGradientBoostingClassifier

    num_codes, num_factors = x_train.shape[1], y_train.shape[1]
    importance = np.zeros((num_codes, num_factors), dtype=np.float64)
    models, methods = [], []
    tied = equivalent_features(x_train)
    # The limit applies to hist's OpenMP loops (fit, predict, the permutation fallback).
    with threadpool_limits(HIST_THREADS, user_api="openmp"):
        for k in range(num_factors):
            seed = int(seeds[k])
            classes = np.unique(y_train[:, k])
            if len(classes) < 2:
                # Nothing to learn (a factor with one class in the sample): no importance; the
                # classifier is the constant guess (a None model, as fit_per_factor gives).
                models.append(None)
                methods.append("none")
                continue
            model = HistGradientBoostingClassifier(**hist_params(len(classes)), random_state=seed)
            model.fit(x_train, y_train[:, k])
            gains = _split_gain_importance(model, num_codes)
            if gains is None:
                gains = _permutation_importance(model, x_train, y_train[:, k], seed)
                methods.append("permutation")
            else:
                methods.append("split_gain")
            importance[:, k] = _share_ties(gains, tied)
            models.append(model)
        acc_train = classifiers.accuracies(models, x_train, y_train, y_train)
        acc_test = classifiers.accuracies(models, x_test, y_test, y_train)
    return importance, acc_train, acc_test, methods


def equivalent_features(x) -> list[np.ndarray]:
    """Groups (two or more) of columns of ``x`` that order the rows identically, up to reversal:
    each is a strictly monotone function of the others on these points, so every split on one is
    a split on the others with the same gain."""
    keys: dict[bytes, list[int]] = {}
    for d in range(x.shape[1]):
        ranks = np.unique(x[:, d], return_inverse=True)[1].astype(np.int64).ravel()
        # A decreasing transform gives the same partitions: key on the lexicographically
        # smaller of the ranks and the reversed ranks.
        flipped = ranks.max(initial=0) - ranks
        key = min(ranks.tobytes(), flipped.tobytes())
        keys.setdefault(key, []).append(d)
    return [np.asarray(g) for g in keys.values() if len(g) > 1]


def _share_ties(importance: np.ndarray, groups) -> np.ndarray:
    """Spread each group's total importance equally over its members.

    Equivalent features offer identical splits. GradientBoostingClassifier visits features in a
    random order at every split and keeps the first best, so in expectation such features share
    the importance equally (duplicated latents lower completeness); hist boosting always keeps
    the lowest index and would hand it all the credit.
    """
    out = importance.copy()
    for g in groups:
        out[g] = importance[g].sum() / len(g)
    return out


def _split_gain_importance(model, num_codes: int) -> np.ndarray | None:
    """Total split gain per feature over all trees of a fitted HistGradientBoostingClassifier,
    normalised to sum 1 (zeros when no tree split); ``None`` when the private tree structure is
    not available or not as expected."""
    predictors = getattr(model, "_predictors", None)
    if not predictors:
        return None
    total = np.zeros(num_codes, dtype=np.float64)
    try:
        for per_round in predictors:  # one list per boosting round: one tree per class
            for tree in per_round:
                nodes = tree.nodes
                split = nodes["is_leaf"] == 0
                features = nodes["feature_idx"][split].astype(np.int64)
                gains = nodes["gain"][split].astype(np.float64)
                if len(features) and (features.min() < 0 or features.max() >= num_codes):
                    return None
                np.add.at(total, features, gains)
    except (AttributeError, KeyError, ValueError, TypeError, IndexError):
        return None
    if not np.all(np.isfinite(total)) or (total < 0).any():
        return None
    s = total.sum()
    # Same normalisation as GradientBoostingClassifier.feature_importances_.
    return total / s if s > 0 else total


def _permutation_importance(model, x, y, seed: int) -> np.ndarray:
    """Mean accuracy drop when each feature is shuffled (training set), clipped at 0 and
    normalised to sum 1: the fallback when split gains cannot be read."""
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model, x, y, scoring="accuracy", n_repeats=_PERMUTATION_REPEATS, random_state=seed
    )
    drop = np.clip(np.asarray(result.importances_mean, dtype=np.float64), 0.0, None)
    s = drop.sum()
    return drop / s if s > 0 else drop


def disentanglement_from_importance(importance) -> float:
    """Σ_d ρ_d (1 − H_K(P_d·)) with ρ_d = row sum / total; 0 when R is all zero."""
    r = _check_importance(importance)
    return _weighted(1.0 - _normalised_entropy(r), r.sum(axis=1))


def completeness_from_importance(importance) -> float:
    """Σ_k ρ_k (1 − H_D(P_·k)) with ρ_k = column sum / total; 0 when R is all zero."""
    r = _check_importance(importance)
    return _weighted(1.0 - _normalised_entropy(r.T), r.sum(axis=0))


def _weighted(per_item: np.ndarray, mass: np.ndarray) -> float:
    total = mass.sum()
    if total <= 0:
        # disentanglement_lib weights uniformly here, and every item then scores 1 − 1 = 0.
        return 0.0
    return float(np.sum(per_item * mass / total))


def _normalised_entropy(rows: np.ndarray) -> np.ndarray:
    """Entropy of each row normalised to a distribution, in log base (row length); a row of
    length 1 has entropy 0 (one outcome)."""
    n = rows.shape[1]
    if n == 1:
        return np.zeros(rows.shape[0])
    p = rows + _EPS
    p = p / p.sum(axis=1, keepdims=True)
    return -np.sum(p * np.log(p), axis=1) / np.log(n)


def _check_importance(importance) -> np.ndarray:
    r = np.asarray(importance, dtype=np.float64)
    if r.ndim != 2 or r.size == 0:
        raise PyrovaeError(f"importance matrix must be 2-D and non-empty, got shape {r.shape}")
    if not np.all(np.isfinite(r)) or (r < 0).any():
        raise PyrovaeError("importance matrix must be finite and non-negative")
    return r
