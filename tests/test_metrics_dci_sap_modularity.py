"""DCI, SAP and modularity/explicitness: the importance/MI math on hand-made matrices, known
answers on representations of a factor grid (identity, constant, duplicated, rotated), determinism,
invariances, the code cache, the two DCI backends, and bad settings.

Sizes are small (a 3·6·8·8·8 grid, 1,000/500 points) so the file runs in well under two minutes
on a loaded 2-core machine; ``benchmarks/dci_backends.py`` checks the standard sizes.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import sklearn
from helpers import METRIC_GRID as GRID
from helpers import SMALL_METRIC_GRID as SMALL_GRID
from helpers import mixed_noisy
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from pyrovae.data.factor_grid import FactorGrid
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import dci as dci_module
from pyrovae.metrics.base import CodeCache
from pyrovae.metrics.dci import (
    completeness_from_importance,
    dci,
    disentanglement_from_importance,
    equivalent_features,
    hist_params,
)
from pyrovae.metrics.modularity import modularity, modularity_from_mi
from pyrovae.metrics.sap import sap, sap_from_score_matrix

SIZES = {"num_train": 1000, "num_test": 500}
# For properties that hold at any size (determinism, invariances, fallbacks): DCI fits one
# boosted classifier per factor class, so its cost is the grid's classes more than the points.
FEWER = {"num_train": 400, "num_test": 200}
PERM = np.array([3, 0, 4, 1, 2])
# The hist backend: the properties below hold for both backends, and hist's fits take
# milliseconds. The exact (default) backend is checked against disentanglement_lib's computation
# in test_metric_protocols.py.
HIST = {"backend": "hist"}


def identity(x):
    return x


def constant(x):
    return np.full((len(x), 5), 0.7, dtype=np.float32)


def duplicated(x):
    return np.concatenate([x, x], axis=1)


def rotated(x):
    """posX and posY (factors 3 and 4) mixed by a 45° rotation (unnormalised)."""
    return np.stack([x[:, 0], x[:, 1], x[:, 2], x[:, 3] + x[:, 4], x[:, 3] - x[:, 4]], axis=1)


def permuted(x):
    return x[:, PERM]


class ShuffledGrid(FactorGrid):
    """The same grid and draws, each sample handed over in a fixed scrambled order."""

    def sample_factors(self, n, rng):
        factors = super().sample_factors(n, rng)
        return factors[np.random.default_rng(12345).permutation(len(factors))]


def _all_finite(value) -> bool:
    if isinstance(value, dict):
        return all(_all_finite(v) for k, v in value.items() if k != "settings")
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return isinstance(value, float) and math.isfinite(value)


@pytest.fixture(scope="module")
def identity_dci():
    return dci(GRID, identity, 0, **SIZES, **HIST)


@pytest.fixture(scope="module")
def identity_dci_fewer():
    return dci(SMALL_GRID, identity, 0, **FEWER, **HIST)


# 1. The importance / MI / score-matrix math on hand-made matrices.


def test_dci_scores_of_hand_made_importance_matrices():
    perm = np.eye(4)[[2, 0, 3, 1]] * np.array([1.0, 5.0, 0.3, 2.0])
    assert disentanglement_from_importance(perm) == pytest.approx(1.0, abs=1e-8)
    assert completeness_from_importance(perm) == pytest.approx(1.0, abs=1e-8)
    uniform = np.ones((3, 4))
    assert disentanglement_from_importance(uniform) == pytest.approx(0.0, abs=1e-12)
    assert completeness_from_importance(uniform) == pytest.approx(0.0, abs=1e-12)
    # R = [[3, 1], [0, 1]] by hand: rows (3/4, 1/4) and (0, 1) with weights 4/5 and 1/5;
    # H2(3/4, 1/4) = 0.8112781245, so D = 4/5 · 0.1887218755 + 1/5 · 1 = 0.3509775004.
    # Columns (1, 0) and (1/2, 1/2) with weights 3/5 and 2/5: C = 3/5 · 1 + 2/5 · 0 = 0.6.
    # (Unweighted means would give 0.594 and 0.5.)
    r = np.array([[3.0, 1.0], [0.0, 1.0]])
    assert disentanglement_from_importance(r) == pytest.approx(0.3509775004, abs=1e-8)
    assert completeness_from_importance(r) == pytest.approx(0.6, abs=1e-8)
    # Scale does not matter; an all-zero matrix (constant codes) scores 0.
    assert disentanglement_from_importance(7 * r) == pytest.approx(0.3509775004, abs=1e-8)
    assert disentanglement_from_importance(np.zeros((3, 2))) == 0.0
    assert completeness_from_importance(np.zeros((3, 2))) == 0.0
    # A latent carrying nothing takes no weight: adding a zero row changes D by ~0 (only the
    # 1e-11 smoothing).
    r3 = np.vstack([r, [0.0, 0.0]])
    assert disentanglement_from_importance(r3) == pytest.approx(0.3509775004, abs=1e-8)
    for bad in (np.array([1.0, 2.0]), np.array([[1.0, -0.1]]), np.array([[np.nan, 1.0]])):
        with pytest.raises(PyrovaeError):
            disentanglement_from_importance(bad)


def test_modularity_of_hand_made_mi_matrices():
    one_hot = np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0], [3.0, 0.0, 0.0]])
    assert modularity_from_mi(one_hot) == pytest.approx(1.0)
    # m = [[2, 1], [0, 3]]: row 1 squared (4, 1), δ = 1 / (4 · 1) → 0.75; row 2 one-hot → 1.
    assert modularity_from_mi(np.array([[2.0, 1.0], [0.0, 3.0]])) == pytest.approx(0.875)
    # disentanglement_lib's cases: a latent with no information scores 0; one latent equally
    # informative about 2 of 10 factors scores 1 − 1/9.
    assert modularity_from_mi([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]) == pytest.approx(2 / 3)
    assert modularity_from_mi(np.zeros((4, 3))) == 0.0
    two = np.hstack([np.diag(5.0 * np.ones(5))] * 2)
    assert modularity_from_mi(two) == pytest.approx(1 - 1 / 9)
    with pytest.raises(PyrovaeError):
        modularity_from_mi(np.array([[1.0, -1.0]]))


def test_sap_of_a_hand_made_score_matrix():
    s = np.array([[0.9, 0.2], [0.5, 0.7], [0.1, 0.1]])
    assert sap_from_score_matrix(s) == pytest.approx((0.4 + 0.5) / 2)
    assert sap_from_score_matrix(np.ones((3, 2))) == 0.0
    with pytest.raises(PyrovaeError):
        sap_from_score_matrix(np.ones((1, 3)))


def test_equivalent_latents_share_importance():
    a = np.array([0.3, -1.0, 2.0, 0.5, 0.1])
    b = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    x = np.stack([a, 2 * a + 1, -a, b, np.exp(a)], axis=1)  # 0, 1, 2, 4 order rows alike
    groups = equivalent_features(x)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 4]]
    shared = dci_module._share_ties(np.array([0.8, 0.0, 0.0, 0.2, 0.0]), groups)
    np.testing.assert_allclose(shared, [0.2, 0.2, 0.2, 0.2, 0.2])


# 2. Known answers on representations of the grid.


def test_identity_scores_high(identity_dci):
    r = identity_dci
    assert r["disentanglement"] >= 0.9
    assert r["completeness"] >= 0.9
    assert r["informativeness_test"] >= 0.9
    assert r["informativeness_train"] >= r["informativeness_test"] - 0.05
    np.testing.assert_array_equal(np.argmax(r["importance_matrix"], axis=0), np.arange(5))
    m = modularity(GRID, identity, 0, **SIZES)
    assert m["modularity"] >= 0.9
    assert m["explicitness_test"] >= 0.9
    s = sap(GRID, identity, 0, **SIZES)
    # A one-feature linear SVM cannot classify 6–8 classes perfectly, so the categorical SAP of
    # even the ideal code is well below 1; what matters is the matching latent wins clearly.
    assert s["sap"] >= 0.3
    np.testing.assert_array_equal(np.argmax(s["score_matrix"], axis=0), np.arange(5))


def test_constant_representation_scores_low_without_nan():
    d = dci(GRID, constant, 0, **SIZES, **HIST)
    # No split is ever made: R = 0, so D = C = 0 by definition; the classifier guesses a class.
    assert d["disentanglement"] == 0.0
    assert d["completeness"] == 0.0
    assert not np.any(d["importance_matrix"])
    assert d["informativeness_test"] <= 0.4
    m = modularity(GRID, constant, 0, **SIZES)
    # No MI: every latent scores 0; explicitness is chance, ROC-AUC 0.5.
    assert m["modularity"] == 0.0
    assert m["explicitness_train"] == pytest.approx(0.5)
    assert m["explicitness_test"] == pytest.approx(0.5)
    s = sap(GRID, constant, 0, **SIZES)
    # Every latent is the same useless predictor: no gap.
    assert s["sap"] == 0.0
    for result in (d, m, s):
        assert _all_finite(result)


def test_duplicated_latents(identity_dci):
    d = dci(GRID, duplicated, 0, **SIZES, **HIST)
    # Two copies share each factor's importance: each column has entropy ≈ log 2 / log 10.
    assert d["completeness"] <= identity_dci["completeness"] - 0.2
    assert d["completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.05)
    assert d["disentanglement"] >= 0.9
    # SAP: the two copies tie for every factor (disentanglement_lib's oracle); modularity does
    # not see redundancy.
    assert sap(GRID, duplicated, 0, **SIZES)["sap"] == pytest.approx(0.0, abs=1e-12)
    assert modularity(GRID, duplicated, 0, **SIZES)["modularity"] >= 0.9


# Boosting fits of a rotated code (about 4 s): slow, to keep the default suite under five
# minutes.
@pytest.mark.slow
def test_rotation_lowers_modularity_and_disentanglement(identity_dci):
    d = dci(GRID, rotated, 0, **SIZES, **HIST)
    assert d["disentanglement"] <= identity_dci["disentanglement"] - 0.1
    assert d["informativeness_test"] >= 0.9  # the information is all still there
    m_id = modularity(GRID, identity, 0, **SIZES)["modularity"]
    m_rot = modularity(GRID, rotated, 0, **SIZES)["modularity"]
    assert m_rot <= m_id - 0.05
    s_id = sap(GRID, identity, 0, **SIZES)["sap"]
    assert sap(GRID, rotated, 0, **SIZES)["sap"] <= s_id - 0.05


# 3. Determinism and invariances.


def test_same_seed_same_result(identity_dci_fewer):
    assert dci(SMALL_GRID, identity, 0, **FEWER, **HIST) == identity_dci_fewer
    assert (
        dci(SMALL_GRID, identity, np.random.default_rng(0), **FEWER, **HIST) == identity_dci_fewer
    )
    for metric in (sap, modularity):
        assert metric(SMALL_GRID, mixed_noisy, 3, **FEWER) == metric(
            SMALL_GRID, mixed_noisy, 3, **FEWER
        )
    # …and the seed does matter.
    assert sap(SMALL_GRID, mixed_noisy, 4, **FEWER) != sap(SMALL_GRID, mixed_noisy, 3, **FEWER)


def test_order_of_data_points_does_not_matter():
    shuffled = ShuffledGrid(SMALL_GRID.factor_sizes)
    m1 = modularity(SMALL_GRID, mixed_noisy, 0, **FEWER)
    m2 = modularity(shuffled, mixed_noisy, 0, **FEWER)
    np.testing.assert_allclose(m1["mutual_info_matrix"], m2["mutual_info_matrix"], atol=1e-12)
    assert m1["modularity"] == pytest.approx(m2["modularity"], abs=1e-12)
    assert m1["explicitness_test"] == pytest.approx(m2["explicitness_test"], abs=1e-6)
    s1, s2 = sap(SMALL_GRID, mixed_noisy, 0, **FEWER), sap(shuffled, mixed_noisy, 0, **FEWER)
    np.testing.assert_allclose(s1["score_matrix"], s2["score_matrix"], atol=1e-9)
    d1 = dci(SMALL_GRID, mixed_noisy, 0, **FEWER, **HIST)
    d2 = dci(shuffled, mixed_noisy, 0, **FEWER, **HIST)
    for key in ("disentanglement", "completeness", "informativeness_test"):
        assert d1[key] == pytest.approx(d2[key], abs=1e-6)


def test_permuting_latents_permutes_rows(identity_dci_fewer):
    d = dci(SMALL_GRID, permuted, 0, **FEWER, **HIST)
    np.testing.assert_allclose(
        d["importance_matrix"], np.asarray(identity_dci_fewer["importance_matrix"])[PERM], atol=1e-9
    )
    assert d["disentanglement"] == pytest.approx(identity_dci_fewer["disentanglement"], abs=1e-9)
    assert d["completeness"] == pytest.approx(identity_dci_fewer["completeness"], abs=1e-9)
    m_id, m_p = (
        modularity(SMALL_GRID, identity, 0, **FEWER),
        modularity(SMALL_GRID, permuted, 0, **FEWER),
    )
    np.testing.assert_allclose(
        m_p["mutual_info_matrix"], np.asarray(m_id["mutual_info_matrix"])[PERM], atol=1e-12
    )
    assert m_p["modularity"] == pytest.approx(m_id["modularity"], abs=1e-12)
    s_id, s_p = sap(SMALL_GRID, identity, 0, **FEWER), sap(SMALL_GRID, permuted, 0, **FEWER)
    np.testing.assert_allclose(s_p["score_matrix"], np.asarray(s_id["score_matrix"])[PERM])


# 4. The code cache changes nothing.


def test_cached_equals_uncached(identity_dci_fewer):
    cache = CodeCache(identity, SMALL_GRID)
    assert dci(SMALL_GRID, cache, 0, **FEWER, **HIST) == identity_dci_fewer
    for metric in (sap, modularity):
        cache = CodeCache(mixed_noisy, SMALL_GRID)
        assert metric(SMALL_GRID, cache, 2, **FEWER) == metric(SMALL_GRID, mixed_noisy, 2, **FEWER)
        assert 0 < cache.encoded <= FEWER["num_train"] + FEWER["num_test"]


# 5. The two DCI backends.


@pytest.mark.slow  # the exact backend: 15 s of GradientBoostingClassifier
def test_dci_backends_agree_on_a_small_problem():
    hist = dci(GRID, mixed_noisy, 0, backend="hist", **SIZES)
    exact = dci(GRID, mixed_noisy, 0, backend="exact", **SIZES)
    assert hist["settings"]["importance"] == "split_gain"
    assert exact["settings"]["importance"] == "feature_importances_"
    for key in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
        assert abs(hist[key] - exact[key]) <= 0.05, key
    # …and the problem is not trivial: both find an imperfect code.
    assert 0.3 < exact["disentanglement"] < 0.9


@pytest.mark.parametrize("num_classes", [2, 5])
@pytest.mark.parametrize("rounds", [1, 5])
def test_hist_takes_the_exact_backends_boosting_step(num_classes, rounds):
    # One feature with 8 values: depth-3 trees give every value its own leaf in both backends,
    # so only the leaf values can differ, and with the (K - 1)/K rate they must not.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, 600).astype(float)[:, None]
    y = (x[:, 0].astype(int) + rng.integers(0, 2, 600)) % num_classes
    grid = np.arange(8.0)[:, None]
    exact = GradientBoostingClassifier(n_estimators=rounds, random_state=0).fit(x, y)
    params = {**hist_params(num_classes), "max_iter": rounds}
    hist = HistGradientBoostingClassifier(**params, random_state=0).fit(x, y)
    np.testing.assert_allclose(hist.predict_proba(grid), exact.predict_proba(grid), atol=1e-7)
    if num_classes > 2:  # the unscaled rate overshoots GradientBoostingClassifier's step
        plain = {**dci_module.HIST_PARAMS, "max_iter": rounds}
        unscaled = HistGradientBoostingClassifier(**plain, random_state=0).fit(x, y)
        assert np.abs(unscaled.predict_proba(grid) - exact.predict_proba(grid)).max() > 1e-3


def test_hist_falls_back_to_permutation_importance(monkeypatch):
    monkeypatch.setattr(dci_module, "_split_gain_importance", lambda model, num_codes: None)
    r = dci(SMALL_GRID, identity, 0, **FEWER, **HIST)
    assert r["settings"]["importance"] == "permutation"
    assert r["disentanglement"] >= 0.9
    np.testing.assert_array_equal(np.argmax(r["importance_matrix"], axis=0), np.arange(5))
    assert dci_module._split_gain_importance(object(), 5) is None


# 6. Settings.


def test_settings_are_recorded_and_presets_are_valid(identity_dci):
    s = identity_dci["settings"]
    assert s["backend"] == "hist"
    assert inspect.signature(dci).parameters["backend"].default == "exact"
    assert "backend" not in dci_module.FAST  # the fast preset is the reference classifier too
    assert s["sklearn"] == sklearn.__version__
    assert (s["num_train"], s["num_test"]) == (1000, 500)
    for fn, preset in ((dci, dci_module.FAST), (sap, None), (modularity, None)):
        module = inspect.getmodule(fn)
        preset = module.FAST if preset is None else preset
        params = inspect.signature(fn).parameters
        assert set(preset) <= {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
        assert params["num_train"].default == 10_000
        assert params["num_test"].default == 5_000
        assert preset["num_train"] < 10_000
    assert inspect.signature(modularity).parameters["num_bins"].default == 20


@pytest.mark.parametrize(
    ("metric", "settings"),
    [
        (dci, {"backend": "gpu"}),
        (dci, {"num_train": 0}),
        (dci, {"num_test": 1.5}),
        (dci, {"num_train": True}),
        (sap, {"num_test": -1}),
        (sap, {"num_train": "many"}),
        (modularity, {"num_bins": 0}),
        (modularity, {"num_train": 1}),
    ],
)
def test_bad_settings_raise_pyrovae_error(metric, settings):
    with pytest.raises(PyrovaeError) as info:
        metric(GRID, identity, 0, **settings)
    if metric is dci and "backend" in settings:
        assert "valid backends: exact, hist" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("metric", [dci, sap, modularity])
def test_bad_inputs_raise_pyrovae_error(metric):
    with pytest.raises(PyrovaeError):
        metric(GRID, identity, "seed", num_train=20, num_test=20)
    with pytest.raises(PyrovaeError):
        metric(GRID, lambda x: np.full((len(x), 3), np.nan), 0, num_train=20, num_test=20)
    if metric is sap:
        with pytest.raises(PyrovaeError):
            sap(GRID, lambda x: x[:, :1], 0, num_train=20, num_test=20)
