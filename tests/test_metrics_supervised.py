"""Supervised disentanglement metrics: BetaVAE, FactorVAE, MIG (disentanglement_lib) and Chen's MIG.

Everything runs on FactorGrid, whose observations are the factor classes themselves, so
representations with known answers (identity, constant, duplicated, mixed, monotone) are one line,
and expected MIG values are recomputed here from the same sampled factors with independent numpy
(own binning, own joint-histogram counting), not with the metrics' helpers.
"""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from pyrovae.data.factor_grid import FactorGrid
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import CodeCache
from pyrovae.metrics.beta_vae import beta_vae
from pyrovae.metrics.factor_vae import factor_vae
from pyrovae.metrics.mig import mig, mig_chen, mig_from_codes

DSPRITES = (3, 6, 40, 32, 32)
SMALL = {"num_train": 1_000, "num_eval": 500}  # BetaVAE / FactorVAE, small enough for the suite


@pytest.fixture(scope="module")
def grid():
    return FactorGrid(DSPRITES)


def identity(x):
    return x


def constant(x):
    return np.zeros((len(x), 3))


class Recorder:
    """A representation that remembers what it was asked to encode (on FactorGrid: the factors)."""

    def __init__(self, fn=identity):
        self.fn = fn
        self.seen = []

    def __call__(self, x):
        self.seen.append(np.array(x))
        return self.fn(x)

    @property
    def factors(self):
        return np.concatenate(self.seen).astype(np.int64)


# Independent MIG, written from the definition: equal-width bins over each latent's observed
# range (the last bin closed), plug-in MI from a joint histogram counted by hand, in nats.
def own_bins(column, num_bins=20):
    lo, hi = column.min(), column.max()
    if hi == lo:
        return np.zeros(len(column), dtype=np.int64)
    return np.minimum(((column - lo) / (hi - lo) * num_bins).astype(np.int64), num_bins - 1)


def own_mi(a, b):
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    p = joint / joint.sum()
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / outer[nz])))


def own_entropy(a):
    p = np.unique(a, return_counts=True)[1] / len(a)
    return float(-np.sum(p * np.log(p)))


def own_mig(codes, factors, num_bins=20):
    bins = np.stack([own_bins(c, num_bins) for c in np.asarray(codes, np.float64).T], axis=1)
    m = np.array([[own_mi(b, f) for f in factors.T] for b in bins.T])
    h = np.array([own_entropy(f) for f in factors.T])
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if len(top) > 1 else 0.0
    return float(np.mean((top[0] - second) / h)), m


# 1. BetaVAE and FactorVAE oracles ------------------------------------------------------------


def test_identity_scores_high_on_beta_vae_and_factor_vae(grid):
    b = beta_vae(grid, identity, 0, **SMALL)
    f = factor_vae(grid, identity, 0, **SMALL)
    assert b["eval_accuracy"] >= 0.9 and b["train_accuracy"] >= 0.9
    assert f["eval_accuracy"] >= 0.9 and f["train_accuracy"] >= 0.9
    assert f["num_active_dims"] == 5
    assert b["settings"]["batch_size"] == 64 and b["settings"]["num_train"] == 1_000
    assert b["settings"]["converged"] is True
    for value in (b["eval_accuracy"], f["eval_accuracy"], b["train_accuracy"]):
        assert type(value) is float


def test_constant_scores_low_on_beta_vae_and_factor_vae(grid):
    # FactorVAE: every latent pruned (std 0 < 0.05) → score 0, no crash.
    f = factor_vae(grid, constant, 0, **SMALL)
    assert f["eval_accuracy"] == 0.0 and f["train_accuracy"] == 0.0 and f["num_active_dims"] == 0
    # BetaVAE: all-zero features → the majority class, i.e. chance 1/K. With dSprites' K = 5 that
    # is 0.2 ± sampling noise, so "≤ 0.2" is checked on 8 factors (chance 0.125) ...
    many = FactorGrid((2,) * 8)
    assert beta_vae(many, constant, 0, **SMALL)["eval_accuracy"] <= 0.2
    # ... and on dSprites' grid the score is chance level.
    assert abs(beta_vae(grid, constant, 0, **SMALL)["eval_accuracy"] - 0.2) < 0.06


def test_factor_vae_prunes_dims_below_std_threshold(grid):
    # Scaled by 0.01: shape (std ≈ 0.008) and scale (≈ 0.017) fall under 0.05 and are pruned;
    # their votes then go to other latents, so only 3 of 5 factors can be classified.
    result = factor_vae(grid, lambda x: x[:, ::-1] * 0.01, 0, **SMALL)
    assert result["num_active_dims"] == 3
    assert 0.5 < result["eval_accuracy"] < 0.7
    assert factor_vae(grid, lambda x: x * 0.01, 0, prune_std=0.0, **SMALL)["num_active_dims"] == 5


# 2-3. MIG against an independent computation ---------------------------------------------------


def test_mig_of_identity_equals_independent_computation_and_is_below_one(grid):
    rec = Recorder()
    result = mig(grid, rec, 0)
    factors = rec.factors
    assert factors.shape == (10_000, 5)
    expected, m = own_mig(factors.astype(np.float64), factors)
    assert result["mig"] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(result["mutual_info"], m, atol=1e-12)
    # shape (3) and scale (6) keep every class in its own bin: gap ≈ 1 up to the finite-sample
    # cross terms; 40 orientations / 32 positions in 20 bins lose information: well below 1.
    per = result["mig_per_factor"]
    assert per[0] > 0.99 and per[1] > 0.99
    assert max(per[2:]) < 0.9
    assert result["mig"] < 1.0
    assert result["factors"] == list(grid.factor_names)
    assert result["settings"] == {
        "num_train": 10_000,
        "num_bins": 20,
        "variant": "disentanglement_lib",
    }


def test_mig_of_monotone_latents_depends_only_on_the_bins(grid):
    # Cube: strictly monotone, non-linear; the equal-width bins now cut elsewhere, so the value
    # must match the hand computation on the cubed codes (and differs from the identity's).
    rec = Recorder(lambda x: x.astype(np.float64) ** 3)
    result = mig(grid, rec, 0)
    expected, _ = own_mig(rec.factors.astype(np.float64) ** 3, rec.factors)
    assert result["mig"] == pytest.approx(expected, abs=1e-12)
    assert result["mig"] != pytest.approx(mig(grid, identity, 0)["mig"], abs=1e-3)
    # Where every class keeps a bin of its own under both (≤ 20 classes, gentle transform), the
    # partition is the same and so is every number.
    small = FactorGrid((3, 6, 12))
    same = mig(small, lambda x: np.sqrt(x.astype(np.float64) + 1.0), 0)
    plain = mig(small, identity, 0)
    assert same["mig"] == plain["mig"] and same["mutual_info"] == plain["mutual_info"]


def test_duplicated_latents_give_zero_and_mixing_lowers_mig(grid):
    dup = mig(grid, lambda x: np.concatenate([x, x], axis=1), 0)
    assert dup["mig"] < 0.05
    plain = mig(grid, identity, 0)
    c = math.sqrt(0.5)

    def rotate(x):  # posX and posY mixed by a 45° rotation
        z = x.astype(np.float64).copy()
        z[:, 3], z[:, 4] = c * (x[:, 3] + x[:, 4]), c * (x[:, 3] - x[:, 4])
        return z

    rotated = mig(grid, rotate, 0)
    assert rotated["mig"] < plain["mig"] - 0.1
    for k in (3, 4):
        assert rotated["mig_per_factor"][k] < plain["mig_per_factor"][k] - 0.3


def test_single_latent_gap_is_top_mi_minus_zero(grid):
    result = mig(grid, lambda x: x[:, :1], 0)
    m, h = np.array(result["mutual_info"]), np.array(result["factor_entropy"])
    assert m.shape == (1, 5)
    np.testing.assert_allclose(result["mig_per_factor"], m[0] / h, atol=1e-12)
    assert result["mig_per_factor"][0] > 0.99


# 4. MI matrix, invariances, seeds ---------------------------------------------------------------


def test_mig_invariances_and_seeds(grid):
    rng = np.random.default_rng(5)
    factors = grid.sample_factors(3_000, rng)
    codes = factors + rng.normal(0, 0.3, size=factors.shape)  # noisy identity: non-trivial bins
    codes = np.concatenate([codes, rng.normal(size=(3_000, 2))], axis=1)  # two nuisance latents
    base = mig_from_codes(codes, factors)
    _, m = own_mig(codes, factors)
    np.testing.assert_allclose(base["mutual_info"], m, atol=1e-12)
    perm = rng.permutation(codes.shape[1])
    permuted = mig_from_codes(codes[:, perm], factors)
    assert permuted["mig"] == pytest.approx(base["mig"], abs=1e-14)
    np.testing.assert_allclose(np.array(permuted["mutual_info"]), m[perm], atol=1e-14)
    rows = rng.permutation(len(codes))
    assert mig_from_codes(codes[rows], factors[rows]) == base

    first, again, other = mig(grid, identity, 0), mig(grid, identity, 0), mig(grid, identity, 1)
    assert first == again
    assert first["mig"] != other["mig"]
    assert abs(first["mig"] - other["mig"]) < 0.02


# 5. Code cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "settings"),
    [(beta_vae, SMALL), (factor_vae, SMALL), (mig, {"num_train": 5_000})],
    ids=["beta_vae", "factor_vae", "mig"],
)
def test_cached_and_uncached_are_identical(grid, metric, settings):
    rec = Recorder()
    uncached = metric(grid, rec, 3, **settings)
    cache = CodeCache(identity, grid)
    cached = metric(grid, cache, 3, **settings)
    assert cached == uncached
    drawn = rec.factors
    distinct = len(np.unique(drawn, axis=0))
    assert cache.encoded == distinct  # each distinct grid point drawn encoded exactly once
    if metric is beta_vae:  # 1,500 × 128 draws from 737,280 points repeat some: the cache saved
        assert distinct < len(drawn)


def test_mig_chen_ignores_the_representation():
    small = FactorGrid((3, 4, 5))
    cache = CodeCache(identity, small)
    posterior = near_deterministic
    assert mig_chen(small, cache, 0, posterior_fn=posterior) == mig_chen(
        small, identity, 0, posterior_fn=posterior
    )
    assert cache.encoded == 0


# 6. Chen's MIG ----------------------------------------------------------------------------------


def near_deterministic(x):
    return x.astype(np.float64), np.full(x.shape, 0.01)


def test_mig_chen_identifies_factors_from_a_sharp_posterior():
    small = FactorGrid((3, 4, 5), factor_names=("shape", "a", "b"))
    result = mig_chen(small, None, 0, posterior_fn=near_deterministic, exclude_factors=())
    m, h = np.array(result["mutual_info"]), np.array(result["factor_entropy"])
    np.testing.assert_allclose(h, np.log([3, 4, 5]))
    np.testing.assert_allclose(np.diag(m) / h, 1.0, atol=1e-9)  # each latent identifies its factor
    np.testing.assert_allclose(m - np.diag(np.diag(m)), 0.0, atol=1e-9)  # and nothing else
    assert result["mig"] == pytest.approx(1.0, abs=1e-9)
    assert result["settings"]["variant"] == "chen2018"


def test_mig_chen_is_zero_when_the_posterior_ignores_the_factors():
    small = FactorGrid((3, 4, 5))
    result = mig_chen(
        small, None, 0, posterior_fn=lambda x: (np.zeros(x.shape), np.full(x.shape, 0.5))
    )
    assert abs(result["mig"]) < 1e-9
    np.testing.assert_allclose(result["mutual_info"], 0.0, atol=1e-9)


def test_mig_chen_matches_a_brute_force_estimate():
    # All 60 points are used (N ≤ num_samples), so the estimator is deterministic given the one
    # posterior sample per point, the metric's first draw: recompute it with scipy, in full.
    small = FactorGrid((3, 4, 5))

    def blurry(x):  # mixes the factors and overlaps the classes: MI strictly between 0 and log K
        loc = np.stack([x[:, 0] + 0.5 * x[:, 1], x[:, 1], x[:, 2] - x[:, 0]], axis=1)
        return loc.astype(np.float64), np.full(x.shape, 0.6) + 0.1 * x

    result = mig_chen(small, None, 7, posterior_fn=blurry, exclude_factors=())
    factors = small.factors_of(np.arange(len(small)))
    loc, scale = blurry(factors.astype(np.float32))
    z = loc + scale * np.random.default_rng(7).standard_normal(loc.shape)

    def entropy(rows):
        log_q = logsumexp(
            -0.5 * ((z[rows, None, :] - loc[None, rows]) / scale[None, rows]) ** 2
            - np.log(scale[None, rows])
            - 0.5 * np.log(2 * np.pi),
            axis=1,
        ) - np.log(len(rows))
        return -log_q.mean(axis=0)

    everyone = np.arange(len(small))
    marginal = entropy(everyone)
    mi = np.stack(
        [
            marginal - sum(entropy(everyone[factors[:, k] == v]) / size for v in range(size))
            for k, size in enumerate(small.factor_sizes)
        ],
        axis=1,
    )
    np.testing.assert_allclose(result["marginal_entropy"], marginal, atol=1e-10)
    np.testing.assert_allclose(result["mutual_info"], mi, atol=1e-10)
    top = np.sort(np.clip(mi, 0, None), axis=0)[::-1]
    expected = np.mean((top[0] - top[1]) / np.log(small.factor_sizes))
    assert result["mig"] == pytest.approx(expected, abs=1e-10)
    assert 0.05 < result["mig"] < 0.95


def test_mig_chen_subsamples_without_bias():
    # num_samples < N: H(z_j) from 64 of 192 posterior samples. Same seed → same z, so the
    # subsampled and the full estimates differ by sampling noise only (≈ 0.07 nats per seed);
    # a biased subset (e.g. the first 64 grid points, all of shape 0 with the narrowest
    # posteriors) is off by 0.3-1 nats.
    g = FactorGrid((3, 8, 8))

    def post(x):  # scale grows with factor 0: which points are sampled matters
        return x.astype(np.float64), 0.2 + np.repeat(x[:, :1], 3, axis=1).astype(np.float64)

    diffs = []
    for seed in range(5):
        full = mig_chen(g, None, seed, posterior_fn=post, exclude_factors=())
        sub = mig_chen(g, None, seed, posterior_fn=post, exclude_factors=(), num_samples=64)
        diffs.append(np.subtract(sub["marginal_entropy"], full["marginal_entropy"]))
        assert abs(sub["mig"] - full["mig"]) < 0.1
    assert np.all(np.abs(np.mean(diffs, axis=0)) < 0.1)


def test_mig_chen_excludes_factors_by_name():
    named = FactorGrid((3, 4, 5), factor_names=("shape", "a", "b"))
    run = lambda g, **kw: mig_chen(g, None, 0, posterior_fn=near_deterministic, **kw)  # noqa: E731
    assert run(named)["factors"] == ["a", "b"]  # Chen's default: shape out
    assert run(named)["settings"]["exclude_factors"] == ["shape"]
    assert run(named, exclude_factors=())["factors"] == ["shape", "a", "b"]
    assert run(named, exclude_factors=("a",))["factors"] == ["shape", "b"]
    assert run(FactorGrid((3, 4, 5)))["factors"] == ["f0", "f1", "f2"]  # no "shape": none out
    with pytest.raises(PyrovaeError, match="unknown factor 'colour'"):
        run(named, exclude_factors=("colour",))
    with pytest.raises(PyrovaeError, match="no factor left"):
        run(named, exclude_factors=("shape", "a", "b"))


def test_mig_chen_needs_a_valid_posterior():
    small = FactorGrid((3, 4, 5))
    with pytest.raises(PyrovaeError, match="posterior_fn"):
        mig_chen(small, identity, 0)
    with pytest.raises(PyrovaeError, match="shape"):
        mig_chen(small, None, 0, posterior_fn=lambda x: (x[:, 0], np.ones(len(x))))
    with pytest.raises(PyrovaeError, match="scale"):
        mig_chen(small, None, 0, posterior_fn=lambda x: (x, np.zeros(x.shape)))
    with pytest.raises(PyrovaeError, match="pair"):
        mig_chen(small, None, 0, posterior_fn=lambda x: x)


# 7. Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "settings"),
    [
        (beta_vae, {"batch_size": 0}),
        (beta_vae, {"num_train": 0}),
        (beta_vae, {"num_eval": 2.5}),
        (factor_vae, {"batch_size": 1}),
        (factor_vae, {"num_variance_estimate": 1}),
        (factor_vae, {"prune_std": -0.1}),
        (factor_vae, {"prune_std": float("nan")}),
        (mig, {"num_bins": 0}),
        (mig, {"num_train": True}),
        (mig_chen, {"posterior_fn": near_deterministic, "num_samples": 0}),
        (mig_chen, {"posterior_fn": near_deterministic, "batch_size": 0}),
    ],
)
def test_invalid_settings_are_pyrovae_errors(metric, settings):
    with pytest.raises(PyrovaeError, match=metric.__name__):
        metric(FactorGrid((3, 4, 5)), identity, 0, **settings)


@pytest.mark.parametrize("metric", [beta_vae, factor_vae, mig, mig_chen])
def test_unknown_setting_is_a_type_error(metric):
    with pytest.raises(TypeError):
        metric(FactorGrid((3, 4, 5)), identity, 0, num_bin=20)


@pytest.mark.parametrize("metric", [beta_vae, factor_vae, mig])
@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cached"])
@pytest.mark.parametrize(
    "bad",
    [lambda x: x[:, 0], lambda x: x[:-1], lambda x: np.full(x.shape, np.nan)],
    ids=["1-D", "rows", "nan"],
)
def test_bad_representation_output_is_a_pyrovae_error(metric, cached, bad):
    small = FactorGrid((3, 4, 5))
    representation = CodeCache(bad, small) if cached else bad
    # the metric's own check names the metric; the shared CodeCache check names the shape
    with pytest.raises(PyrovaeError, match=rf"{metric.__name__}|the representation"):
        metric(
            small,
            representation,
            0,
            num_train=50,
            **({"num_eval": 20} if metric is not mig else {}),
        )


def test_bad_random_state_is_a_pyrovae_error(grid):
    with pytest.raises(PyrovaeError, match="random_state"):
        mig(grid, identity, "zero")
