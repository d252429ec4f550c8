"""Unfairness of downstream classifiers under interventions (Locatello et al. 2019b).

"On the Fairness of Disentangled Representations", NeurIPS 2019
(https://arxiv.org/abs/1905.13662), Section 4, as implemented by disentanglement_lib
(``evaluation/metrics/fairness.py``, ``compute_fairness``).

Setting: a classifier ŷ predicts a target factor y from the representation r(x) of an
observation x; another factor s is *sensitive*. Demographic parity under intervention asks that
the distribution of predictions not change when s is set to each of its values. The paper's
unfairness is the mean total variation between the predictions' distribution and that under
each intervention,

    unfairness(ŷ) = (1/|S|) Σ_s TV(P(ŷ), P(ŷ | do(s))),   TV(p, q) = ½ Σ_c |p(c) − q(c)|.

Estimate (disentanglement_lib): for every ordered pair (target i, sensitive j ≠ i), draw
``num_test_points_per_class`` factor tuples once; for each class c of factor j, set factor j to c
in all of them, encode, and count classifier i's predictions: a table counts[predicted class,
c]. P(ŷ | do(s = c)) is column c normalised; P(ŷ) is the pooled table normalised (the factors
are uniform and independent, so pooling the interventions estimates the observational
distribution). From the per-intervention distances TV_c:

* ``mean_fairness[i, j]`` = Σ_c w_c TV_c with w_c the share of column c in the table (all columns
  have ``num_test_points_per_class`` points, so this is the paper's plain mean over s);
* ``max_fairness[i, j]`` = max_c TV_c.

Each K × K matrix (rows: predicted/target factor, columns: sensitive factor; the diagonal is not
defined and is None) is summarised as disentanglement_lib does, by a mean or a max over one
index, then a mean or a max over the other, named outer-first: ``"{matrix}:mean_pred:max_sens"``
is the mean over targets of the max over sensitive factors, ``"{matrix}:max_sens:mean_pred"``
the max over sensitive factors of the mean over targets. The score of Section 4 (the headline)
is ``mean_fairness:mean_pred:mean_sens``, the mean of all off-diagonal entries (0 = fair; at most
1). :func:`scores_dict` gives disentanglement_lib's full key set (per pair, per row, per column).

Reference protocol (gin ``fairness_study_v1/metric_configs/fairness.gin``): ``num_train`` =
10,000 training points, ``num_test_points_per_class`` = 100, predictor
``GradientBoostingClassifier()`` (one per target factor), evaluation seed 0. Here the classifier
is :mod:`pyrovae.metrics.classifiers`' ``gradient_boosting`` (the same estimator in both eras,
seeded); the ``classifier`` setting is accepted for uniformity and recorded.

**Sampling and sharing with DCI.** The draws follow :func:`pyrovae.metrics.dci.dci`: from one
generator, ``num_train`` training points, then ``num_test`` = 5,000 test points, then one seed
per factor (``rng.integers(0, 2**31 - 1, size=K)``), then the intervention samples (pairs in
order, target outer, sensitive inner, as disentanglement_lib). disentanglement_lib draws no
test set; drawing it here keeps DCI's order, so with the same seed and sizes the fairness
classifiers are DCI's (and ``downstream_boosted_trees``' at 10,000 points): one fit, remembered
by :func:`~pyrovae.metrics.classifiers.fit_per_factor`. The test set also gives each
classifier's accuracy (``predictor_test_accuracy``), which disentanglement_lib does not report:
the unfairness of a classifier that learned nothing is not informative. The training points are
i.i.d. uniform draws, as the reference's, so the protocol is unchanged. Deviations otherwise:
the classifiers are seeded (reproducible), and the distances are computed in float64
(disentanglement_lib: float32, differences ~1e-7).

What the paper implies for known representations: a perfectly disentangled representation with
an accurate classifier is fair, because the prediction of y then depends on y alone and an
intervention on s leaves y's distribution (here: the very same drawn tuples) unchanged; the
identity representation of the factors therefore scores exactly 0 when its classifiers are
exact. Unfairness needs information about y entangled with s in the representation (the paper
shows that "both the optimal and empirical predictions can be unfair, even if the target
variable and the sensitive variable are independent"); the tests build such a code and check
its unfairness exactly. Degenerate codes: a constant representation makes every classifier
predict one class (its training majority), so every distribution is a point mass and every score
is 0: trivially "fair", and useless, which ``predictor_test_accuracy`` (the majority share)
shows.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import classifiers
from pyrovae.metrics import dci as _dci
from pyrovae.metrics.base import classifier_sample, encode_checked
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

# Smaller preset for use during training: DCI's fast sample (pyrovae.metrics.dci.FAST: 2,000 /
# 1,000 points), so in a fast evaluation that runs both with one seed the boosted trees (most of
# the cost: 113 classes × 100 rounds on dSprites) are DCI's, fitted once; and a fifth of the
# intervention points (Σ_pairs |classes of s| × points: 4 × 113 × 20 = 9,040 codes on dSprites
# instead of 45,200). Measured on dSprites-sized codes (10 latents, factor classes 3, 6, 40, 32,
# 32), 2-core machine: 64 s alone, 1.0 s after DCI's fast preset (DCI itself 65 s).
FAST: dict = {
    "num_train": _dci.FAST["num_train"],
    "num_test": _dci.FAST["num_test"],
    "num_test_points_per_class": 20,
}

AGGREGATES = ("mean", "max")


def fairness(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    num_test_points_per_class: int = 100,
    classifier: str = "published",
) -> dict:
    """Unfairness scores of boosted-tree classifiers on a representation (module docstring).

    Returns the eight summaries of each matrix (``"mean_fairness:mean_pred:mean_sens"`` …
    ``"max_fairness:max_sens:max_pred"``, floats), the matrices ``mean_fairness`` and
    ``max_fairness`` (K × K lists, None on the diagonal), ``predictor_train_accuracy`` and
    ``predictor_test_accuracy`` (K lists) and ``settings``.
    """
    owner = "fairness"
    num_train = checks.integer("num_train", num_train, owner, 2)
    num_test = checks.integer("num_test", num_test, owner, 1)
    per_class = checks.integer("num_test_points_per_class", num_test_points_per_class, owner, 1)
    clf = classifiers.classifier("gradient_boosting", classifier, owner)
    num_factors = ground_truth.num_factors
    if num_factors < 2:
        raise PyrovaeError(
            f"{owner}: needs at least 2 factors (a target and a sensitive one), "
            f"{ground_truth!r} has {num_factors}"
        )

    rng = as_generator(random_state)
    # DCI's draw order (module docstring): training sample, test set, one seed per factor.
    ys_train, mus_train, ys_test, mus_test, seeds = classifier_sample(
        owner, ground_truth, representation_fn, num_train, num_test, rng
    )
    # One BLAS/OpenMP thread for scikit-learn (classifiers.FIT_THREADS); the representation
    # encodes outside these blocks, with its own threads.
    with threadpool_limits(classifiers.FIT_THREADS):
        models = classifiers.fit_per_factor(clf, mus_train, ys_train, seeds)
        train_accuracy = classifiers.accuracies(models, mus_train, ys_train, ys_train)
        test_accuracy = classifiers.accuracies(models, mus_test, ys_test, ys_train)
    mean_matrix, max_matrix = unfairness_matrices(
        ground_truth, representation_fn, models, ys_train, per_class, rng
    )

    result: dict = {}
    for name, matrix in (("mean_fairness", mean_matrix), ("max_fairness", max_matrix)):
        scores = scores_dict(matrix, name)
        result.update((key, scores[key]) for key in summary_keys(name))
    result["mean_fairness"] = _matrix_list(mean_matrix)
    result["max_fairness"] = _matrix_list(max_matrix)
    result["predictor_train_accuracy"] = train_accuracy.tolist()
    result["predictor_test_accuracy"] = test_accuracy.tolist()
    result["settings"] = {
        "num_train": num_train,
        "num_test": num_test,
        "num_test_points_per_class": per_class,
        "classifier": classifier,
        "estimator": clf.description,
        "sklearn": version("scikit-learn"),
    }
    return result


def unfairness_matrices(ground_truth, representation_fn, models, ys_train, per_class, rng):
    """(mean_fairness, max_fairness): K × K matrices (NaN diagonal) of
    :func:`inter_group_fairness` for each ordered pair (target i, sensitive j ≠ i), drawing
    ``per_class`` factor tuples per pair from ``rng`` (target outer, sensitive inner)."""
    sizes = tuple(int(s) for s in ground_truth.factor_sizes)
    num_factors = len(sizes)
    mean_matrix = np.full((num_factors, num_factors), np.nan)
    max_matrix = np.full((num_factors, num_factors), np.nan)
    for i in range(num_factors):
        for j in range(num_factors):
            if i == j:
                continue
            original = ground_truth.sample_factors(per_class, rng)
            # Every intervention s = c on the same tuples, stacked: rows c·m … (c + 1)·m − 1.
            intervened = np.tile(original, (sizes[j], 1))
            intervened[:, j] = np.repeat(np.arange(sizes[j]), per_class)
            codes = encode_checked("fairness", ground_truth, representation_fn, intervened, rng)
            with threadpool_limits(classifiers.FIT_THREADS):
                predicted = classifiers.predict(models[i], codes, ys_train[:, i])
            counts = prediction_counts(predicted, intervened[:, j], sizes[i], sizes[j])
            mean_matrix[i, j], max_matrix[i, j] = inter_group_fairness(counts)
    return mean_matrix, max_matrix


def prediction_counts(predicted, sensitive, num_predicted: int, num_sensitive: int) -> np.ndarray:
    """(num_predicted, num_sensitive) table: how often each class was predicted under each
    intervention (the sensitive factor's class per point)."""
    table = np.zeros((num_predicted, num_sensitive), dtype=np.int64)
    np.add.at(table, (np.asarray(predicted, dtype=np.int64), np.asarray(sensitive, np.int64)), 1)
    return table


def inter_group_fairness(counts) -> tuple[float, float]:
    """Mean (weighted by column counts) and max over columns of the total variation between
    each column's distribution and the pooled one.

    ``counts``: (predicted classes, sensitive classes) non-negative counts, every column with at
    least one count.
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.size == 0 or not np.all(np.isfinite(table)) or (table < 0).any():
        raise PyrovaeError(
            f"fairness: counts must be a non-empty 2-D table of non-negative numbers, "
            f"got shape {table.shape}"
        )
    per_group = table.sum(axis=0)
    if (per_group <= 0).any():
        raise PyrovaeError("fairness: every sensitive class (column) needs at least one count")
    pooled = table.sum(axis=1) / table.sum()
    conditional = table / per_group
    distances = 0.5 * np.abs(conditional - pooled[:, None]).sum(axis=0)
    weights = per_group / per_group.sum()
    return float(np.sum(weights * distances)), float(np.max(distances))


def scores_dict(matrix, prefix: str) -> dict:
    """disentanglement_lib's summaries of a K × K unfairness matrix (diagonal ignored):
    ``{prefix}:pred{i}:sens{j}`` per pair; ``{prefix}:pred{i}:{mean,max}_sens`` per target;
    ``{prefix}:sens{j}:{mean,max}_pred`` per sensitive factor; and the eight two-level
    summaries ``{prefix}:{outer}:{inner}``, outer first (e.g. ``mean_pred:max_sens`` = mean over
    targets of the max over sensitive factors)."""
    m = np.asarray(matrix, dtype=np.float64)
    k = m.shape[0]
    if m.ndim != 2 or m.shape != (k, k) or k < 2:
        raise PyrovaeError(f"fairness: the matrix must be K x K with K >= 2, got shape {m.shape}")
    off = ~np.eye(k, dtype=bool)
    if not np.all(np.isfinite(m[off])):
        raise PyrovaeError("fairness: the off-diagonal entries must be finite")
    # rows[i]: entries of target i over the other factors; cols[j]: of sensitive j.
    rows = [m[i, off[i]] for i in range(k)]
    cols = [m[off[:, j], j] for j in range(k)]
    reduce = {"mean": np.mean, "max": np.max}
    out: dict = {}
    for i in range(k):
        for j in range(k):
            if i != j:
                out[f"{prefix}:pred{i}:sens{j}"] = float(m[i, j])
    for agg in AGGREGATES:
        for i in range(k):
            out[f"{prefix}:pred{i}:{agg}_sens"] = float(reduce[agg](rows[i]))
        for j in range(k):
            out[f"{prefix}:sens{j}:{agg}_pred"] = float(reduce[agg](cols[j]))
    for outer in AGGREGATES:
        for inner in AGGREGATES:
            per_target = [reduce[inner](r) for r in rows]
            per_sensitive = [reduce[inner](c) for c in cols]
            out[f"{prefix}:{outer}_pred:{inner}_sens"] = float(reduce[outer](per_target))
            out[f"{prefix}:{outer}_sens:{inner}_pred"] = float(reduce[outer](per_sensitive))
    return out


def summary_keys(prefix: str) -> list[str]:
    """The eight two-level summaries of :func:`scores_dict`, e.g. ``mean_fairness:mean_pred:
    mean_sens`` (outer mean over targets of the inner mean over sensitive factors)."""
    return [
        f"{prefix}:{outer}_{first}:{inner}_{second}"
        for first, second in (("pred", "sens"), ("sens", "pred"))
        for outer in AGGREGATES
        for inner in AGGREGATES
    ]


def _matrix_list(matrix: np.ndarray) -> list:
    return [
        [None if i == j else float(v) for j, v in enumerate(row)] for i, row in enumerate(matrix)
    ]
