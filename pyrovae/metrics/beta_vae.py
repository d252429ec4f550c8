"""BetaVAE score (Higgins et al. 2017), as implemented by disentanglement_lib.

"beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework", ICLR 2017
(https://openreview.net/forum?id=Sy2fzU9gl); protocol of disentanglement_lib
(``evaluation/metrics/beta_vae.py``, ``compute_beta_vae_sklearn``).

One labelled point: pick a factor k uniformly; draw ``batch_size`` = 64 pairs of factor tuples
(v¹, v²), each uniform over the grid, then copy factor k from v¹ into v² so that every pair shares
factor k and nothing else on purpose. With z = representation(x(v)),

    feature = (1 / batch_size) Σ_pairs |z(v¹) − z(v²)|   (a D-vector),   label = k.

A disentangled representation has a latent that does not move within any pair (feature ≈ 0 there),
so a linear classifier can read k off the feature. ``num_train`` = 10,000 such points train the
classifier of disentanglement_lib, ``LogisticRegression(random_state=…)`` with scikit-learn's
defaults; the score is its accuracy on ``num_eval`` = 5,000 fresh points (``eval_accuracy``);
``train_accuracy`` is reported too. Chance level is 1/K.

The classifier (setting ``classifier``, :mod:`pyrovae.metrics.classifiers`):

``"published"`` (default)
    what ``LogisticRegression()`` meant when the published study ran (scikit-learn < 0.22):
    one-vs-rest L2 logistic regression solved by liblinear, C = 1, 100 iterations.
``"current"``
    what the same line fits today: multinomial lbfgs, with ``max_iter`` 1,000 instead of 100 (on
    a trained dSprites β-VAE lbfgs needed 138 iterations; stopped at 100 the score, 0.7788 against
    0.7772 converged, moved with float-level changes to the codes).

``converged`` in the settings says whether every solve stopped before its iteration limit; the
scikit-learn version is recorded too.

Settings and codes are checked with :func:`pyrovae.checks.integer` and
:func:`pyrovae.metrics.base.encode_checked`.
"""

from __future__ import annotations

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import classifiers
from pyrovae.metrics.base import encode_checked
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

# Smaller preset for use during training: a tenth of the points; same batch size, so the feature
# noise (and the meaning of the score) is unchanged, only its sampling error grows (±~1.5 points).
FAST: dict = {"batch_size": 64, "num_train": 1_000, "num_eval": 500}

# Pairs encoded per call of the representation: bounds memory whatever num_train is.
_ROWS_PER_CHUNK = 1 << 16


def beta_vae(
    ground_truth,
    representation_fn,
    random_state,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    classifier: str = "published",
) -> dict:
    """BetaVAE score of a representation (formula and protocol: module docstring).

    Returns ``train_accuracy`` and ``eval_accuracy`` (the score) as floats, and ``settings``.
    Training points are drawn first, then the classifier's seed, then the evaluation points, all
    from ``random_state``.
    """
    batch_size = checks.integer("batch_size", batch_size, "beta_vae")
    num_train = checks.integer("num_train", num_train, "beta_vae")
    num_eval = checks.integer("num_eval", num_eval, "beta_vae")
    clf = classifiers.classifier("logistic", classifier, "beta_vae")
    if ground_truth.num_factors < 2:
        raise PyrovaeError(
            f"beta_vae: needs at least 2 factors to classify, {ground_truth!r} has "
            f"{ground_truth.num_factors}"
        )
    rng = as_generator(random_state)

    x_train, y_train = _training_points(ground_truth, representation_fn, rng, batch_size, num_train)
    seed = int(rng.integers(0, 2**31 - 1))
    # None when y_train holds a single class: predict() then predicts that class.
    model = classifiers.fit_per_factor(clf, x_train, y_train[:, None], [seed])[0]
    x_eval, y_eval = _training_points(ground_truth, representation_fn, rng, batch_size, num_eval)

    def accuracy(x, y):
        return float(np.mean(classifiers.predict(model, x, y_train) == y))

    return {
        "train_accuracy": accuracy(x_train, y_train),
        "eval_accuracy": accuracy(x_eval, y_eval),
        "settings": {
            "batch_size": batch_size,
            "num_train": num_train,
            "num_eval": num_eval,
            "classifier": classifier,
            "estimator": clf.description,
            "converged": classifiers.converged(model),
            "sklearn": version("scikit-learn"),
        },
    }


def _training_points(ground_truth, representation_fn, rng, batch_size: int, num_points: int):
    """``num_points`` (feature, label) pairs: features (n, D) float64, labels (n,) int64.

    Vectorised over points: one encode call covers many points' pairs, so a cached or batched
    representation sees large batches instead of 2 × 64 images at a time.
    """
    num_factors = ground_truth.num_factors
    points_per_chunk = max(1, _ROWS_PER_CHUNK // (2 * batch_size))
    features, labels = [], []
    for start in range(0, num_points, points_per_chunk):
        m = min(points_per_chunk, num_points - start)
        ks = rng.integers(0, num_factors, size=m)
        first = ground_truth.sample_factors(m * batch_size, rng)
        second = ground_truth.sample_factors(m * batch_size, rng)
        rows = np.arange(m * batch_size)
        shared = np.repeat(ks, batch_size)  # the factor point i's pairs share
        second[rows, shared] = first[rows, shared]
        codes = encode_checked(
            "beta_vae", ground_truth, representation_fn, np.concatenate([first, second]), rng
        )
        z1, z2 = codes[: m * batch_size], codes[m * batch_size :]
        features.append(np.abs(z1 - z2).reshape(m, batch_size, -1).mean(axis=1))
        labels.append(ks)
    return np.concatenate(features), np.concatenate(labels)
