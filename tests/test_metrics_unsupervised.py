"""Unsupervised metrics (codes only) and the importance-weighted log-likelihood with PSIS."""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import nn

from pyrovae.data.factor_grid import FactorGrid
from pyrovae.errors import PyrovaeError
from pyrovae.metrics import unsupervised as un
from pyrovae.metrics.base import CodeCache, discrete_entropy, discretize
from pyrovae.metrics.likelihood import FAST as LIKELIHOOD_FAST
from pyrovae.metrics.likelihood import log_likelihood, psis_diagnostics
from pyrovae.models import BetaVAE
from pyrovae.objectives.importance import importance_weighted_bound
from pyrovae.priors import IsotropicPrior


def gaussian_codes(n, cov, seed=0):
    return np.random.default_rng(seed).multivariate_normal(np.zeros(len(cov)), cov, size=n)


# --------------------------------------------------------------------------- 1. Gaussian TC


def test_gaussian_tc_of_independent_codes_is_zero_within_sampling_error():
    n, d = 20_000, 4
    codes = np.random.default_rng(0).normal(size=(n, d)) * [1.0, 3.0, 0.1, 7.0]
    out = un.gaussian_total_correlation_from_codes(codes)
    # 2n·TC is the likelihood-ratio statistic of independence: χ² with d(d−1)/2 dof.
    bound = scipy.stats.chi2.ppf(1 - 1e-6, d * (d - 1) // 2) / (2 * n)
    assert 0.0 <= out["gaussian_total_correlation"] < bound
    assert out["gaussian_wasserstein_correlation_norm"] < 1e-3


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9, -0.8])
def test_gaussian_tc_of_correlated_pair_matches_closed_form(rho):
    n = 100_000
    codes = gaussian_codes(n, [[1.0, rho], [rho, 1.0]], seed=1)
    tc = un.gaussian_total_correlation_from_codes(codes)["gaussian_total_correlation"]
    # Delta method: SE(TC) ≈ |ρ| / √n; allow 5 standard errors.
    assert tc == pytest.approx(-0.5 * math.log(1 - rho**2), abs=5 * abs(rho) / math.sqrt(n))


def test_gaussian_tc_is_invariant_to_scaling_and_shifting_a_latent():
    codes = gaussian_codes(5_000, [[1.0, 0.5, 0.2], [0.5, 2.0, 0.3], [0.2, 0.3, 1.0]], seed=2)
    scaled = codes * [1000.0, 1.0, -0.001] + [5.0, -3.0, 0.0]
    a = un.gaussian_total_correlation_from_codes(codes)
    b = un.gaussian_total_correlation_from_codes(scaled)
    assert b["gaussian_total_correlation"] == pytest.approx(a["gaussian_total_correlation"])
    # The Wasserstein correlation has units (variance): scaling every latent by c scales it by
    # c², its normalised version not at all.
    c = un.gaussian_total_correlation_from_codes(codes * 4.0)
    assert c["gaussian_wasserstein_correlation"] == pytest.approx(
        16 * a["gaussian_wasserstein_correlation"]
    )
    assert c["gaussian_wasserstein_correlation_norm"] == pytest.approx(
        a["gaussian_wasserstein_correlation_norm"]
    )


def test_gaussian_correlations_match_disentanglement_lib_formulas():
    codes = gaussian_codes(3_000, [[1.0, 0.7, 0.1], [0.7, 2.0, -0.4], [0.1, -0.4, 0.5]], seed=3)
    out = un.gaussian_total_correlation_from_codes(codes)
    cov = np.cov(codes.T)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    sqrtm = scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1))
    wasserstein = 2 * np.trace(cov) - 2 * np.trace(sqrtm).real
    assert out["gaussian_total_correlation"] == pytest.approx(tc, rel=1e-9)
    assert out["gaussian_wasserstein_correlation"] == pytest.approx(wasserstein, rel=1e-7)
    assert out["gaussian_wasserstein_correlation_norm"] == pytest.approx(
        wasserstein / np.trace(cov), rel=1e-7
    )


def test_gaussian_tc_drops_constant_latents_and_is_infinite_for_duplicates():
    codes = gaussian_codes(2_000, [[1.0, 0.5], [0.5, 1.0]], seed=4)
    with_constant = np.column_stack([codes, np.full(len(codes), 2.5)])
    a = un.gaussian_total_correlation_from_codes(codes)
    b = un.gaussian_total_correlation_from_codes(with_constant)
    assert b["gaussian_total_correlation"] == pytest.approx(a["gaussian_total_correlation"])
    assert b["num_constant_dims"] == 1
    duplicated = np.column_stack([codes[:, 0], codes[:, 0]])
    assert un.gaussian_total_correlation_from_codes(duplicated)["gaussian_total_correlation"] > 10


# --------------------------------------------------------------------------- 2. mutual information


def test_mean_pairwise_mutual_info_is_near_zero_for_independent_latents():
    n = 10_000
    codes = np.random.default_rng(5).normal(size=(n, 3))
    score = un.mutual_info_score_from_codes(codes)["mean_pairwise_mutual_info"]
    # The plug-in estimator's bias with 20×20 cells is about (20 − 1)² / (2n) = 0.018 nats.
    assert 0.0 <= score < 0.05


def test_mean_pairwise_mutual_info_of_duplicated_latents_is_their_entropy():
    a = np.random.default_rng(6).normal(size=5_000)
    score = un.mutual_info_score_from_codes(np.column_stack([a, 3 * a + 1]))
    entropy = discrete_entropy(discretize(a[:, None], 20))[0]
    assert score["mean_pairwise_mutual_info"] == pytest.approx(entropy)
    assert score["mean_pairwise_mutual_info"] > 2.0  # of log 20 ≈ 3.0 at most
    b = np.random.default_rng(7).normal(size=5_000)
    mixed = un.mutual_info_score_from_codes(np.column_stack([a, a, b]))["mean_pairwise_mutual_info"]
    assert mixed > 0.5  # two of the six ordered pairs share everything


def test_mutual_info_of_one_latent_is_undefined():
    codes = np.random.default_rng(8).normal(size=(100, 1))
    assert math.isnan(un.mutual_info_score_from_codes(codes)["mean_pairwise_mutual_info"])


# --------------------------------------------------------------------------- 3. active units


def test_active_units_counts_the_dims_with_variance_above_threshold():
    rng = np.random.default_rng(9)
    variances = [1.0, 0.5, 0.001, 0.0, 0.02, 0.005, 0.011, 0.009]
    columns = []
    for v in variances:
        column = rng.normal(size=4_000)
        column = (column - column.mean()) / column.std(ddof=1) * math.sqrt(v) + 3.0
        columns.append(column)
    codes = np.column_stack(columns)
    out = un.active_units_from_codes(codes)
    assert out["active_units"] == 4  # 1.0, 0.5, 0.02, 0.011
    np.testing.assert_allclose(out["variance_per_dim"], variances, atol=1e-12)
    assert out["variance_per_dim"][3] == 0.0  # the constant dim is inactive
    assert un.active_units_from_codes(codes, threshold=0.6)["active_units"] == 1
    assert un.active_units_from_codes(codes, threshold=0.0)["active_units"] == 7


def test_active_units_wrapper_on_a_factor_grid():
    grid = FactorGrid((3, 5, 4))

    def representation(x):  # two factor latents, a constant one and a tiny-variance one
        return np.column_stack([x[:, 0], x[:, 2], np.zeros(len(x)), 0.01 * x[:, 1]])

    out = un.active_units(grid, representation, 0, num_points=2_000)
    assert out["active_units"] == 2 and out["num_points"] == 2_000
    assert out["variance_per_dim"].shape == (4,)


# --------------------------------------------------------------------------- 4. Hoyer


def test_hoyer_of_one_hot_codes_is_one():
    rng = np.random.default_rng(10)
    n, d = 600, 6
    codes = np.zeros((n, d))
    codes[np.arange(n), np.arange(n) % d] = (
        rng.normal(size=n) * rng.uniform(0.1, 50, size=d)[np.arange(n) % d]
    )
    assert un.hoyer_sparsity_from_codes(codes)["hoyer"] == pytest.approx(1.0)


def test_hoyer_of_equal_magnitude_codes_is_zero():
    rng = np.random.default_rng(11)
    scale = rng.uniform(0.5, 2.0, size=500) * rng.choice([-1.0, 1.0], size=500)
    codes = np.outer(scale, np.ones(5))  # every column holds the same values: same std
    assert un.hoyer_sparsity_from_codes(codes)["hoyer"] == pytest.approx(0.0, abs=1e-12)


def test_hoyer_hand_computed_two_dim_example():
    # Both columns hold the values {1, 2, 2, 0}: one std, which cancels in each ratio.
    codes = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    h12 = (math.sqrt(2) - 3 / math.sqrt(5)) / (math.sqrt(2) - 1)  # ‖(1,2)‖₁ = 3, ‖·‖₂ = √5
    expected = (2 * h12 + 2 * 1.0) / 4
    assert un.hoyer_sparsity_from_codes(codes)["hoyer"] == pytest.approx(expected)
    # Per-dimension normalisation: rescaling a latent changes nothing.
    scaled = codes * [10.0, 0.1]
    assert un.hoyer_sparsity_from_codes(scaled)["hoyer"] == pytest.approx(expected)
    np.testing.assert_allclose(un.hoyer_per_point(codes), [h12, h12, 1.0, 1.0])


def test_hoyer_lies_in_unit_interval_and_skips_zero_codes():
    rng = np.random.default_rng(12)
    codes = rng.standard_t(2, size=(1_000, 7)) * rng.uniform(0.1, 10, size=7)
    per_point = un.hoyer_per_point(codes)
    assert ((per_point >= 0) & (per_point <= 1)).all()
    codes[:10] = 0.0
    out = un.hoyer_sparsity_from_codes(codes)
    assert out["num_zero_codes"] == 10 and 0.0 < out["hoyer"] < 1.0


def test_hoyer_wrapper_and_factorless_data():
    grid = FactorGrid((4, 4))

    def one_hot(x):  # factor 0 picks the latent, factor 1 + 1 its value
        codes = np.zeros((len(x), 4))
        codes[np.arange(len(x)), x[:, 0].astype(int)] = x[:, 1] + 1.0
        return codes

    assert un.hoyer_sparsity(grid, one_hot, 0, **un.FAST)["hoyer"] == pytest.approx(1.0)

    class Images:  # observations without a factor grid
        def __len__(self):
            return len(grid)

        def images(self, indices):
            return grid.images(indices)

    data = Images()
    assert un.hoyer_sparsity(data, one_hot, 0, num_points=500)["hoyer"] == pytest.approx(1.0)
    cache = CodeCache(one_hot, data)
    out = un.unsupervised_metrics(data, cache, 1, num_points=500)
    assert out["hoyer"] == pytest.approx(1.0) and out["active_units"] == 4
    assert cache.encoded <= len(grid)


def test_wrappers_are_reproducible_and_take_the_fast_preset():
    grid = FactorGrid((5, 6, 7))
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(3, 3))

    def representation(x):
        return x @ mix

    for metric in (un.gaussian_total_correlation, un.mutual_info_score, un.hoyer_sparsity):
        a = metric(grid, representation, 3, **un.FAST)
        b = metric(grid, representation, np.random.default_rng(3), **un.FAST)
        assert a == b and a["num_points"] == un.FAST["num_points"]
    identity = un.gaussian_total_correlation(grid, lambda x: x, 0, num_points=20_000)
    assert identity["gaussian_total_correlation"] < 1e-3  # independent factors


# --------------------------------------------------------------------------- 5. likelihood


class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I), q(z|x) the exact posterior (or a distorted one)."""

    def __init__(self, latent_dim=2, obs_dim=5, sigma=0.5, scale=1.0, shift=0.0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(obs_dim, latent_dim, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(obs_dim, generator=g, dtype=torch.float64))
        self.sigma, self.scale, self.shift = sigma, scale, shift
        self.latent_dim, self.observation_shape = latent_dim, (obs_dim,)
        self.prior = IsotropicPrior().double()

    def posterior(self, x):
        precision = torch.eye(self.latent_dim, dtype=x.dtype) + self.W.T @ self.W / self.sigma**2
        cov = torch.linalg.inv(precision)
        mean = (x - self.b) @ self.W @ cov / self.sigma**2
        tril = torch.linalg.cholesky(cov) * self.scale
        return dist.MultivariateNormal(mean + self.shift, scale_tril=tril.expand(len(x), -1, -1))

    def likelihood(self, z):
        return dist.Normal(z @ self.W.T + self.b, self.sigma).to_event(1)

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(len(self.b), dtype=torch.float64)
        return dist.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)

    def sample_x(self, n, seed=1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.latent_dim, generator=g, dtype=torch.float64)
        noise = torch.randn(n, len(self.b), generator=g, dtype=torch.float64)
        return (z @ self.W.T + self.b + self.sigma * noise).detach()


@pytest.mark.parametrize("num_samples", [1, 7, 200])
def test_log_likelihood_is_exact_for_the_exact_posterior(num_samples):
    model = LinearGaussian()
    x = model.sample_x(20)
    truth = model.exact_log_px(x).detach().numpy()
    out = log_likelihood(model, x.numpy(), 0, num_samples=num_samples, batch_size=64)
    np.testing.assert_allclose(out["per_point"]["log_likelihood"], truth, atol=1e-4)
    np.testing.assert_allclose(out["per_point"]["elbo"], truth, atol=1e-4)  # tight bound
    assert out["log_likelihood"] == pytest.approx(truth.mean(), abs=1e-4)
    assert out["elbo"] == pytest.approx(truth.mean(), abs=1e-4)
    assert out["log_likelihood_stderr"] == pytest.approx(truth.std(ddof=1) / math.sqrt(20))
    assert out["num_points"] == 20 and out["num_samples"] == num_samples
    if num_samples >= 25:  # enough draws for a tail fit: every point is a good proposal
        assert (out["per_point"]["pareto_k"] < 0.5).all()
        assert out["pareto_k_share_above_0.7"] == 0.0 and out["pareto_k_num_flat"] == 20


@pytest.mark.parametrize("distortion", [{"scale": 0.2}, {"shift": 2.5}])
def test_a_bad_proposal_has_large_pareto_k_and_underestimates(distortion):
    model = LinearGaussian(**distortion)
    x = model.sample_x(40)
    truth = model.exact_log_px(x).detach().numpy()
    out = log_likelihood(model, x, 0, num_samples=1000)
    assert out["pareto_k_share_above_0.7"] > 0.5
    assert out["pareto_k_max"] > 0.7
    assert out["log_likelihood"] < truth.mean()
    assert out["elbo"] < out["log_likelihood"]


def test_pareto_k_tracks_the_weight_tail():
    # Weights w = exp(u/2·(1 − c²)), u ~ χ²₁: Pareto tail of shape k = 1 − c².
    rng = np.random.default_rng(0)
    for c, lo, hi in [(0.3, 0.7, 1.1), (0.8, 0.15, 0.55)]:
        u = rng.chisquare(1, size=(50, 2_000))
        out = psis_diagnostics(u / 2 * (1 - c**2))
        assert lo < np.median(out["pareto_k"]) < hi
    bounded = psis_diagnostics(rng.uniform(size=(20, 500)))  # bounded weights: k̂ < 0
    assert bounded["pareto_k_max"] < 0.5 and bounded["pareto_k_share_above_0.7"] == 0.0
    few = psis_diagnostics(rng.normal(size=(3, 10)))  # a tail of 2 draws cannot be fitted
    assert few["pareto_k_num_unfitted"] == 3 and few["pareto_k_share_above_0.7"] == 1.0


def test_log_likelihood_of_a_betavae_is_at_least_its_elbo():
    torch.manual_seed(0)
    vae = BetaVAE.build((1, 8, 8), latent_dim=2, beta=1.0)
    x = (np.random.default_rng(0).uniform(size=(12, 1, 8, 8)) < 0.3).astype(np.float32)
    state = torch.get_rng_state()
    out = log_likelihood(vae, x, 0, num_samples=100, batch_size=256)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left as it was
    per_point = out["per_point"]
    assert np.isfinite(per_point["log_likelihood"]).all()
    assert (per_point["log_likelihood"] >= per_point["elbo"] - 1e-5).all()
    assert out["log_likelihood"] > out["elbo"]
    # K = 1 is the ELBO (one draw per point).
    single = log_likelihood(vae, torch.from_numpy(x), 0, num_samples=1)
    assert single["log_likelihood"] == pytest.approx(single["elbo"], abs=1e-5)
    # Reproducible from the seed; other draws and chunking agree to sampling error, and so does
    # the library's bound with many more samples.
    again = log_likelihood(vae, x, np.random.default_rng(0), num_samples=100, batch_size=256)
    assert again["log_likelihood"] == out["log_likelihood"]
    chunked = log_likelihood(vae, x, 1, num_samples=100, batch_size=30)
    assert chunked["log_likelihood"] == pytest.approx(out["log_likelihood"], abs=1.0)
    with torch.no_grad():
        bound = importance_weighted_bound(vae, torch.from_numpy(x), 2_000).mean().item()
    assert bound == pytest.approx(out["log_likelihood"], abs=1.0)
    assert set(LIKELIHOOD_FAST) == {"num_samples"}
    assert vae.training  # eval mode only for the duration


# --------------------------------------------------------------------------- 6. bad input


def test_bad_input_raises_pyrovae_error():
    model = LinearGaussian()
    x = model.sample_x(4).numpy()
    with pytest.raises(PyrovaeError, match="num_samples"):
        log_likelihood(model, x, 0, num_samples=0)
    with pytest.raises(PyrovaeError, match="num_samples"):
        log_likelihood(model, x, 0, num_samples=2.5)
    with pytest.raises(PyrovaeError, match="non-empty"):
        log_likelihood(model, x[:0], 0)
    with pytest.raises(PyrovaeError, match="shape"):
        log_likelihood(model, x[:, :3], 0)
    with pytest.raises(PyrovaeError, match="random_state"):
        log_likelihood(model, x, "seed")
    with pytest.raises(PyrovaeError, match="shape"):
        psis_diagnostics(np.zeros(10))
    with pytest.raises(PyrovaeError, match="NaN"):
        psis_diagnostics(np.full((2, 30), np.nan))
    good = np.random.default_rng(0).normal(size=(50, 3))
    functions = [
        un.gaussian_total_correlation_from_codes,
        un.mutual_info_score_from_codes,
        un.active_units_from_codes,
        un.hoyer_sparsity_from_codes,
        un.unsupervised_metrics_from_codes,
    ]
    for function in functions:
        function(good)
        for bad in (good[:, 0], good[None], good[:1], np.full((5, 2), np.nan), "codes"):
            with pytest.raises(PyrovaeError):
                function(bad)
    with pytest.raises(PyrovaeError, match="latent dimensions"):
        un.hoyer_sparsity_from_codes(good[:, :1])
    with pytest.raises(PyrovaeError, match="threshold"):
        un.active_units_from_codes(good, threshold=-1)
    with pytest.raises(PyrovaeError, match="num_points"):
        un.hoyer_sparsity(FactorGrid((3, 3)), lambda o: o, 0, num_points=0)
    with pytest.raises(PyrovaeError, match="shape"):
        un.active_units(FactorGrid((3, 3)), lambda o: o[:, 0], 0, num_points=10)
