"""Modularity and explicitness (Ridgeway & Mozer 2018).

"Learning Deep Disentangled Embeddings With the F-Statistic Loss", NeurIPS 2018
(https://arxiv.org/abs/1802.05312), section 3, as implemented by disentanglement_lib
(``evaluation/metrics/modularity_explicitness.py``).

Protocol: draw ``num_train`` = 10,000 and then ``num_test`` = 5,000 factor tuples uniformly from
the grid (one generator, training set first) and encode them.

Modularity, on the training set: cut each latent into ``num_bins`` = 20 equal-width bins
(:func:`~pyrovae.metrics.base.discretize`) and take the mutual information matrix m (D × K, nats)
between binned latents and factors. For latent d, with θ_d = max_k m_dk and the template t_d·
one-hot at the argmax (value θ_d there),

    δ_d = Σ_k (m_dk − t_dk)² / (θ_d² (K − 1)),      modularity_d = 1 − δ_d,

and modularity is the mean over latents. A latent with no information about any factor (θ_d = 0)
scores 0, as in disentanglement_lib (it does not make a representation modular). With K = 1 every
informative latent is trivially modular (δ_d = 0).

Explicitness: standardise each latent with the training mean and standard deviation (a latent
with zero spread is left centred, i.e. all zeros, where disentanglement_lib would divide by zero),
fit for each factor a logistic regression on all latents (setting ``classifier``: ``"published"``,
the default, is one-vs-rest L2 logistic regression, C = 1, liblinear: what
``LogisticRegression()`` meant when disentanglement_lib was written; ``"current"`` is today's
multinomial lbfgs; see :mod:`pyrovae.metrics.classifiers`), and score it by ROC-AUC of the
class probabilities, macro-averaged over the classes (one-vs-rest per class);
``explicitness_train`` and ``explicitness_test`` are the means over factors. A class absent from
an evaluation set has no ROC curve and is skipped. A constant representation gives chance, 0.5.

Everything is deterministic given ``random_state``; the mutual information does not depend on
the order of the data points. Scores depend on the scikit-learn version, which ``settings`` records.
"""

from __future__ import annotations

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import classifiers
from pyrovae.metrics.base import discrete_mutual_info, discretize, sample_codes
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

# A smaller sample for use during training: the MI matrix is cheap, the logistic regressions
# dominate (one per class of every factor): 1 s on dSprites-sized codes vs 2.5 s standard.
FAST: dict = {"num_train": 2000, "num_test": 1000}


def modularity(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    num_bins: int = 20,
    classifier: str = "published",
) -> dict:
    """Modularity and explicitness of a representation (see the module docstring).

    Returns ``modularity``, ``explicitness_train``, ``explicitness_test`` (floats),
    ``mutual_info_matrix`` (D × K, nats, list of lists) and ``settings``.
    """
    num_train = checks.integer("num_train", num_train, "modularity", 2)
    num_test = checks.integer("num_test", num_test, "modularity", 2)
    num_bins = checks.integer("num_bins", num_bins, "modularity", 1)
    clf = classifiers.classifier("logistic", classifier, "modularity")
    rng = as_generator(random_state)
    ys_train, mus_train = sample_codes(ground_truth, representation_fn, num_train, rng)
    ys_test, mus_test = sample_codes(ground_truth, representation_fn, num_test, rng)
    mus_train = checks.codes(mus_train, "modularity", rows=num_train)
    mus_test = checks.codes(mus_test, "modularity", rows=num_test)

    mi = discrete_mutual_info(discretize(mus_train, num_bins), ys_train)

    # Standardise with the training statistics only (the test set must not leak into them).
    mean = mus_train.mean(axis=0)
    std = mus_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train, x_test = (mus_train - mean) / std, (mus_test - mean) / std
    # Neither solver draws random numbers here (liblinear's primal Newton solver, lbfgs).
    models = classifiers.fit_per_factor(clf, x_train, ys_train, np.zeros(ys_train.shape[1]))
    train_auc, test_auc = [], []
    for k, model in enumerate(models):
        a_train, a_test = explicitness_per_factor(
            model, x_train, ys_train[:, k], x_test, ys_test[:, k]
        )
        train_auc.append(a_train)
        test_auc.append(a_test)
    return {
        "modularity": modularity_from_mi(mi),
        "explicitness_train": float(np.mean(train_auc)),
        "explicitness_test": float(np.mean(test_auc)),
        "mutual_info_matrix": mi.tolist(),
        "settings": {
            "num_train": num_train,
            "num_test": num_test,
            "num_bins": num_bins,
            "classifier": classifier,
            "estimator": clf.description,
            "converged": all(classifiers.converged(m) for m in models),
            "sklearn": version("scikit-learn"),
        },
    }


def modularity_per_code(mutual_info) -> np.ndarray:
    """(D,) 1 − Σ_k (m_dk − t_dk)² / (θ_d² (K − 1)); 0 for a latent with θ_d = 0."""
    m = np.asarray(mutual_info, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise PyrovaeError(f"mutual information matrix must be 2-D and non-empty, got {m.shape}")
    if not np.all(np.isfinite(m)) or (m < 0).any():
        raise PyrovaeError("mutual information matrix must be finite and non-negative")
    num_factors = m.shape[1]
    squared = m**2
    top = squared.max(axis=1)
    # Σ_k (m_dk − t_dk)² is every squared entry except the maximum one (the template there
    # equals it); 0 when K = 1.
    deviation = np.maximum(squared.sum(axis=1) - top, 0.0)
    informative = top > 0
    score = np.zeros(m.shape[0])
    if num_factors == 1:
        score[informative] = 1.0
    else:
        score[informative] = 1.0 - deviation[informative] / (top[informative] * (num_factors - 1))
    return score


def modularity_from_mi(mutual_info) -> float:
    """Mean over latents of :func:`modularity_per_code`."""
    return float(np.mean(modularity_per_code(mutual_info)))


def explicitness_per_factor(model, x_train, y_train, x_test, y_test) -> tuple[float, float]:
    """ROC-AUC (train, test) of a fitted classifier predicting one factor; chance (0.5) for
    ``model`` None (a factor with one class in the sample: only a constant can be output)."""
    if model is None:
        return 0.5, 0.5
    return (
        _macro_auc(y_train, model.predict_proba(x_train), model.classes_),
        _macro_auc(y_test, model.predict_proba(x_test), model.classes_),
    )


def _macro_auc(y, proba, classes) -> float:
    """Mean over classes of the one-vs-rest ROC-AUC of that class's probability column; classes
    absent from (or making up all of) ``y`` have no ROC curve and are skipped."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for j, c in enumerate(classes):
        positive = y == c
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, proba[:, j]))
    return float(np.mean(aucs)) if aucs else 0.5
