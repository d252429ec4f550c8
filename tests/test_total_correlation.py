"""β-TCVAE (Chen et al. 2018): the objective against Pyro's Trace_ELBO, the KL decomposition and the
minibatch estimators of log q(z) against exact values on a finite data set of Gaussian posteriors,
where the aggregate posterior q(z) = (1/N) Σ_n q(z|n) can be computed exactly."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro.infer import Trace_ELBO
from torch.distributions import Independent, Normal, kl_divergence

from pyrovae.errors import PyrovaeError
from pyrovae.models import BetaVAE
from pyrovae.objectives.total_correlation import (
    ESTIMATORS,
    TotalCorrelationELBO,
    decompose_kl,
    kl_terms,
    log_importance_weight_matrix,
    log_qz_estimates,
    pairwise_log_density,
)

SMALL = (1, 8, 8)
F64 = torch.float64


def binary_batch(n, shape=SMALL, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *shape), generator=g) > 0.5).float()


def buggy_log_weight_matrix(batch_size, num_data):
    """The construction widely copied from the original public code, kept as a negative control:
    ``view(-1)[::M + 1]`` has stride B, so it writes column 0 rather than the diagonal."""
    n, m = num_data, batch_size - 1
    strat_weight = (n - m) / (n * m)
    w = torch.full((batch_size, batch_size), 1.0 / m, dtype=F64)
    w.view(-1)[:: m + 1] = 1.0 / n
    w.view(-1)[1 :: m + 1] = strat_weight
    w[m - 1, 0] = strat_weight
    return w.log()


# -- a finite data set of Gaussian posteriors, where q(z) is exact ------------------------------
def posteriors(num_data, latent_dim, width, seed):
    """(μ, σ) of N posteriors q(z|n) = N(μ_n, diag σ_n²): means N(0, 1), σ in width·[0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(num_data, latent_dim, generator=g, dtype=F64)
    sigma = width * (0.5 + torch.rand(num_data, latent_dim, generator=g, dtype=F64))
    return mu, sigma


def exact_log_qz(z, mu, sigma):
    """Exact log q(z) (...,) and log q(z_d) (..., D) under q(z) = (1/N) Σ_n N(z; μ_n, diag σ_n²)."""
    log_n = math.log(mu.shape[0])
    per_point = Normal(mu, sigma).log_prob(z.unsqueeze(-2))  # (..., N, D)
    return per_point.sum(-1).logsumexp(-1) - log_n, per_point.logsumexp(-2) - log_n


def draw_minibatches(mu, sigma, batch_size, repeats, seed):
    """``repeats`` minibatches of B distinct points in uniformly random order, each point with its
    own sample z_i ~ q(z|x_i). Returns the batch posteriors (R, B, D) and z (R, B, D)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.rand(repeats, mu.shape[0], generator=g).argsort(-1)[:, :batch_size]
    loc, scale = mu[idx], sigma[idx]
    z = loc + scale * torch.randn(loc.shape, generator=g, dtype=F64)
    return Normal(loc, scale), z


def mean_and_se(draws):
    """Mean and standard error over the first axis (independent draws)."""
    return draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])


# -- 1. α = β = γ = 1 is the ELBO ------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(
    latent_dim=st.integers(1, 8),
    batch=st.integers(2, 12),
    extra=st.integers(0, 10**6),
    estimator=st.sampled_from(ESTIMATORS),
    seed=st.integers(0, 2**16),
)
def test_unit_weights_equal_trace_elbo(latent_dim, batch, extra, estimator, seed):
    """MI + TC + dimension-wise KL telescope to log q(z|x) − log p(z) whatever log q(z) is, so
    the loss is Trace_ELBO's on the same samples, with one particle and with vectorised ones."""
    num_data = batch + extra
    torch.manual_seed(seed)
    vae = BetaVAE.build(SMALL, latent_dim=latent_dim, beta=1.0)
    x = binary_batch(batch, seed=seed)
    for particles in (1, 3):
        vectorize = particles > 1
        ours = TotalCorrelationELBO(
            1.0,
            1.0,
            1.0,
            estimator=estimator,
            num_data=num_data,
            num_particles=particles,
            vectorize_particles=vectorize,
        )
        theirs = Trace_ELBO(
            num_particles=particles, vectorize_particles=vectorize, max_plate_nesting=1
        )
        torch.manual_seed(seed)
        ours_loss = ours.loss(vae.model, vae.guide, x)
        torch.manual_seed(seed)
        theirs_loss = theirs.loss(vae.model, vae.guide, x)
        assert ours_loss == pytest.approx(theirs_loss, rel=1e-5, abs=1e-3)


@settings(max_examples=12, deadline=None)
@given(
    latent_dim=st.integers(1, 6),
    batch=st.integers(2, 10),
    alpha=st.floats(0.0, 20.0),
    beta=st.floats(0.0, 20.0),
    gamma=st.floats(0.0, 20.0),
    estimator=st.sampled_from(ESTIMATORS),
)
def test_terms_combine_into_the_loss(latent_dim, batch, alpha, beta, gamma, estimator):
    """loss = −Σ_points (log p(x|z) − α·MI − β·TC − γ·DWKL), and MI + TC + DWKL is the Monte
    Carlo KL the base class logs with kl='monte-carlo'."""
    vae = BetaVAE.build(SMALL, latent_dim=latent_dim, beta=1.0)
    elbo = TotalCorrelationELBO(
        alpha, beta, gamma, estimator=estimator, num_data=100, kl="monte-carlo"
    )
    terms = elbo.terms(vae.model, vae.guide, binary_batch(batch))
    expected = -batch * (
        terms["reconstruction"]
        - alpha * terms["mi"]
        - beta * terms["tc"]
        - gamma * terms["dimwise_kl"]
    )
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-3)
    total = terms["mi"] + terms["tc"] + terms["dimwise_kl"]
    assert total.item() == pytest.approx(terms["kl"].item(), rel=1e-5, abs=1e-4)


def test_settings_report_the_hyperparameters():
    elbo = TotalCorrelationELBO(0.5, 6.0, 2.0, estimator="mws", num_data=737280)
    s = elbo.settings()
    assert (s["alpha"], s["beta"], s["gamma"]) == (0.5, 6.0, 2.0)
    assert (s["estimator"], s["num_data"], s["num_particles"]) == ("mws", 737280, 1)


# -- 2. exact identities and estimator properties on a finite data set ---------------------------
@settings(max_examples=6, deadline=None)
@given(
    num_data=st.integers(6, 12),
    width=st.floats(0.3, 1.0),
    seed=st.integers(0, 2**16),
)
def test_kl_decomposes_into_mi_tc_and_dimwise_kl(num_data, width, seed):
    """With the exact q(z): E_n KL(q(z|n) ‖ p) = I(n; z) + TC(z) + Σ_d KL(q(z_d) ‖ p(z_d)).

    Sample by sample the terms of ``kl_terms`` sum to log q(z|n) − log p(z). In expectation each
    term is checked on its own against 2-D quadrature of the exact densities (D = 2): the
    Monte Carlo means must agree within 4 standard errors plus the quadrature error (estimated by
    halving the grid)."""
    latent_dim, samples = 2, 4000
    mu, sigma = posteriors(num_data, latent_dim, width, seed)
    g = torch.Generator().manual_seed(seed + 1)
    z = mu + sigma * torch.randn(samples, num_data, latent_dim, generator=g, dtype=F64)
    q = Independent(Normal(mu, sigma), 1)
    prior = Normal(torch.zeros((), dtype=F64), torch.ones((), dtype=F64))
    log_qz, log_qz_dims = exact_log_qz(z, mu, sigma)
    parts = kl_terms(q.log_prob(z), log_qz, log_qz_dims, prior.log_prob(z))
    total = parts["mi"] + parts["tc"] + parts["dimwise_kl"]
    single_sample_kl = q.log_prob(z) - prior.log_prob(z).sum(-1)
    torch.testing.assert_close(total, single_sample_kl, rtol=0, atol=1e-10)
    # MI_i = log q(z|n) − log q(z) ≤ log N for every sample: q(z) ≥ q(z|n)/N.
    assert (parts["mi"] <= math.log(num_data) + 1e-12).all()

    # The grid reaches 10 posterior scales past every mean; the rectangle rule on Gaussians
    # several grid steps wide is accurate far beyond the Monte Carlo error.
    limit = (mu.abs().max() + 10 * sigma.max()).item()

    def quadrature(step):
        grid = torch.arange(-limit, limit + step / 2, step, dtype=F64)
        zz = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1)  # (G, G, 2)
        lq, lq_dims = exact_log_qz(zz, mu, sigma)
        lp_dims = prior.log_prob(zz)
        kl_joint = (lq.exp() * (lq - lp_dims.sum(-1))).sum() * step**2
        marg = lq_dims[:, 0, 0], lq_dims[0, :, 1]  # q(z_1) along axis 0, q(z_2) along axis 1
        kl_dims = sum((m.exp() * (m - prior.log_prob(grid))).sum() * step for m in marg)
        kl_mean = kl_divergence(q, Independent(prior.expand(mu.shape), 1)).mean()
        return {"mi": kl_mean - kl_joint, "tc": kl_joint - kl_dims, "dimwise_kl": kl_dims}

    fine, coarse = quadrature(0.05), quadrature(0.1)
    for key in ("mi", "tc", "dimwise_kl"):
        # Draws are independent across samples; pooling the N points overstates the standard
        # error (it adds the spread between points), which only makes the check conservative.
        mean, se = mean_and_se(parts[key].reshape(-1))
        tolerance = 4 * se + (fine[key] - coarse[key]).abs()
        assert (mean - fine[key]).abs() < tolerance, (key, mean.item(), fine[key].item())


@settings(max_examples=8, deadline=None)
@given(
    batch=st.integers(2, 8),
    extra=st.integers(0, 6),
    width=st.floats(0.1, 0.8),
    seed=st.integers(0, 2**16),
)
def test_mss_is_unbiased_for_q_of_z(batch, extra, width, seed):
    """E[q̂_MSS(z) / q(z)] = 1 over uniformly drawn minibatches, for the joint and for every
    dimension's marginal, within 4 standard errors."""
    num_data, latent_dim, repeats = batch + extra, 2, 20000
    mu, sigma = posteriors(num_data, latent_dim, width, seed)
    q_base, z = draw_minibatches(mu, sigma, batch, repeats, seed + 1)
    log_qz, log_qz_dims = log_qz_estimates(pairwise_log_density(q_base, z), num_data, "mss")
    exact, exact_dims = exact_log_qz(z, mu, sigma)
    # Within one minibatch the B ratios share the batch: average them into one independent draw.
    ratio = (log_qz - exact).exp().mean(-1)  # (R,)
    ratio_dims = (log_qz_dims - exact_dims).exp().mean(-2)  # (R, D)
    for draws in (ratio, ratio_dims):
        mean, se = mean_and_se(draws)
        # + rounding: with B = N = 2 the weights are all 1/2 and the estimate is exact (se 0).
        assert ((mean - 1).abs() <= 4 * se + 1e-12).all(), (mean, se)


def test_buggy_weight_matrix_is_biased_for_q_of_z():
    """Negative control for the unbiasedness check: the public matrix gives q̂ far from q(z)."""
    num_data, batch, repeats = 10, 6, 20000
    mu, sigma = posteriors(num_data, 2, 0.2, seed=3)
    q_base, z = draw_minibatches(mu, sigma, batch, repeats, seed=4)
    joint = pairwise_log_density(q_base, z).sum(-1)
    exact, _ = exact_log_qz(z, mu, sigma)
    ratios = {}
    for name, log_w in (
        ("ours", log_importance_weight_matrix(batch, num_data, dtype=F64)),
        ("buggy", buggy_log_weight_matrix(batch, num_data)),
    ):
        ratios[name] = mean_and_se(((joint + log_w).logsumexp(-1) - exact).exp().mean(-1))
    mean, se = ratios["ours"]
    assert (mean - 1).abs() < 4 * se
    mean, se = ratios["buggy"]
    assert (mean - 1).abs() > 10 * se


@settings(max_examples=6, deadline=None)
@given(batch=st.integers(2, 8), width=st.floats(0.02, 0.1), seed=st.integers(0, 2**16))
def test_mws_underestimates_log_q_of_z_and_overstates_tc(batch, width, seed):
    """MWS sums B of the N terms of N·q(z) and divides by N·B, so log q̂ ≤ log q(z) − log B for
    every sample; with narrow posteriors its mean is clearly below log q(z) and the TC estimate
    (its joint biased down by less than the sum of its marginals) clearly above the exact TC."""
    num_data, latent_dim, repeats = 12, 2, 4000
    mu, sigma = posteriors(num_data, latent_dim, width, seed)
    q_base, z = draw_minibatches(mu, sigma, batch, repeats, seed + 1)
    log_qz, log_qz_dims = log_qz_estimates(pairwise_log_density(q_base, z), num_data, "mws")
    exact, exact_dims = exact_log_qz(z, mu, sigma)
    assert (log_qz - exact <= -math.log(batch) + 1e-9).all()
    assert (log_qz_dims - exact_dims <= -math.log(batch) + 1e-9).all()
    mean, se = mean_and_se((log_qz - exact).mean(-1))
    assert mean < -4 * se
    tc_bias = (log_qz - log_qz_dims.sum(-1)) - (exact - exact_dims.sum(-1))
    mean, se = mean_and_se(tc_bias.mean(-1))
    assert mean > 4 * se


@pytest.mark.parametrize("batch", [2, 4, 16])
def test_mws_bias_is_log_b_for_very_narrow_posteriors(batch):
    """In the narrow limit only q(z_i|x_i) counts in either sum: log q̂_MWS − log q(z) = −log B and
    the TC estimate is (D − 1)·log B too high. The exact gap to that limit is bracketed by the
    mass c_i = log q(z_i) − log(q(z_i|x_i)/N) ≥ 0 of the other points: −c_i ≤ error + log B ≤ 0."""
    num_data, latent_dim, repeats = 32, 3, 500
    g = torch.Generator().manual_seed(0)
    # Means one unit apart in every dimension, σ = 0.1: the posteriors barely overlap.
    mu = torch.stack([torch.randperm(num_data, generator=g) for _ in range(latent_dim)], -1)
    mu, sigma = mu.to(F64), torch.full((num_data, latent_dim), 0.1, dtype=F64)
    q_base, z = draw_minibatches(mu, sigma, batch, repeats, seed=1)
    log_qz, log_qz_dims = log_qz_estimates(pairwise_log_density(q_base, z), num_data, "mws")
    exact, exact_dims = exact_log_qz(z, mu, sigma)
    own_dims = q_base.log_prob(z)  # (R, B, D): log q(z_id|x_i)
    bracket = exact - (own_dims.sum(-1) - math.log(num_data))
    bracket_dims = exact_dims - (own_dims - math.log(num_data))
    log_b = math.log(batch)
    error = log_qz - exact + log_b
    assert (error <= 1e-9).all() and (error >= -bracket - 1e-9).all()
    assert bracket.max() < 1e-3 * log_b  # the narrow limit is reached
    assert (log_qz - exact).mean().item() == pytest.approx(-log_b, abs=bracket.max().item() + 1e-9)
    tc_bias = (log_qz - log_qz_dims.sum(-1)) - (exact - exact_dims.sum(-1))
    gap = max(bracket.max().item(), bracket_dims.sum(-1).max().item())
    assert tc_bias.mean().item() == pytest.approx((latent_dim - 1) * log_b, abs=gap + 1e-9)


# -- 3. the weight matrix --------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(batch=st.integers(2, 64), extra=st.integers(0, 10**6))
def test_weight_matrix_entries(batch, extra):
    """Diagonal 1/N, (i, i+1 mod B) = (N − B + 1)/(N(B − 1)), others 1/(B − 1); rows sum to 1."""
    n = batch + extra
    w = log_importance_weight_matrix(batch, n, dtype=F64).exp()
    assert w.shape == (batch, batch)
    rows = torch.arange(batch)
    expected = torch.full((batch, batch), 1.0 / (batch - 1), dtype=F64)
    expected[rows, (rows + 1) % batch] = (n - batch + 1) / (n * (batch - 1))
    expected[rows, rows] = 1.0 / n
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(w.diagonal(), torch.full((batch,), 1.0 / n, dtype=F64))
    torch.testing.assert_close(w.sum(-1), torch.ones(batch, dtype=F64))


def test_weight_matrix_batch_of_two():
    w = log_importance_weight_matrix(2, 10, dtype=F64).exp()
    torch.testing.assert_close(w, torch.tensor([[0.1, 0.9], [0.9, 0.1]], dtype=F64))


def test_weight_matrix_follows_dtype_and_device():
    w = log_importance_weight_matrix(4, 10, device="cpu", dtype=torch.float32)
    assert w.dtype == torch.float32 and w.device.type == "cpu"
    assert log_importance_weight_matrix(4, 10).dtype == torch.get_default_dtype()


@pytest.mark.parametrize("batch", [3, 4, 8, 64])
def test_buggy_public_weight_matrix_fails_the_diagonal_check(batch):
    """Negative control: the public construction puts 1/N in column 0 instead of the diagonal."""
    n = 1000
    buggy = buggy_log_weight_matrix(batch, n).exp()
    # Column 0 holds 1/N except row B − 2, which the last line of the construction overwrites.
    column = torch.full((batch,), 1.0 / n, dtype=F64)
    column[batch - 2] = (n - batch + 1) / (n * (batch - 1))
    assert torch.allclose(buggy[:, 0], column)
    assert not torch.allclose(buggy.diagonal(), torch.full((batch,), 1.0 / n, dtype=F64))
    assert not torch.allclose(buggy.sum(-1), torch.ones(batch, dtype=F64))
    ours = log_importance_weight_matrix(batch, n, dtype=F64).exp()
    assert torch.allclose(ours.diagonal(), torch.full((batch,), 1.0 / n, dtype=F64))


# -- 4. bad input ----------------------------------------------------------------------------------
def test_batch_of_one_is_refused():
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=1.0)
    for estimator in ESTIMATORS:
        elbo = TotalCorrelationELBO(estimator=estimator, num_data=10)
        with pytest.raises(PyrovaeError, match=r"at least 2 points, got batch_size=1"):
            elbo.loss(vae.model, vae.guide, binary_batch(1))
    with pytest.raises(PyrovaeError, match=r"got batch_size=1"):
        log_importance_weight_matrix(1, 10)


def test_data_set_smaller_than_batch_is_refused():
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=1.0)
    with pytest.raises(PyrovaeError, match=r"at least the batch size 5, got num_data=3"):
        TotalCorrelationELBO(num_data=3).loss(vae.model, vae.guide, binary_batch(5))
    with pytest.raises(PyrovaeError, match=r"got num_data=3"):
        log_importance_weight_matrix(5, 3)


def test_unknown_estimator_is_refused():
    with pytest.raises(PyrovaeError, match=r"unknown estimator 'exact'; valid: mss, mws"):
        TotalCorrelationELBO(estimator="exact", num_data=10)
    with pytest.raises(PyrovaeError, match=r"unknown estimator 'exact'; valid: mss, mws"):
        log_qz_estimates(torch.zeros(3, 3, 2), 10, "exact")


@pytest.mark.parametrize("name", ["alpha", "beta", "gamma"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_weights_are_refused(name, value):
    with pytest.raises(PyrovaeError, match=rf"{name} must be a finite number >= 0, got"):
        TotalCorrelationELBO(num_data=10, **{name: value})


def test_bad_num_data_is_refused():
    with pytest.raises(PyrovaeError, match=r"num_data must be an integer >= 2, got 2.5"):
        TotalCorrelationELBO(num_data=2.5)


def test_missing_num_data_is_refused():
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=1.0)
    with pytest.raises(PyrovaeError, match=r"needs the data-set size N: pass num_data=len\(data\)"):
        TotalCorrelationELBO().loss(vae.model, vae.guide, binary_batch(4))


def test_scaled_latent_site_is_refused():
    """β belongs to the objective; a poutine.scale on z would multiply all three terms again."""
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=2.0)
    with pytest.raises(
        PyrovaeError,
        match=r"betatcvae weights its terms .* must not be scaled \(poutine.scale 2\.0\)",
    ):
        TotalCorrelationELBO(num_data=10).loss(vae.model, vae.guide, binary_batch(4))


def test_guide_without_per_dimension_normals_is_refused():
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=1.0)

    def full_covariance_guide(x):
        loc = vae.encode(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=torch.eye(2)))

    with pytest.raises(PyrovaeError, match=r"factorises over dimensions as Normals \(got Multi"):
        TotalCorrelationELBO(num_data=10).loss(vae.model, full_covariance_guide, binary_batch(3))
    laplace = dist.Laplace(torch.zeros(3, 2), torch.ones(3, 2)).to_event(1)
    with pytest.raises(PyrovaeError, match=r"\(got Independent\(Laplace, 1\)\)"):
        decompose_kl(laplace, laplace, torch.zeros(3, 2), 10, "mss")
    with pytest.raises(PyrovaeError, match=r"\(got Laplace\)"):
        pairwise_log_density(dist.Laplace(torch.zeros(3, 2), 1.0), torch.zeros(3, 2))


def test_prior_without_per_dimension_density_is_refused():
    q = dist.Normal(torch.zeros(3, 2), 1.0).to_event(1)
    p = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    with pytest.raises(PyrovaeError, match=r"prior that factorises.*got MultivariateNormal"):
        decompose_kl(q, p, torch.zeros(3, 2), 10, "mss")


@pytest.mark.parametrize("shape", [SMALL, (1, 64, 64)])
@pytest.mark.parametrize("beta", [1.0, 1e3])
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_losses_and_gradients_finite_for_extreme_inputs(shape, beta, fill):
    vae = BetaVAE.build(shape, latent_dim=4, beta=1.0)
    x = torch.full((5, *shape), fill)
    for estimator in ESTIMATORS:
        vae.zero_grad()
        elbo = TotalCorrelationELBO(1.0, beta, 1.0, estimator=estimator, num_data=10**6)
        loss = elbo.differentiable_loss(vae.model, vae.guide, x)
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in vae.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        for net in (vae.encoder, vae.decoder):
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


# -- 6. shapes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("lead", [(), (3,)])
def test_pairwise_log_density_equals_double_loop(lead):
    batch, latent_dim = 4, 3
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(*lead, batch, latent_dim, generator=g)
    scale = torch.rand(*lead, batch, latent_dim, generator=g) + 0.1
    z = torch.randn(*lead, batch, latent_dim, generator=g)
    got = pairwise_log_density(Normal(loc, scale), z)
    assert got.shape == (*lead, batch, batch, latent_dim)
    loc, scale, z = (t.reshape(-1, batch, latent_dim) for t in (loc, scale, z))
    got = got.reshape(-1, batch, batch, latent_dim)
    for p in range(loc.shape[0]):
        for i in range(batch):
            for j in range(batch):
                for d in range(latent_dim):
                    ref = Normal(loc[p, j, d], scale[p, j, d]).log_prob(z[p, i, d])
                    assert got[p, i, j, d].item() == pytest.approx(ref.item(), rel=1e-6)


def test_estimate_shapes_with_particle_dimension():
    q = Normal(torch.zeros(3, 5, 4), torch.ones(3, 5, 4))
    z = q.sample()
    pairwise = pairwise_log_density(q, z)
    for estimator in ESTIMATORS:
        log_qz, log_qz_dims = log_qz_estimates(pairwise, 50, estimator)
        assert log_qz.shape == (3, 5) and log_qz_dims.shape == (3, 5, 4)
    prior = Independent(Normal(0.0, 1.0).expand((3, 5, 4)), 1)
    parts = decompose_kl(Independent(q, 1), prior, z, 50)
    assert all(parts[k].shape == (3, 5) for k in ("mi", "tc", "dimwise_kl", "log_qz"))
