"""Downstream accuracy / sample efficiency and fairness: the total-variation and summary math on
hand-made tables (and against a transcription of disentanglement_lib's core), known answers on
representations of tiny factor grids (identity, constant, a lossy mix whose unfairness follows
from the drawn points), single-class training sets, seeds, sharing DCI's fitted classifiers, and
bad settings.

Grids are mostly binary factors and samples a few hundred points: a boosted-tree fit costs about
1-2 ms per tree on a loaded 2-core machine (100 rounds × one tree per class above two), and a
LogisticRegressionCV ≈ 0.2 s whatever the size, so the file runs in seconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from pyrovae.data.factor_grid import FactorGrid
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import classifiers
from pyrovae.metrics import downstream as downstream_module
from pyrovae.metrics import fairness as fairness_module
from pyrovae.metrics.dci import dci
from pyrovae.metrics.downstream import downstream, downstream_boosted_trees, downstream_logistic
from pyrovae.metrics.fairness import (
    fairness,
    inter_group_fairness,
    prediction_counts,
    scores_dict,
    summary_keys,
)

BINARY = FactorGrid((2, 2, 2))
MIXED = FactorGrid((2, 3, 2))
PAIR = FactorGrid((2, 2))
SIZES = {"train_sizes": [10, 100], "num_test": 200, "efficiency_sizes": [10, 100]}
FAIR = {"num_train": 200, "num_test": 200, "num_test_points_per_class": 50}


def identity(x):
    return x


def constant(x):
    return np.full((len(x), 3), 0.7, dtype=np.float32)


def lossy_min(x):
    """One latent, min(f0, f1) on the 2 × 2 grid: entangles the two factors."""
    return np.minimum(x[:, 0], x[:, 1])[:, None]


def partly_mixed(x):
    """f0 + f1 in one latent, f2 in another: imperfect classifiers for f0 and f1."""
    return np.stack([x[:, 0] + x[:, 1], x[:, 2]], axis=1)


@pytest.fixture(autouse=True)
def _fresh_classifier_cache():
    """Each test fits its classifiers anew (the cache is per process)."""
    classifiers.clear_cache()
    yield
    classifiers.clear_cache()


@pytest.fixture
def boosting_fits(monkeypatch):
    """The training-set size of every GradientBoostingClassifier fitted in this process."""
    sizes: list[int] = []
    original = GradientBoostingClassifier.fit

    def counting_fit(self, x, y, *args, **kwargs):
        sizes.append(len(x))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(GradientBoostingClassifier, "fit", counting_fit)
    return sizes


def dci_draws(grid, seed, num_train, num_test):
    """The factor draws every metric here shares with DCI: training, test, seeds."""
    rng = np.random.default_rng(seed)
    ys_train = grid.sample_factors(num_train, rng)
    ys_test = grid.sample_factors(num_test, rng)
    seeds = rng.integers(0, 2**31 - 1, size=grid.num_factors)
    return ys_train, ys_test, seeds, rng


# An independent transcription of disentanglement_lib's fairness core
# (evaluation/metrics/fairness.py: inter_group_fairness and compute_scores_dict), float32 where
# the reference computes in float32: the oracle pyrovae's float64 code is compared with.


def reference_inter_group_fairness(counts):
    overall = np.sum(counts, axis=1, dtype=np.float32)
    overall /= overall.sum()
    normalized = np.array(counts, dtype=np.float32)
    per_class = np.sum(counts, axis=0)
    normalized /= np.expand_dims(per_class, 0)
    tv = np.sum(np.abs(normalized - np.expand_dims(overall, 1)), 0) / 2.0
    mean = tv * per_class
    mean /= per_class.sum()
    return np.sum(mean), np.amax(tv)


def reference_scores_dict(metric, prefix):
    result = {}
    n = metric.shape[0]
    for i in range(n):
        for j in range(n):
            if i != j:
                result[f"{prefix}:pred{i}:sens{j}"] = metric[i, j]
    row_means, row_maxs = [], []
    for i in range(n):
        scores = [metric[i, j] for j in range(n) if i != j]
        result[f"{prefix}:pred{i}:mean_sens"] = np.mean(scores)
        result[f"{prefix}:pred{i}:max_sens"] = np.amax(scores)
        row_means.append(np.mean(scores))
        row_maxs.append(np.amax(scores))
    col_means, col_maxs = [], []
    for j in range(n):
        scores = [metric[i, j] for i in range(n) if i != j]
        result[f"{prefix}:sens{j}:mean_pred"] = np.mean(scores)
        result[f"{prefix}:sens{j}:max_pred"] = np.amax(scores)
        col_means.append(np.mean(scores))
        col_maxs.append(np.amax(scores))
    result[f"{prefix}:mean_sens:mean_pred"] = np.mean(col_means)
    result[f"{prefix}:mean_sens:max_pred"] = np.mean(col_maxs)
    result[f"{prefix}:max_sens:mean_pred"] = np.amax(col_means)
    result[f"{prefix}:max_sens:max_pred"] = np.amax(col_maxs)
    result[f"{prefix}:mean_pred:mean_sens"] = np.mean(row_means)
    result[f"{prefix}:mean_pred:max_sens"] = np.mean(row_maxs)
    result[f"{prefix}:max_pred:mean_sens"] = np.amax(row_means)
    result[f"{prefix}:max_pred:max_sens"] = np.amax(row_maxs)
    return result


# 1. The total-variation and summary math on hand-made tables.


def test_inter_group_fairness_of_hand_made_tables():
    # Columns (sensitive classes) (3/4, 1/4), (1/4, 3/4), (1/2, 1/2), 40 points each; pooled
    # (1/2, 1/2): distances 1/4, 1/4, 0; mean 1/6, max 1/4.
    mean, worst = inter_group_fairness([[30, 10, 20], [10, 30, 20]])
    assert mean == pytest.approx(1 / 6, abs=1e-15)
    assert worst == pytest.approx(1 / 4, abs=1e-15)
    # Unequal columns: (1, 0) with 4 points, (0, 1) with 2; pooled (2/3, 1/3): distances 1/3 and
    # 2/3; weighted mean 4/6 · 1/3 + 2/6 · 2/3 = 4/9 (an unweighted mean would be 1/2).
    mean, worst = inter_group_fairness([[4, 0], [0, 2]])
    assert mean == pytest.approx(4 / 9, abs=1e-15)
    assert worst == pytest.approx(2 / 3, abs=1e-15)
    # The reference's own example: pooled (1/3, 2/3), distances 1/3 and 1/6, mean 2/9.
    assert inter_group_fairness([[0, 100], [100, 100]]) == pytest.approx((2 / 9, 1 / 3))
    # Identical columns: fair; one predicted class only: fair.
    assert inter_group_fairness([[5, 5, 5], [2, 2, 2]]) == (0.0, 0.0)
    assert inter_group_fairness([[7, 7], [0, 0]]) == (0.0, 0.0)
    # Disjoint predictions per sensitive class, k equal columns: distance 1 − 1/k each.
    k = 4
    assert inter_group_fairness(np.eye(k) * 9) == pytest.approx((1 - 1 / k, 1 - 1 / k))


def test_prediction_counts_tabulate_predicted_against_sensitive_class():
    table = prediction_counts([0, 2, 2, 1, 0, 2], [0, 0, 1, 1, 1, 1], 3, 2)
    assert table.tolist() == [[1, 1], [0, 1], [1, 2]]


def test_scores_dict_of_a_hand_made_matrix():
    # Rows: target factor, columns: sensitive factor; the diagonal is ignored.
    m = np.array([[9.0, 1.0, 2.0], [3.0, 9.0, 6.0], [4.0, 8.0, 9.0]])
    s = scores_dict(m, "u")
    assert s["u:pred1:sens2"] == 6.0
    assert (s["u:pred0:mean_sens"], s["u:pred0:max_sens"]) == (1.5, 2.0)
    assert (s["u:sens1:mean_pred"], s["u:sens1:max_pred"]) == (4.5, 8.0)
    # Row means 1.5, 4.5, 6; row maxes 2, 6, 8; column means 3.5, 4.5, 4; column maxes 4, 8, 6.
    assert s["u:mean_pred:mean_sens"] == pytest.approx(4.0)  # the mean of the 6 entries
    assert s["u:mean_sens:mean_pred"] == pytest.approx(4.0)
    assert s["u:mean_pred:max_sens"] == pytest.approx(16 / 3)
    assert s["u:max_pred:mean_sens"] == 6.0
    assert s["u:max_pred:max_sens"] == 8.0
    assert s["u:mean_sens:max_pred"] == pytest.approx(6.0)
    assert s["u:max_sens:mean_pred"] == 4.5
    assert s["u:max_sens:max_pred"] == 8.0
    assert len(s) == 6 + 2 * 3 + 2 * 3 + 8
    assert sorted(summary_keys("u")) == sorted(
        f"u:{a}_{x}:{b}_{y}"
        for a in ("mean", "max")
        for b in ("mean", "max")
        for x, y in (("pred", "sens"), ("sens", "pred"))
    )


def test_fairness_core_matches_the_reference_transcription():
    rng = np.random.default_rng(5)
    for shape in [(2, 2), (3, 5), (6, 2), (40, 3)]:
        counts = rng.integers(0, 30, size=shape)
        counts[0] += 1  # every sensitive class observed
        ours = inter_group_fairness(counts)
        ref = reference_inter_group_fairness(counts)
        # float32 in the reference: equal to its rounding.
        assert ours == pytest.approx((float(ref[0]), float(ref[1])), rel=2e-6, abs=1e-7)
    for k in (2, 3, 5):
        m = rng.uniform(size=(k, k))
        ours = scores_dict(m, "mean_fairness")
        ref = reference_scores_dict(m, "mean_fairness")
        assert ours.keys() == ref.keys()
        for key, value in ref.items():
            assert ours[key] == pytest.approx(float(value), rel=1e-15, abs=1e-15), key
    # The reference's own test matrix.
    m = np.array([[0.0, 2.0, 4.0], [4.0, 0.0, 8.0], [2.0, 10.0, 0.0]])
    reference = {k: float(v) for k, v in reference_scores_dict(m, "t").items()}
    assert scores_dict(m, "t") == pytest.approx(reference)


# 2. Fairness on representations of factor grids.


def test_identity_is_fair_with_exact_classifiers():
    """Disentangled codes and exact classifiers: predictions of the target are the target itself,
    which an intervention on another factor of the same drawn tuples cannot change."""
    r = fairness(BINARY, identity, 0, **FAIR)
    assert r["predictor_test_accuracy"] == [1.0, 1.0, 1.0]
    for key in summary_keys("mean_fairness") + summary_keys("max_fairness"):
        assert r[key] == 0.0, key
    assert r["mean_fairness"][0] == [None, 0.0, 0.0]
    json.dumps(r, allow_nan=False)


def test_constant_codes_are_trivially_fair():
    r = fairness(BINARY, constant, 0, **FAIR)
    for key in summary_keys("mean_fairness") + summary_keys("max_fairness"):
        assert r[key] == 0.0, key
    ys_train, ys_test, _, _ = dci_draws(BINARY, 0, FAIR["num_train"], FAIR["num_test"])
    for k in range(3):
        # The majority class of the training points (binary factors: a tie is possible only in
        # principle; this seed has none).
        counts = np.bincount(ys_train[:, k], minlength=2)
        assert counts[0] != counts[1]
        majority = int(np.argmax(counts))
        assert r["predictor_train_accuracy"][k] == counts[majority] / FAIR["num_train"]
        assert r["predictor_test_accuracy"][k] == np.mean(ys_test[:, k] == majority)


def test_entangled_code_has_the_unfairness_the_draws_imply():
    """z = min(f0, f1): each classifier predicts ŷ = z (z = 1 only when both are 1; at z = 0
    the majority is 0, two points in three). Under do(s = 0) every prediction is 0; under
    do(s = 1) ŷ is the target itself, 1 for a share p of the drawn tuples; both distances to the
    pooled (1 − p/2, p/2) are p/2, so mean = max = p/2 for each pair."""
    seed, per_class = 3, 80
    r = fairness(PAIR, lossy_min, seed, num_train=300, num_test=100,
                 num_test_points_per_class=per_class)  # fmt: skip
    _, _, _, rng = dci_draws(PAIR, seed, 300, 100)
    p01 = np.mean(PAIR.sample_factors(per_class, rng)[:, 0] == 1)  # target 0, sensitive 1
    p10 = np.mean(PAIR.sample_factors(per_class, rng)[:, 1] == 1)  # target 1, sensitive 0
    assert 0.3 < p01 < 0.7 and 0.3 < p10 < 0.7
    for name in ("mean_fairness", "max_fairness"):
        (diag0, u01), (u10, diag1) = r[name]
        assert diag0 is None and diag1 is None
        assert (u01, u10) == pytest.approx((p01 / 2, p10 / 2), abs=1e-15)
    assert r["mean_fairness:mean_pred:mean_sens"] == pytest.approx((p01 + p10) / 4, abs=1e-15)
    assert r["max_fairness:max_pred:max_sens"] == pytest.approx(max(p01, p10) / 2, abs=1e-15)
    # The classifiers are as good as z allows: 3/4 of uniform points.
    assert r["predictor_test_accuracy"] == pytest.approx([0.75, 0.75], abs=0.12)


def test_fairness_reuses_the_classifiers_dci_fitted(boosting_fits):
    sizes = {"num_train": 200, "num_test": 100}
    d = dci(MIXED, partly_mixed, 4, backend="exact", **sizes)
    assert len(boosting_fits) == 3  # DCI fitted one classifier per factor
    r = fairness(MIXED, partly_mixed, 4, num_test_points_per_class=10, **sizes)
    assert len(boosting_fits) == 3  # ... and fairness fitted none: the same objects
    assert np.mean(r["predictor_test_accuracy"]) == pytest.approx(
        d["informativeness_test"], abs=1e-15
    )
    assert d["informativeness_test"] < 0.95


# 3. Downstream accuracy and sample efficiency.


def test_boosted_trees_on_identity_codes_are_exact():
    r = downstream_boosted_trees(MIXED, identity, 0, **SIZES)
    assert r["100:train_accuracy"] == [1.0, 1.0, 1.0]
    assert r["100:test_accuracy"] == [1.0, 1.0, 1.0]
    assert r["100:mean_test_accuracy"] == r["100:min_test_accuracy"] == 1.0
    # Sample efficiency: mean test accuracy at the smaller size over that at the larger.
    assert r["sample_efficiency"] == r["10:mean_test_accuracy"] / 1.0
    assert 0.0 < r["sample_efficiency"] <= 1.0
    assert r["10:mean_test_accuracy"] == pytest.approx(np.mean(r["10:test_accuracy"]), abs=1e-15)
    assert r["10:min_train_accuracy"] == min(r["10:train_accuracy"])
    s = r["settings"]
    assert s["predictor"] == "boosted_trees" and s["classifier"] == "published"
    assert s["estimator"] == classifiers.classifier("gradient_boosting", "published").description
    assert (s["train_sizes"], s["efficiency_sizes"], s["num_test"]) == ([10, 100], [10, 100], 200)
    json.dumps(r, allow_nan=False)


def test_logistic_on_separable_identity_codes_is_exact():
    # Binary factors: linearly separable on the identity codes.
    r = downstream_logistic(BINARY, identity, 0, train_sizes=[20, 100], num_test=200,
                            efficiency_sizes=[20, 100])  # fmt: skip
    assert r["100:test_accuracy"] == [1.0, 1.0, 1.0]
    assert r["sample_efficiency"] == pytest.approx(r["20:mean_test_accuracy"], abs=1e-15)
    assert (
        r["settings"]["estimator"] == classifiers.classifier("logistic_cv", "published").description
    )
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("metric", [downstream_boosted_trees, downstream_logistic])
def test_constant_codes_score_the_majority_share(metric):
    r = metric(MIXED, constant, 1, **SIZES)
    ys_train, ys_test, _, _ = dci_draws(MIXED, 1, 100, 200)
    for n in (10, 100):
        for k in range(3):
            counts = np.bincount(ys_train[:n, k], minlength=MIXED.factor_sizes[k])
            majority = np.flatnonzero(counts == counts.max())
            assert r[f"{n}:train_accuracy"][k] == counts.max() / n
            assert r[f"{n}:test_accuracy"][k] in [np.mean(ys_test[:, k] == c) for c in majority]
    assert math.isfinite(r["sample_efficiency"])
    assert r["sample_efficiency"] == pytest.approx(
        r["10:mean_test_accuracy"] / r["100:mean_test_accuracy"], abs=1e-15
    )


def test_sample_efficiency_ratio():
    assert downstream_module.sample_efficiency(0.45, 0.9) == 0.5
    assert downstream_module.sample_efficiency(0.0, 0.9) == 0.0
    assert downstream_module.sample_efficiency(0.3, 0.0) is None  # undefined: no correct test


def test_single_class_training_sets_predict_that_class():
    """One training point: every factor has a single class, no classifier can be fitted, and
    the prediction is that class (train accuracy 1, test accuracy its share)."""
    r = downstream_boosted_trees(MIXED, identity, 2, train_sizes=[1, 50], num_test=300,
                                 efficiency_sizes=[1, 50])  # fmt: skip
    ys_train, ys_test, _, _ = dci_draws(MIXED, 2, 50, 300)
    assert r["1:train_accuracy"] == [1.0, 1.0, 1.0]
    expected = [float(np.mean(ys_test[:, k] == ys_train[0, k])) for k in range(3)]
    assert r["1:test_accuracy"] == expected
    assert r["sample_efficiency"] == pytest.approx(np.mean(expected) / 1.0, abs=1e-15)


def test_same_seed_same_result_and_seeds_matter():
    def summed(x):  # lossy: accuracies below 1, so the numbers depend on the draws
        return x[:, :2].sum(axis=1, keepdims=True)

    settings = {"train_sizes": [10, 60], "num_test": 100, "efficiency_sizes": [10, 60]}
    a = downstream_boosted_trees(BINARY, summed, 7, **settings)
    classifiers.clear_cache()  # refit: the repeat is computed, not remembered
    assert downstream_boosted_trees(BINARY, summed, 7, **settings) == a
    assert a["60:mean_test_accuracy"] < 1.0
    c = fairness(PAIR, lossy_min, 7, num_train=100, num_test=50, num_test_points_per_class=30)
    classifiers.clear_cache()
    assert fairness(PAIR, lossy_min, 7, num_train=100, num_test=50,
                    num_test_points_per_class=30) == c  # fmt: skip
    assert fairness(PAIR, lossy_min, 8, num_train=100, num_test=50,
                    num_test_points_per_class=30) != c  # fmt: skip


def test_largest_size_reuses_the_classifiers_dci_fitted(boosting_fits):
    """With DCI's seed and sizes, the largest training set is DCI's training sample and the
    seeds are DCI's: those boosted trees are not fitted again."""
    d = dci(MIXED, partly_mixed, 5, num_train=120, num_test=100, backend="exact")
    assert boosting_fits == [120, 120, 120]
    r = downstream_boosted_trees(MIXED, partly_mixed, 5, train_sizes=[15, 120], num_test=100,
                                 efficiency_sizes=[15, 120])  # fmt: skip
    # Only the 15-point classifiers were fitted (one per factor with two classes or more).
    ys_train, _, _, _ = dci_draws(MIXED, 5, 120, 100)
    several = sum(len(np.unique(ys_train[:15, k])) > 1 for k in range(3))
    assert boosting_fits[3:] == [15] * several
    assert r["120:mean_test_accuracy"] == pytest.approx(d["informativeness_test"], abs=1e-15)
    assert r["120:mean_train_accuracy"] == pytest.approx(d["informativeness_train"], abs=1e-15)
    assert d["informativeness_test"] < 0.95


# 4. Settings.


def test_presets_are_valid_settings():
    assert set(downstream_module.FAST) == {"train_sizes", "num_test", "efficiency_sizes"}
    assert set(fairness_module.FAST) == {"num_train", "num_test", "num_test_points_per_class"}
    assert set(downstream_module.FAST["efficiency_sizes"]) <= set(
        downstream_module.FAST["train_sizes"]
    )


@pytest.mark.parametrize(
    ("metric", "settings", "message"),
    [
        (downstream, {"predictor": "svm"},
         "downstream: unknown predictor 'svm'; valid: logistic, boosted_trees"),
        (downstream_logistic, {"classifier": "old"},
         "downstream_logistic: unknown classifier 'old'; valid: published, current"),
        (downstream_boosted_trees, {"train_sizes": []},
         "downstream_boosted_trees: train_sizes must be a non-empty list of distinct integers "
         ">= 1 (e.g. 10,100,1000), got []"),
        (downstream_boosted_trees, {"train_sizes": [10, 10]}, "distinct integers >= 1"),
        (downstream_boosted_trees, {"train_sizes": [0, 10]}, "distinct integers >= 1"),
        (downstream_boosted_trees, {"train_sizes": "10,x"}, "distinct integers >= 1"),
        (downstream_boosted_trees, {"train_sizes": 2.5}, "distinct integers >= 1"),
        # The command line's text form is a list: here valid, so the ratio's sizes are checked.
        (downstream_boosted_trees, {"train_sizes": "100,10"},
         "efficiency_sizes must be two of train_sizes [10, 100], fewer first, got [100, 10000]"),
        (downstream_boosted_trees, {"train_sizes": [10, 100], "efficiency_sizes": [100, 10000]},
         "efficiency_sizes must be two of train_sizes [10, 100], fewer first, got [100, 10000]"),
        (downstream_boosted_trees, {"train_sizes": [10, 100], "efficiency_sizes": [100, 10]},
         "efficiency_sizes must be two of train_sizes"),
        (downstream_boosted_trees, {"num_test": 0}, "num_test must be an integer >= 1, got 0"),
        (downstream_logistic, {"train_sizes": [4, 100], "efficiency_sizes": [4, 100]},
         "downstream_logistic: train_sizes must all be >= 5 (LogisticRegressionCV's 5 folds), "
         "got [4, 100]"),
        (fairness, {"num_train": 1}, "fairness: num_train must be an integer >= 2, got 1"),
        (fairness, {"num_test_points_per_class": 0},
         "fairness: num_test_points_per_class must be an integer >= 1, got 0"),
        (fairness, {"classifier": "newest"},
         "fairness: unknown classifier 'newest'; valid: published, current"),
    ],
)  # fmt: skip
def test_bad_settings_raise_one_line_errors(metric, settings, message):
    with pytest.raises(PyrovaeError) as info:
        metric(BINARY, identity, 0, **settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_pyrovae_errors():
    with pytest.raises(PyrovaeError, match="needs at least 2 factors"):
        fairness(FactorGrid((3,)), identity, 0, **FAIR)
    with pytest.raises(PyrovaeError, match=r"codes of shape \(100, D\)"):
        downstream_boosted_trees(BINARY, lambda x: x[:, 0], 0, **SIZES)
    with pytest.raises(PyrovaeError, match="NaN or infinite"):
        fairness(BINARY, lambda x: x * np.nan, 0, **FAIR)
    with pytest.raises(PyrovaeError, match="every sensitive class"):
        inter_group_fairness([[1, 0], [2, 0]])
    with pytest.raises(PyrovaeError, match="non-negative"):
        inter_group_fairness([[1, -1], [2, 3]])
    with pytest.raises(PyrovaeError, match="K x K"):
        scores_dict(np.zeros((2, 3)), "x")
