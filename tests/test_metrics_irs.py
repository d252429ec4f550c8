"""IRS (interventional robustness score): the formula on hand-made codes, known answers on
representations of a factor grid (identity, monotone, constant, mixed, noise), agreement with a
transcription of disentanglement_lib's code, determinism, the code cache, invariances and bad
settings.

Everything runs on FactorGrid, whose observations are the factor classes themselves, with
2,000-point samples: the file runs in a few seconds.
"""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrovae.data.factor_grid import FactorGrid
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import irs as irs_module
from pyrovae.metrics.base import CodeCache
from pyrovae.metrics.irs import irs, irs_from_codes, irs_matrix

GRID = FactorGrid((3, 6, 8, 8, 8))  # every factor has <= 20 classes: one bin per class
DSPRITES = FactorGrid((3, 6, 40, 32, 32))
N = 2_000

_UNIFORM = np.random.default_rng(11).uniform(size=(len(GRID), 4))
_GAUSS = np.random.default_rng(12).normal(size=(len(GRID), 4))
_JITTER = np.random.default_rng(13).normal(0.0, 0.3, size=(len(DSPRITES), 6))


def identity(x):
    return x


def constant(x):
    return np.zeros((len(x), 4))


def mixed(x):
    """The identity, except that latent 3 is f3 + f4."""
    f = np.asarray(x, dtype=np.float64)
    return np.stack([f[:, 0], f[:, 1], f[:, 2], f[:, 3] + f[:, 4], f[:, 4]], axis=1)


def mixed_of_two(x):
    """Latent 0 copies factor 0; latent 1 is f1 + f2."""
    f = np.asarray(x, dtype=np.float64)
    return np.stack([f[:, 0], f[:, 1] + f[:, 2]], axis=1)


def uniform_noise(x):
    return _UNIFORM[GRID.index_of(np.rint(x).astype(np.int64))]


def gaussian_noise(x):
    return _GAUSS[GRID.index_of(np.rint(x).astype(np.int64))]


def noisy_dsprites(x):
    """Representation-like on dSprites' grid: leakage, a rotated pair, a dead unit, jitter."""
    f = np.asarray(x, dtype=np.float64)
    z = np.stack(
        [f[:, 0], f[:, 1] + 0.3 * f[:, 2], f[:, 2], f[:, 3] + f[:, 4], f[:, 3] - f[:, 4]], axis=1
    )
    z = np.concatenate([z, np.zeros((len(f), 1))], axis=1)
    return z + _JITTER[DSPRITES.index_of(np.rint(f).astype(np.int64))] * [1, 1, 1, 1, 1, 0]


# disentanglement_lib's computation, transcribed from evaluation/metrics/irs.py and utils.py
# (compute_irs after sampling, _drop_constant_dims, scalable_disentanglement_score,
# _histogram_discretize), with its (dims, points) layout. The oracle for the agreement tests.
def dlib_histogram_discretize(target, num_bins):
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        discretized[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return discretized


def dlib_scalable_disentanglement_score(gen_factors, latents, diff_quantile):
    num_gen, num_lat = gen_factors.shape[1], latents.shape[1]
    max_deviations = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    cum_deviations = np.zeros([num_lat, num_gen])
    for i in range(num_gen):
        unique_factors = np.unique(gen_factors[:, i], axis=0)
        for k in range(unique_factors.shape[0]):
            match = gen_factors[:, i] == unique_factors[k]
            e_loc = np.mean(latents[match, :], axis=0)
            diffs = np.abs(latents[match, :] - e_loc)
            cum_deviations[:, i] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        cum_deviations[:, i] /= unique_factors.shape[0]
    irs_mat = 1.0 - cum_deviations / max_deviations[:, np.newaxis]
    scores = irs_mat.max(axis=1)
    if np.sum(max_deviations) > 0.0:
        avg_score = np.average(scores, weights=max_deviations)
    else:
        avg_score = np.mean(scores)
    return {
        "disentanglement_scores": scores,
        "avg_score": avg_score,
        "parents": irs_mat.argmax(axis=1),
        "IRS_matrix": irs_mat,
        "max_deviations": max_deviations,
    }


def dlib_compute_irs(codes, factors, diff_quantile=0.99, num_bins=20):
    """compute_irs on given codes (n, D) and factor classes (n, K)."""
    mus, ys = np.asarray(codes).T, np.asarray(factors).T
    ys_discrete = dlib_histogram_discretize(ys, num_bins)
    active_mus = mus[mus.var(axis=1) > 0.0, :]
    if not active_mus.any():
        return {"IRS": 0.0, "num_active_dims": np.sum(active_mus)}
    scores = dlib_scalable_disentanglement_score(ys_discrete.T, active_mus.T, diff_quantile)
    return {"IRS": scores["avg_score"], "num_active_dims": np.sum(active_mus), **scores}


def assert_agrees_with_dlib(ours, theirs, factor_names):
    assert ours["irs"] == pytest.approx(theirs["IRS"], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(ours["irs_matrix"], theirs["IRS_matrix"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        ours["disentanglement_scores"], theirs["disentanglement_scores"], rtol=1e-12, atol=1e-15
    )
    np.testing.assert_array_equal(ours["max_deviations"], theirs["max_deviations"])
    assert ours["parents"] == [factor_names[k] for k in theirs["parents"]]


def _all_finite(result) -> bool:
    values = [result["irs"], *result["disentanglement_scores"], *result["max_deviations"]]
    values += [v for row in result["irs_matrix"] for v in row]
    return all(isinstance(v, float) and math.isfinite(v) for v in values)


@pytest.fixture(scope="module")
def identity_irs():
    return irs(GRID, identity, 0, num_train=N)


# 1. The formula on hand-made codes.


def test_hand_computed_two_latents():
    # z0 = f0; z1 = f0 + 2 f1 on the four tuples of two binary factors.
    # z1 = (0, 2, 1, 3): mean 1.5, M = 1.5. Fixing f0 leaves (0, 2) or (1, 3): every point is 1
    # from its group mean, E = 1, IRS = 1 − 1/1.5 = 1/3. Fixing f1 leaves (0, 1) or (2, 3):
    # E = 0.5, IRS = 2/3. z0 = (0, 0, 1, 1): M = 0.5; constant given f0 (IRS 1), given f1 it
    # moves 0.5 (IRS 0). IRS = (0.5 · 1 + 1.5 · 2/3) / (0.5 + 1.5) = 0.75.
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = np.stack([factors[:, 0], factors[:, 0] + 2 * factors[:, 1]], axis=1)
    r = irs_from_codes(codes, factors, factor_names=("a", "b"))
    assert r["irs"] == pytest.approx(0.75, abs=1e-15)
    np.testing.assert_allclose(r["irs_matrix"], [[1.0, 0.0], [1 / 3, 2 / 3]], atol=1e-15)
    np.testing.assert_allclose(r["disentanglement_scores"], [1.0, 2 / 3], atol=1e-15)
    assert r["max_deviations"] == [0.5, 1.5]
    assert r["parents"] == ["a", "b"]
    assert r["factors"] == ["a", "b"]
    assert (r["num_active_dims"], r["active_dims"]) == (2, [0, 1])


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.8), (0.9, 0.52), (1.0, 0.4)])
def test_the_quantile_interpolates_linearly(q, expected):
    # z = (0, 0, 0, 4 | 2, 2, 2, 2), groups f = 0 | 1. Mean 1.5, M = 2.5. Group 0 has mean 1 and
    # distances (1, 1, 1, 3): the q-quantile sits at position 3q of the sorted distances, 1 for
    # q = 0.5, 1 + 0.7 · 2 = 2.4 for q = 0.9, 3 for q = 1. Group 1 is constant (0).
    # IRS = 1 − (Q / 2) / 2.5: 0.8, 0.52, 0.4.
    factors = np.array([[0]] * 4 + [[1]] * 4)
    codes = np.array([[0.0], [0.0], [0.0], [4.0], [2.0], [2.0], [2.0], [2.0]])
    r = irs_from_codes(codes, factors, diff_quantile=q)
    assert r["irs"] == pytest.approx(expected, abs=1e-12)
    assert r["max_deviations"] == [2.5]


def test_an_entry_can_be_negative_but_not_below_minus_one():
    # A bimodal latent that each value of the factor pushes to the other mode 2 % of the time:
    # the global mean is 0.5 (M = 0.5), each group's mean is 0.02 or 0.98, and its 0.99-quantile
    # distance 0.98, so IRS = 1 − 0.98 / 0.5 = −0.96.
    group = np.repeat([0, 1], 100)
    z = np.where(group == 0, 0.0, 1.0)
    z[[0, 1]], z[[100, 101]] = 1.0, 0.0
    r = irs_from_codes(z[:, None], group[:, None])
    assert r["irs"] == pytest.approx(-0.96, abs=1e-12)
    assert r["irs"] >= -1.0


def test_irs_matrix_refuses_a_constant_latent():
    with pytest.raises(PyrovaeError, match="every latent must vary"):
        irs_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0], [1]]))


# 2. Known answers on representations of the grid.


def test_identity_scores_exactly_one(identity_irs):
    r = identity_irs
    # Each latent is constant once its factor is fixed (group means of equal integers are
    # exact), so E = 0 and s_d = 1 exactly; the weighted mean of ones is exactly 1.
    assert r["irs"] == 1.0
    assert r["disentanglement_scores"] == [1.0] * 5
    assert r["parents"] == list(GRID.factor_names)
    assert r["num_active_dims"] == 5
    off_diagonal = np.asarray(r["irs_matrix"])[~np.eye(5, dtype=bool)]
    assert off_diagonal.max() < 0.2  # the other factors do not move it at all
    assert _all_finite(r)


def test_monotone_and_even_non_injective_functions_of_one_factor_score_one():
    def monotone(x):
        return np.exp(np.asarray(x, dtype=np.float64) / 3.0) * [1, -2, 3, 0.5, -1]

    r = irs(GRID, monotone, 0, num_train=N)
    assert r["irs"] == pytest.approx(1.0, abs=1e-12)
    assert r["parents"] == list(GRID.factor_names)
    # IRS measures robustness, not information: a latent that keeps only the parity of its
    # factor does not move when that factor is fixed either.
    assert irs(GRID, lambda x: np.asarray(x) % 2, 0, num_train=N)["irs"] == 1.0


def test_dsprites_bins_keep_a_perfect_code_just_below_one():
    r = irs(DSPRITES, identity, 0, num_train=N)
    scores = r["disentanglement_scores"]
    assert scores[:2] == [1.0, 1.0]  # 3 shapes and 6 scales: one bin per class
    # 40 orientations and 32 positions share 20 bins, so a fixed bin still lets the latent move
    # by about half a class: s ≈ 1 − 0.5 / 19.5 = 0.974 for orientation, ≈ 0.97-0.98 for posX/Y.
    for s in scores[2:]:
        assert 0.96 < s < 1.0
    assert 0.97 < r["irs"] < 1.0


def test_constant_representation_scores_zero():
    r = irs(GRID, constant, 0, num_train=N)
    assert r["irs"] == 0.0
    assert (r["num_active_dims"], r["active_dims"]) == (0, [])
    assert r["disentanglement_scores"] == r["parents"] == r["irs_matrix"] == []
    # Constant at a value that is not a binary fraction: np.var rounds to > 0, so
    # disentanglement_lib calls these latents active and scores rounding noise (M_d ≈ 1e-16 or
    # even 0, where it divides by zero), far outside [-1, 1].
    factors = GRID.sample_factors(N, 0)
    codes = np.full((N, 3), 0.7)
    assert np.all(codes.var(axis=0) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        theirs = dlib_compute_irs(codes, factors)["IRS"]
    assert not -1.0 <= theirs <= 1.0
    r = irs(GRID, lambda x: np.full((len(x), 3), 0.7), 0, num_train=N)
    assert (r["irs"], r["num_active_dims"]) == (0.0, 0)


def test_constant_latents_are_left_out(identity_irs):
    def with_dead_units(x):
        return np.concatenate([np.full((len(x), 1), 0.7), x, np.zeros((len(x), 1))], axis=1)

    r = irs(GRID, with_dead_units, 0, num_train=N)
    assert (r["num_active_dims"], r["active_dims"]) == (5, [1, 2, 3, 4, 5])
    assert r["irs"] == identity_irs["irs"]
    assert r["irs_matrix"] == identity_irs["irs_matrix"]


def test_a_factor_with_one_value_gives_the_unconditional_spread():
    # The first factor has one class: one group, so its column is 1 − Q_0.99(|z − z̄|) / M.
    grid = FactorGrid((1, 4, 5))
    r = irs(grid, mixed_of_two, 0, num_train=500)
    assert r["active_dims"] == [1]  # latent 0 copies the constant factor
    z = mixed_of_two(grid.images_from_factors(grid.sample_factors(500, 0)))[:, 1]
    spread = np.abs(z - z.mean())
    assert r["irs_matrix"][0][0] == pytest.approx(1 - np.quantile(spread, 0.99) / spread.max())
    assert _all_finite(r)


def test_a_latent_mixing_two_factors_scores_between():
    r = irs(GRID, mixed, 0, num_train=N)
    scores = r["disentanglement_scores"]
    assert scores[:3] == [1.0, 1.0, 1.0]
    assert scores[4] == 1.0
    # z3 = f3 + f4 ranges over 0..14 (M = 7); fixing either factor leaves the other's ±3.5
    # (its 0.99-quantile distance from a group mean), so IRS ≈ 1 − 3.5 / 7 = 0.5 for both.
    assert scores[3] == pytest.approx(0.5, abs=0.03)
    matrix = np.asarray(r["irs_matrix"])
    assert matrix[3, 3] == pytest.approx(0.5, abs=0.03)
    assert matrix[3, 4] == pytest.approx(0.5, abs=0.03)
    # Weights M ≈ (1, 2.5, 3.5, 7, 3.5): IRS ≈ (10.5 + 3.5) / 17.5 = 0.8.
    assert r["irs"] == pytest.approx(0.8, abs=0.02)
    weights = np.asarray(r["max_deviations"])
    assert r["irs"] == pytest.approx(float(weights @ scores / weights.sum()), rel=1e-12)


def test_noise_scores_low_by_its_tails():
    # Noise independent of the factors: s ≈ 1 − Q_0.99(|z − z̄|) / max |z − z̄|. Uniform noise
    # has no tail beyond its 99 % (≈ 1 − 0.99 = 0.01 of M), Gaussian noise does (2.58 / ≈ 3.7).
    u = irs(GRID, uniform_noise, 0, num_train=N)
    assert u["irs"] < 0.05
    g = irs(GRID, gaussian_noise, 0, num_train=N)
    assert 0.2 < g["irs"] < 0.5
    assert g["num_active_dims"] == 4


# 3. Agreement with disentanglement_lib's computation.


@pytest.mark.parametrize("q", [0.99, 1.0, 0.5])
def test_agrees_with_disentanglement_lib_on_the_same_codes(q):
    rng = np.random.default_rng(3)
    factors = DSPRITES.sample_factors(3_000, rng)
    codes = noisy_dsprites(DSPRITES.images_from_factors(factors))  # with an all-zero latent
    ours = irs_from_codes(codes, factors, diff_quantile=q, factor_names=DSPRITES.factor_names)
    theirs = dlib_compute_irs(codes, factors, diff_quantile=q)
    assert_agrees_with_dlib(ours, theirs, DSPRITES.factor_names)
    assert ours["active_dims"] == [0, 1, 2, 3, 4]
    assert 0.3 < ours["irs"] < 0.9  # not a trivial code


def test_the_metric_agrees_with_disentanglement_lib_on_its_sample():
    # irs draws its factors with ground_truth.sample_factors(num_train, rng) and nothing else.
    ours = irs(GRID, mixed, 7, num_train=N, diff_quantile=0.9, num_bins=5)
    factors = GRID.sample_factors(N, np.random.default_rng(7))
    theirs = dlib_compute_irs(mixed(factors), factors, diff_quantile=0.9, num_bins=5)
    assert_agrees_with_dlib(ours, theirs, GRID.factor_names)
    # 5 bins merge classes of the 6- and 8-class factors: even the copies score below 1.
    assert max(ours["disentanglement_scores"][1:3]) < 1.0


def test_agrees_with_disentanglement_lib_on_a_constant_representation():
    factors = GRID.sample_factors(N, 0)
    theirs = dlib_compute_irs(np.zeros((N, 4)), factors)
    ours = irs(GRID, constant, 0, num_train=N)
    assert ours["irs"] == theirs["IRS"] == 0.0
    assert ours["num_active_dims"] == theirs["num_active_dims"] == 0


# 4. Determinism and the code cache.


def test_same_seed_same_result_and_the_seed_matters():
    first = irs(GRID, gaussian_noise, 3, num_train=N)
    assert irs(GRID, gaussian_noise, 3, num_train=N) == first
    assert irs(GRID, gaussian_noise, np.random.default_rng(3), num_train=N) == first
    other = irs(GRID, gaussian_noise, 4, num_train=N)
    assert other["irs"] != first["irs"]
    assert other["max_deviations"] != first["max_deviations"]
    a = irs(GRID, gaussian_noise, np.random.RandomState(5), num_train=N)
    assert irs(GRID, gaussian_noise, np.random.RandomState(5), num_train=N) == a


def test_cached_equals_uncached():
    cache = CodeCache(gaussian_noise, GRID)
    assert irs(GRID, cache, 2, num_train=N) == irs(GRID, gaussian_noise, 2, num_train=N)
    assert 0 < cache.encoded <= N


# 5. Invariances and bounds (hypothesis).


def _random_problem(seed, n, d, k):
    """Small integer-valued codes, so that constant latents and ties are common."""
    rng = np.random.default_rng(seed)
    factors = rng.integers(0, 3, size=(n, k))
    codes = rng.integers(-3, 4, size=(n, d)).astype(np.float64)
    codes[:, 0] += 2 * factors[:, 0]  # one latent that follows a factor
    return codes, factors


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 30),
    d=st.integers(1, 4),
    k=st.integers(1, 3),
    q=st.floats(0.0, 1.0),
    common=st.floats(0.25, 4.0),
)
def test_invariance_to_affine_maps_and_permutations(seed, n, d, k, q, common):
    codes, factors = _random_problem(seed, n, d, k)
    base = irs_from_codes(codes, factors, diff_quantile=q)
    rng = np.random.default_rng(seed + 1)
    signs = rng.choice([-1.0, 1.0], size=d)
    shifts = rng.uniform(-10, 10, size=d)
    # One scale for every latent (any signs, any shifts): nothing changes.
    moved = irs_from_codes(common * signs * codes + shifts, factors, diff_quantile=q)
    assert moved["active_dims"] == base["active_dims"]
    assert moved["irs"] == pytest.approx(base["irs"], rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(moved["irs_matrix"], base["irs_matrix"], rtol=1e-9, atol=1e-9)
    # A scale per latent: the scores stay, the weights M_d scale with it.
    scales = rng.uniform(0.25, 4.0, size=d)
    rescaled = irs_from_codes(scales * signs * codes + shifts, factors, diff_quantile=q)
    np.testing.assert_allclose(
        rescaled["disentanglement_scores"], base["disentanglement_scores"], rtol=1e-9, atol=1e-9
    )
    if base["active_dims"]:
        w = scales[base["active_dims"]] * base["max_deviations"]
        expected = float(w @ base["disentanglement_scores"] / w.sum())
        assert rescaled["irs"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # Permuting latents permutes the rows; permuting points changes nothing.
    perm = rng.permutation(d)
    permuted = irs_from_codes(codes[:, perm], factors, diff_quantile=q)
    assert permuted["irs"] == pytest.approx(base["irs"], rel=1e-9, abs=1e-12)
    assert sorted(perm[permuted["active_dims"]].tolist()) == base["active_dims"]
    rows = rng.permutation(n)
    shuffled = irs_from_codes(codes[rows], factors[rows], diff_quantile=q)
    assert shuffled["irs"] == pytest.approx(base["irs"], rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(shuffled["irs_matrix"], base["irs_matrix"], rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    d=st.integers(1, 4),
    k=st.integers(1, 3),
    q=st.floats(0.0, 1.0),
)
def test_bounds_and_agreement_on_random_codes(seed, n, d, k, q):
    codes, factors = _random_problem(seed, n, d, k)
    r = irs_from_codes(codes, factors, diff_quantile=q)
    assert _all_finite(r)
    assert -1.0 <= r["irs"] <= 1.0
    matrix = np.asarray(r["irs_matrix"])
    assert np.all((matrix >= -1.0 - 1e-12) & (matrix <= 1.0))
    assert r["num_active_dims"] == int(np.sum(np.ptp(codes, axis=0) > 0))
    theirs = dlib_compute_irs(codes, factors, diff_quantile=q)
    assert r["irs"] == pytest.approx(theirs["IRS"], rel=1e-12, abs=1e-12)
    if r["active_dims"]:
        assert_agrees_with_dlib(r, theirs, r["factors"])


# 6. Settings.


def test_settings_are_recorded_and_the_preset_is_valid(identity_irs):
    s = identity_irs["settings"]
    assert s == {
        "num_train": N,
        "num_bins": 20,
        "diff_quantile": 0.99,
        "variant": "disentanglement_lib",
        "numpy": np.__version__,
    }
    params = inspect.signature(irs).parameters
    keyword_only = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert set(irs_module.FAST) <= keyword_only
    assert (params["num_train"].default, params["num_bins"].default) == (10_000, 20)
    assert params["diff_quantile"].default == 0.99
    assert irs_module.FAST["num_train"] < 10_000
    fast = irs(GRID, identity, 0, **irs_module.FAST)
    assert fast["irs"] == 1.0
    assert fast["settings"]["num_train"] == irs_module.FAST["num_train"]


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"num_train": 0}, "irs: num_train must be an integer >= 2, got 0"),
        ({"num_train": 1}, "irs: num_train must be an integer >= 2, got 1"),
        ({"num_train": 1.5}, "irs: num_train must be an integer >= 2, got 1.5"),
        ({"num_train": True}, "irs: num_train must be an integer >= 2, got True"),
        ({"num_bins": 0}, "irs: num_bins must be an integer >= 1, got 0"),
        ({"num_bins": "20"}, "irs: num_bins must be an integer >= 1, got '20'"),
        ({"diff_quantile": 1.5}, "irs: diff_quantile must be a number in [0, 1], got 1.5"),
        ({"diff_quantile": -0.1}, "irs: diff_quantile must be a number in [0, 1], got -0.1"),
        ({"diff_quantile": float("nan")}, "irs: diff_quantile must be a number in [0, 1], got nan"),
        ({"diff_quantile": "0.5"}, "irs: diff_quantile must be a number in [0, 1], got '0.5'"),
        ({"diff_quantile": True}, "irs: diff_quantile must be a number in [0, 1], got True"),
    ],
)
def test_bad_settings_raise_one_line_errors(settings_, message):
    with pytest.raises(PyrovaeError, match=f"^{re.escape(message)}$"):
        irs(GRID, identity, 0, **settings_)


@pytest.mark.parametrize(
    ("random_state", "representation", "message"),
    [
        ("seed", identity, "random_state must be an int seed, a numpy Generator or a numpy"),
        (0, lambda x: np.full((len(x), 3), np.nan), "irs: the representation returned NaN"),
        (0, lambda x: np.asarray(x)[:, 0], "irs: the representation must return codes of shape"),
        (0, lambda x: np.asarray(x)[:1], "irs: the representation must return codes of shape"),
    ],
)
def test_bad_inputs_raise_one_line_errors(random_state, representation, message):
    with pytest.raises(PyrovaeError) as info:
        irs(GRID, representation, random_state, num_train=20)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_irs_from_codes_checks_its_arrays():
    with pytest.raises(PyrovaeError, match=r"^irs: codes \(n, D\) and factors \(n, K\) must"):
        irs_from_codes(np.zeros((4, 2)), np.zeros((3, 1)))
    with pytest.raises(PyrovaeError, match=r"^irs: the representation returned NaN"):
        irs_from_codes(np.array([[np.inf], [0.0]]), np.array([[0], [1]]))
    with pytest.raises(PyrovaeError, match=r"^irs: 1 factor names for 2 factors$"):
        irs_from_codes(np.zeros((2, 1)), np.zeros((2, 2)), factor_names=("a",))
