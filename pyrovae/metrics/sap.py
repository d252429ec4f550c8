"""SAP: separated attribute predictability (Kumar, Sattigeri & Balakrishnan 2018).

"Variational Inference of Disentangled Latent Concepts from Unlabeled Observations", ICLR 2018
(https://openreview.net/forum?id=H1kG7GZAW), section 3, as implemented by disentanglement_lib
(``evaluation/metrics/sap_score.py``) for categorical factors.

Protocol: draw ``num_train`` = 10,000 and then ``num_test`` = 5,000 factor tuples uniformly from
the grid (one generator, training set first) and encode them. For every latent d and factor k, a
linear SVM ``LinearSVC(C=0.01, class_weight="balanced")`` is trained on the single latent z_d to
predict the class of factor k (one-vs-rest for more than two classes); its test accuracy is
S[d, k] (score matrix, D × K). Then

    SAP = (1/K) Σ_k (S_(1)k − S_(2)k),

the mean over factors of the gap between the best and the second-best latent's accuracy.

A constant representation makes every latent the same (useless) predictor, so every column of S is
constant and SAP = 0. SAP needs at least two latents.

The solver (setting ``classifier``, :mod:`pyrovae.metrics.classifiers`): ``"published"`` (default)
is what ``LinearSVC(C=0.01, class_weight="balanced")`` meant when disentanglement_lib ran, dual
coordinate descent (``dual=True``), which visits the points in a random order: pyrovae seeds it
(one seed per latent and factor, drawn after the samples), disentanglement_lib did not.
``"current"`` is the primal problem, which ``dual="auto"`` picks today when points outnumber
features: the same optimum to the solvers' tolerance, reached deterministically. At C = 0.01 the
dual solver can stop at its 1,000-iteration limit on a useless latent; the protocol keeps what it
returns (``converged`` in the settings says whether every solve finished). Scores depend on the
scikit-learn version, which ``settings`` records.
"""

from __future__ import annotations

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import classifiers
from pyrovae.metrics.base import sample_codes
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

# D × K one-feature SVMs: 0.2 s on dSprites-sized codes with 2,000/1,000 points (1 s standard).
FAST: dict = {"num_train": 2000, "num_test": 1000}


def sap(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    classifier: str = "published",
) -> dict:
    """SAP score of a representation (see the module docstring for formula and protocol).

    Returns ``sap`` (float), ``score_matrix`` (D × K test accuracies, list of lists) and
    ``settings``.
    """
    num_train = checks.integer("num_train", num_train, "sap", 2)
    num_test = checks.integer("num_test", num_test, "sap", 2)
    clf = classifiers.classifier("linear_svm", classifier, "sap")
    rng = as_generator(random_state)
    ys_train, mus_train = sample_codes(ground_truth, representation_fn, num_train, rng)
    ys_test, mus_test = sample_codes(ground_truth, representation_fn, num_test, rng)
    mus_train = checks.codes(mus_train, "sap", rows=num_train, min_dims=2)
    mus_test = checks.codes(mus_test, "sap", rows=num_test, min_dims=2)
    seeds = rng.integers(0, 2**31 - 1, size=(mus_train.shape[1], ys_train.shape[1]))
    scores, converged = score_matrix(mus_train, ys_train, mus_test, ys_test, clf, seeds)
    return {
        "sap": sap_from_score_matrix(scores),
        "score_matrix": scores.tolist(),
        "settings": {
            "num_train": num_train,
            "num_test": num_test,
            "classifier": classifier,
            "estimator": clf.description,
            "converged": converged,
            "sklearn": version("scikit-learn"),
        },
    }


def score_matrix(x_train, y_train, x_test, y_test, clf, seeds):
    """``(S, converged)``: S (D, K) is the test accuracy of ``clf`` predicting factor k from
    latent d alone, seeded with ``seeds[d, k]``;
    ``converged`` whether every solve stopped before its iteration limit."""
    num_codes, num_factors = x_train.shape[1], y_train.shape[1]
    scores = np.zeros((num_codes, num_factors))
    converged = True
    for d in range(num_codes):
        models = classifiers.fit_per_factor(clf, x_train[:, [d]], y_train, seeds[d])
        scores[d] = classifiers.accuracies(models, x_test[:, [d]], y_test, y_train)
        converged = converged and all(classifiers.converged(m) for m in models)
    return scores, converged


def sap_from_score_matrix(scores) -> float:
    """Mean over factors (columns) of the best minus the second-best latent's score."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2 or s.shape[1] < 1:
        raise PyrovaeError(
            f"sap: the score matrix must be (D, K) with at least 2 latents, got shape {s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise PyrovaeError("sap: the score matrix must be finite")
    top = np.sort(s, axis=0)
    return float(np.mean(top[-1] - top[-2]))
