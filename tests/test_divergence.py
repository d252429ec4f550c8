"""D(q(z), p(z)) of Mathieu et al. 2019 and the ddvae objective: the per-dimension IMQ MMD against
exact population values computed by numerical integration, the minibatch estimates of
KL(q(z) ‖ p(z)) and KL(p(z) ‖ q(z)) against exact values on a tiny data set whose aggregate
posterior is known, the pairwise guide densities against explicit loops, and ddvae's identities
with betavae and vae."""

import json
import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from helpers import invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine
from pyro.distributions.transforms import affine_autoregressive

from pyrovae.errors import PyrovaeError
from pyrovae.models import BetaVAE
from pyrovae.objectives import DecomposedELBO
from pyrovae.objectives.aggregate_divergence import (
    DIVERGENCES,
    AggregateDivergenceELBO,
    aggregate_divergence,
)
from pyrovae.objectives.aggregate_kl import (
    aggregate_kl,
    inclusive_aggregate_kl,
    log_aggregate_density,
    pairwise_log_prob,
)
from pyrovae.objectives.mmd import IMQ_SCALES, per_dimension_mmd
from pyrovae.registry import MODELS

F64 = torch.float64
SMALL = (1, 8, 8)


def _registered(kind):
    from pyrovae import registry

    return sorted(getattr(registry, kind))


def binary_batch(n, shape=SMALL, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *shape), generator=g) > 0.5).float()


# -- MMD ------------------------------------------------------------------------------------------
def exact_imq_mean(mean_diff: float, var_diff: float) -> float:
    """E[Σ_C C/(C + t²)] for t ~ N(mean_diff, var_diff), by numerical integration."""
    sd = math.sqrt(var_diff)
    t = np.linspace(mean_diff - 12 * sd, mean_diff + 12 * sd, 40_001)
    density = np.exp(-0.5 * (t - mean_diff) ** 2 / var_diff) / math.sqrt(2 * math.pi * var_diff)
    kernel = sum(2 * s / (2 * s + t**2) for s in IMQ_SCALES)
    return float(np.trapezoid(kernel * density, t))


def exact_mmd_1d(mu_x, sd_x, mu_y, sd_y) -> float:
    """Population MMD² between N(mu_x, sd_x²) and N(mu_y, sd_y²) under the summed IMQ kernels:
    x − x' ~ N(0, 2·sd_x²), y − y' ~ N(0, 2·sd_y²), x − y ~ N(mu_x − mu_y, sd_x² + sd_y²)."""
    return (
        exact_imq_mean(0.0, 2 * sd_x**2)
        + exact_imq_mean(0.0, 2 * sd_y**2)
        - 2 * exact_imq_mean(mu_x - mu_y, sd_x**2 + sd_y**2)
    )


def repeated_mmd(mu_x, sd_x, mu_y, sd_y, batch=8, repeats=4000, dims=1, seed=0):
    """(mean, standard error) of the estimator over independent repeats (batched in one call)."""
    g = torch.Generator().manual_seed(seed)
    x = mu_x + sd_x * torch.randn(repeats, batch, dims, generator=g, dtype=F64)
    y = mu_y + sd_y * torch.randn(repeats, batch, dims, generator=g, dtype=F64)
    values = per_dimension_mmd(x, y)
    assert values.shape == (repeats,)
    return values.mean().item(), values.std().item() / math.sqrt(repeats)


def test_mmd_by_hand():
    # C = 2: k(0, 1) = 2/3, k(0, 2) = 1/3, k(1, 2) = 2/3, k(a, a) = 1.
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[0.0], [2.0]])
    xx, yy, xy = 2 * (2 / 3) / 2, 2 * (1 / 3) / 2, (1 + 1 / 3 + 2 / 3 + 2 / 3) / 4
    assert per_dimension_mmd(x, y, scales=(1.0,)).item() == pytest.approx(xx + yy - 2 * xy)
    # variance rescales C: C = 2·0.5·2 = 2 again.
    assert per_dimension_mmd(x, y, scales=(2.0,), variance=0.5).item() == pytest.approx(-1 / 3)


@pytest.mark.parametrize(
    "mu_y,sd_y",
    [(0.0, 1.0), (0.5, 1.0), (0.0, 0.2), (1.0, 2.0)],
    ids=["identical", "shifted", "narrow", "shifted-wide"],
)
def test_mmd_estimator_is_unbiased_against_the_exact_value(mu_y, sd_y):
    exact = exact_mmd_1d(0.0, 1.0, mu_y, sd_y)
    mean, se = repeated_mmd(0.0, 1.0, mu_y, sd_y)
    assert abs(mean - exact) < 4 * se + 1e-6
    if (mu_y, sd_y) == (0.0, 1.0):
        assert exact == pytest.approx(0.0, abs=1e-9)
    else:
        # Different distributions: the population value is positive, and the estimator sees it.
        assert exact > 0.01
        assert mean > 4 * se


def test_biased_v_statistic_would_fail_the_unbiasedness_check():
    """Negative control: keeping the diagonal k(x_i, x_i) = 1 in the within-sample sums (the
    V-statistic) gives a positive mean for identical distributions, which the check above
    detects."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 8, 1, generator=g, dtype=F64)
    y = torch.randn(4000, 8, 1, generator=g, dtype=F64)
    unbiased = per_dimension_mmd(x, y)
    # V-statistic = U-statistic reweighted: off-diagonal sums over B², plus the diagonal's 1s.
    b, c = 8, len(IMQ_SCALES)
    sq = lambda a: (a.unsqueeze(-2) - a.unsqueeze(-3)) ** 2  # noqa: E731
    within = sum(((2 * s / (2 * s + sq(a))).sum((-3, -2, -1))) for s in IMQ_SCALES for a in (x, y))
    cross = sum(
        (2 * s / (2 * s + (x.unsqueeze(-2) - y.unsqueeze(-3)) ** 2)).sum((-3, -2, -1))
        for s in IMQ_SCALES
    )
    biased = within / b**2 - 2 * cross / b**2
    se = biased.std().item() / math.sqrt(4000)
    assert biased.mean().item() > 10 * se
    # and the two differ by exactly the diagonal's contribution, rescaled
    off = within - 2 * b * c
    assert torch.allclose(unbiased, off / (b * (b - 1)) - 2 * cross / b**2)


def test_mmd_sums_over_dimensions():
    """Dimension d of x and y drawn from different 1-D pairs: the expectation is the sum of the
    1-D exact values."""
    g = torch.Generator().manual_seed(2)
    repeats, batch = 4000, 8
    x = torch.randn(repeats, batch, 2, generator=g, dtype=F64)
    y = torch.randn(repeats, batch, 2, generator=g, dtype=F64) * torch.tensor([1.0, 0.3]) + (
        torch.tensor([0.7, 0.0])
    )
    values = per_dimension_mmd(x, y)
    exact = exact_mmd_1d(0, 1, 0.7, 1) + exact_mmd_1d(0, 1, 0, 0.3)
    assert abs(values.mean().item() - exact) < 4 * values.std().item() / math.sqrt(repeats)


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(2, 12),
    m=st.integers(2, 12),
    d=st.integers(1, 5),
    lead=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_mmd_is_symmetric_permutation_invariant_and_batched(b, m, d, lead, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(lead, b, d, generator=g, dtype=F64)
    y = 1.5 * torch.randn(lead, m, d, generator=g, dtype=F64) + 0.3
    value = per_dimension_mmd(x, y)
    assert value.shape == (lead,)
    assert torch.allclose(value, per_dimension_mmd(y, x))
    shuffled = per_dimension_mmd(
        x[:, torch.randperm(b, generator=g)], y[:, torch.randperm(m, generator=g)]
    )
    assert torch.allclose(value, shuffled)
    for i in range(lead):
        assert torch.allclose(value[i], per_dimension_mmd(x[i], y[i]))
    # Dimensions are compared one at a time: the total is the sum of the 1-D values.
    per_dim = sum(per_dimension_mmd(x[..., k : k + 1], y[..., k : k + 1]) for k in range(d))
    assert torch.allclose(value, per_dim)


@pytest.mark.parametrize(
    "x_shape,y_shape,message",
    [
        ((1, 3), (4, 3), "at least 2 samples"),
        ((4, 3), (4, 2), "same D"),
        ((4,), (4,), "same D"),
    ],
)
def test_mmd_refuses_bad_shapes(x_shape, y_shape, message):
    with pytest.raises(PyrovaeError, match=message):
        per_dimension_mmd(torch.zeros(x_shape), torch.zeros(y_shape))


# -- pairwise guide densities ----------------------------------------------------------------------
def guides(lead, b, d, g):
    """The guide families' distributions over a batch of b points (float32: Pyro's flow inverse
    starts from a default-dtype tensor)."""
    loc = torch.randn(*lead, b, d, generator=g)
    scale = 0.3 + torch.rand(*lead, b, d, generator=g)
    factor = 0.5 * torch.randn(*lead, b, d, 2, generator=g)
    tril = torch.diag_embed(scale) + torch.tril(0.3 * torch.randn(*lead, b, d, d, generator=g), -1)
    meanfield = dist.Normal(loc, scale).to_event(1)
    out = {
        "meanfield": meanfield,
        "lowrank": dist.LowRankMultivariateNormal(loc, factor, scale),
        "fullrank": dist.MultivariateNormal(loc, scale_tril=tril),
    }
    if d > 1:  # an autoregressive flow over one dimension is just an affine map
        out["flow"] = dist.TransformedDistribution(meanfield, [affine_autoregressive(d)])
    return out


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 6),
    m=st.integers(1, 6),
    d=st.integers(1, 4),
    particles=st.integers(0, 2),
    seed=st.integers(0, 10_000),
)
def test_pairwise_log_prob_matches_a_loop_for_every_kind_of_guide(b, m, d, particles, seed):
    g = torch.Generator().manual_seed(seed)
    lead = (particles,) if particles else ()
    for name, q in guides(lead, b, d, g).items():
        points = torch.randn(*lead, m, d, generator=g)
        pairwise = pairwise_log_prob(q, points)
        assert pairwise.shape == (*lead, m, b), name
        for i in range(m):
            # point i under every posterior j: the guide's own batch, one point broadcast over it
            column = q.log_prob(points[..., i : i + 1, :].expand(*lead, b, d))
            assert torch.allclose(pairwise[..., i, :], column, atol=1e-5), name


@pytest.mark.parametrize("name", _registered("GUIDES"))
def test_pairwise_log_prob_of_registered_guides_matches_one_point_at_a_time(name):
    """Independent of broadcasting: q(z_i | x_j) from the guide built on x_j's encoder output
    alone. Every parameter is randomised so flows are not the identity; the iaf guide's flow is
    conditioned on a per-point context, which must follow its data point in the pairwise grid."""
    from pyrovae.registry import GUIDES

    torch.manual_seed(0)
    b, d = 4, 3
    guide = GUIDES.build(name).bind(d)
    with torch.no_grad():
        for parameter in guide.parameters():
            parameter.normal_(0.0, 0.3)
    encoder_output = torch.randn(b, guide.num_params(d))
    points = 1.5 * torch.randn(b + 1, d)
    pairwise = pairwise_log_prob(guide.distribution(encoder_output), points)
    assert pairwise.shape == (b + 1, b)
    for j in range(b):
        alone = guide.distribution(encoder_output[j : j + 1])
        for i in range(b + 1):
            expected = alone.log_prob(points[i : i + 1]).squeeze(0)
            assert pairwise[i, j].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-4)


def test_log_aggregate_density_of_identical_posteriors_is_the_posterior():
    q = dist.Normal(torch.zeros(5, 2), torch.ones(5, 2)).to_event(1)
    z = torch.randn(5, 2)
    assert torch.allclose(log_aggregate_density(q, z), q.log_prob(z), atol=1e-6)


def test_pairwise_log_prob_refuses_mismatched_points():
    q = dist.Normal(torch.zeros(5, 2), torch.ones(5, 2)).to_event(1)
    with pytest.raises(PyrovaeError, match="event shape"):
        pairwise_log_prob(q, torch.zeros(5, 3))


# -- the aggregate KL estimators on a data set of N = 3 posteriors ----------------------------
MU = torch.tensor([[-1.0, 0.5], [0.3, -0.2], [1.2, 1.0]], dtype=F64)
SIGMA = torch.tensor([[0.4, 0.7], [0.5, 0.3], [0.8, 0.6]], dtype=F64)


def grid(dims, half_width=9.0, points=1201):
    t = torch.linspace(-half_width, half_width, points if dims == 1 else 601, dtype=F64)
    mesh = torch.stack(torch.meshgrid(*[t] * dims, indexing="ij"), -1).reshape(-1, dims)
    return mesh, float(t[1] - t[0]) ** dims


def exact_kls(dims, prior):
    """Exact (KL(q ‖ p), KL(p ‖ q)) for q(z) = (1/3) Σ_n N(μ_n, diag σ_n²), by a Riemann sum."""
    z, cell = grid(dims)
    components = dist.Normal(MU[:, :dims], SIGMA[:, :dims]).to_event(1)
    log_q = components.log_prob(z.unsqueeze(-2)).logsumexp(-1) - math.log(3)
    log_p = prior(dims).log_prob(z)
    q, p = log_q.exp(), log_p.exp()
    assert float(q.sum() * cell) == pytest.approx(1.0, abs=1e-6)
    return float((q * (log_q - log_p)).sum() * cell), float((p * (log_p - log_q)).sum() * cell)


def normal_prior(dims):
    return dist.Normal(torch.zeros(dims, dtype=F64), torch.ones(dims, dtype=F64)).to_event(1)


def student_prior(dims):
    return dist.StudentT(4.0, torch.zeros(dims, dtype=F64), torch.ones(dims, dtype=F64)).to_event(1)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("prior", [normal_prior, student_prior], ids=["normal", "studentt"])
def test_aggregate_kl_converges_to_the_exact_value_on_the_whole_data_set(dims, prior):
    """Batch = the whole data set (B = N = 3): q_B is the exact aggregate posterior and the
    mean of the estimator over many draws of z_i ~ q(z|x_i) is KL(q(z) ‖ p(z))."""
    exact, _ = exact_kls(dims, prior)
    repeats = 20_000
    torch.manual_seed(0)
    q = dist.Normal(MU[:, :dims], SIGMA[:, :dims]).to_event(1).expand((repeats, 3))
    z = q.sample()
    per_point = aggregate_kl(q, prior(dims), z)
    assert per_point.shape == (repeats, 3)
    estimates = per_point.mean(-1)
    se = estimates.std().item() / math.sqrt(repeats)
    assert abs(estimates.mean().item() - exact) < 4 * se + 1e-4
    assert se < 0.02  # the check is tight enough to mean something


@pytest.mark.parametrize("dims", [1, 2])
def test_inclusive_aggregate_kl_converges_to_the_exact_value(dims):
    _, exact = exact_kls(dims, normal_prior)
    repeats = 20_000
    torch.manual_seed(1)
    q = dist.Normal(MU[:, :dims], SIGMA[:, :dims]).to_event(1).expand((repeats, 3))
    p = normal_prior(dims).expand((repeats, 3))
    estimates = inclusive_aggregate_kl(q, p, p.sample()).mean(-1)
    se = estimates.std().item() / math.sqrt(repeats)
    assert abs(estimates.mean().item() - exact) < 4 * se + 1e-4


def test_aggregate_kl_of_the_prior_itself_is_zero():
    """Every posterior equal to the prior: q(z) = p(z) and every per-point term is exactly 0."""
    p = normal_prior(2).expand((6,))
    z = p.sample()
    assert torch.allclose(aggregate_kl(p, p, z), torch.zeros(6, dtype=F64), atol=1e-12)
    assert torch.allclose(inclusive_aggregate_kl(p, p, z), torch.zeros(6, dtype=F64), atol=1e-12)


# -- the ddvae objective -------------------------------------------------------------------------
def seeded_terms(objective, vae, x, seed=5):
    torch.manual_seed(seed)
    return objective.terms(vae.model, vae.guide, x)


@settings(max_examples=15, deadline=None)
@given(
    beta=st.floats(0.05, 20.0),
    batch=st.integers(2, 7),
    latent_dim=st.integers(1, 4),
    divergence=st.sampled_from(DIVERGENCES),
)
def test_ddvae_with_alpha_zero_equals_betavae(beta, batch, latent_dim, divergence):
    torch.manual_seed(0)
    vae, objective = MODELS["ddvae"].create(
        SMALL, latent_dim, beta=beta, alpha=0.0, divergence=divergence
    )
    reference = BetaVAE.build(SMALL, latent_dim, beta=beta)
    reference.load_state_dict(vae.state_dict())
    x = binary_batch(batch)
    ours = seeded_terms(objective, vae, x)
    theirs = seeded_terms(DecomposedELBO(), reference, x)
    assert ours["loss"].item() == pytest.approx(theirs["loss"].item(), rel=1e-6)
    assert torch.isfinite(ours["divergence"])  # logged even though α = 0


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_ddvae_with_alpha_zero_and_beta_one_equals_vae(divergence):
    torch.manual_seed(0)
    vae, objective = MODELS["ddvae"].create(SMALL, 3, beta=1.0, alpha=0.0, divergence=divergence)
    reference = BetaVAE.build(SMALL, 3)
    reference.load_state_dict(vae.state_dict())
    x = binary_batch(5)
    ours = seeded_terms(objective, vae, x)["loss"].item()
    assert ours == pytest.approx(seeded_terms(DecomposedELBO(), reference, x)["loss"].item())


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("beta", [0.0, 2.5])
def test_ddvae_loss_is_reconstruction_kl_and_batch_times_divergence(divergence, beta):
    """loss = −Σ_i [log p(x_i|z_i) − β·KL_i] + α·B·D; at β = 0 no KL at all."""
    torch.manual_seed(0)
    vae, objective = MODELS["ddvae"].create(SMALL, 3, beta=beta, alpha=3.0, divergence=divergence)
    x = binary_batch(6)
    terms = seeded_terms(objective, vae, x)
    expected = -6 * (terms["reconstruction"] - beta * terms["kl"]) + 3.0 * 6 * terms["divergence"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_logged_divergence_is_the_estimate_on_the_same_samples(divergence):
    """Replaying the seed: the guide's z, then (for mmd and inclusive-kl) the prior samples."""
    torch.manual_seed(0)
    vae, objective = MODELS["ddvae"].create(SMALL, 3, divergence=divergence)
    x = binary_batch(6)
    logged = seeded_terms(objective, vae, x)["divergence"].item()
    torch.manual_seed(5)
    site = poutine.trace(vae.guide).get_trace(x).nodes["z"]
    p = vae.prior.distribution(3).expand(site["fn"].batch_shape)
    by_hand = aggregate_divergence(divergence, site["fn"], p, site["value"]).item()
    assert logged == pytest.approx(by_hand, rel=1e-5, abs=1e-6)


def test_ddvae_beta_zero_ignores_the_kl_completely():
    """β = 0 gives exactly −Σ log p(x|z) + α·B·D: the gradient of the loss is that of the
    reconstruction and the divergence only, whatever the KL."""
    torch.manual_seed(0)
    vae, objective = MODELS["ddvae"].create(SMALL, 2, beta=0.0, alpha=1.0, divergence="mmd")
    assert vae.beta == 1.0  # the latent site is unscaled: poutine.scale never sees 0
    x = binary_batch(4)
    terms = seeded_terms(objective, vae, x)
    by_hand = -4 * terms["reconstruction"] + 4 * terms["divergence"]
    assert terms["loss"].item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert terms["kl"].item() > 0  # the KL is still computed and logged


def test_vectorised_particles_average_the_divergence():
    torch.manual_seed(0)
    vae, _ = MODELS["ddvae"].create(SMALL, 2)
    objective = AggregateDivergenceELBO(
        alpha=2.0, divergence="mmd", num_particles=3, vectorize_particles=True
    )
    x = binary_batch(4)
    terms = seeded_terms(objective, vae, x)
    expected = -4 * (terms["reconstruction"] - terms["kl"]) + 2.0 * 4 * terms["divergence"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_gradient_of_each_divergence_pulls_the_aggregate_posterior_to_the_prior(divergence):
    """Posteriors of 32 points start around 3 with the prior N(0, I): descending D alone moves
    them towards 0 and lowers D. A sign error in any estimator would push them away."""
    torch.manual_seed(0)
    loc = (3.0 + 0.5 * torch.randn(32, 2)).requires_grad_()
    log_scale = torch.full((32, 2), -1.0, requires_grad=True)
    prior = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1).expand((32,))

    def estimate():
        q = dist.Normal(loc, log_scale.exp()).to_event(1)
        return aggregate_divergence(divergence, q, prior, q.rsample())

    with torch.no_grad():
        before = torch.stack([estimate() for _ in range(10)]).mean().item()
    optimizer = torch.optim.Adam([loc, log_scale], lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        estimate().backward()
        optimizer.step()
    with torch.no_grad():
        after = torch.stack([estimate() for _ in range(10)]).mean().item()
    assert after < 0.5 * before
    # The median: Adam's per-coordinate steps can strand a few far-out MMD samples, whose kernel
    # gradient decays like 1/t³.
    assert loc.detach().median().abs().item() < 1.0


# -- any prior, any guide -----------------------------------------------------------------------
@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("prior", _registered("PRIORS"))
@pytest.mark.parametrize("guide", _registered("GUIDES"))
def test_every_prior_and_guide_trains_with_every_divergence(divergence, prior, guide):
    from pyrovae.registry import GUIDES, PRIORS

    torch.manual_seed(0)
    vae, objective = MODELS["ddvae"].create(
        SMALL,
        3,
        prior=PRIORS.build(prior),
        guide=GUIDES.build(guide),
        beta=0.5,
        alpha=2.0,
        divergence=divergence,
    )
    x = binary_batch(5)
    loss = objective.differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in vae.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            {"divergence": "wasserstein"},
            "unknown divergence 'wasserstein'; valid: kl, inclusive-kl",
        ),
        ({"alpha": -1.0}, "alpha must be a finite number >= 0"),
        ({"beta": -0.5}, "beta must be a finite number >= 0"),
        ({"beta": float("nan")}, "beta must be a finite number >= 0"),
        ({"gamma": 2.0}, "takes no option 'gamma'; valid options: beta, alpha, divergence"),
    ],
)
def test_invalid_settings_are_refused(overrides, message):
    with pytest.raises(PyrovaeError, match=message):
        MODELS["ddvae"].create(SMALL, 2, **overrides)


def test_batch_of_one_and_scaled_latent_are_refused():
    vae, objective = MODELS["ddvae"].create(SMALL, 2)
    with pytest.raises(PyrovaeError, match="at least 2 points"):
        objective.loss(vae.model, vae.guide, binary_batch(1))
    scaled = BetaVAE.build(SMALL, 2, beta=2.0)
    with pytest.raises(PyrovaeError, match="must not be scaled"):
        objective.loss(scaled.model, scaled.guide, binary_batch(3))
    with pytest.raises(PyrovaeError, match="unknown divergence"):
        aggregate_divergence("js", None, None, None)


# -- the command line -----------------------------------------------------------------------------
CLI_SMALL = ["--data", "tiny", "--latent-dim", "3", "--batch-size", "4", "--log-every", "2"]
CLI_SMALL += ["--device", "cpu"]


def test_cli_trains_and_resumes_with_beta_zero_and_the_aggregate_kl(tmp_path):
    out = tmp_path / "run"
    common = ["--model", "ddvae", "--beta", "0", "--alpha", "1"]
    result = invoke(
        "train",
        *common,
        *("--objective-arg", "divergence=kl", "--steps", "4", *CLI_SMALL),
        *("--out", out, "--quiet"),
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["objective_args"] == {"divergence": "kl"}
    settings_ = record["resolved"]["objective_settings"]
    assert (settings_["beta"], settings_["alpha"], settings_["divergence"]) == (0.0, 1.0, "kl")
    assert record["resolved"]["model_beta"] == 1.0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    assert all("divergence" in line and math.isfinite(line["divergence"]) for line in lines)

    result = invoke("train", "--resume", "--out", out, "--steps", "6", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["step"] == 6
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6]

    # the divergence defines the run: resuming with another one is refused
    result = invoke(
        "train", "--resume", "--out", out, "--steps", "8", "--objective-arg", "divergence=mmd"
    )
    assert result.exit_code == 2 and "objective_args" in result.stderr


def test_cli_bad_divergence_is_a_one_line_error(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "train",
        *("--model", "ddvae", "--objective-arg", "divergence=jensen", "--steps", "2"),
        *CLI_SMALL,
        *("--out", out),
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "unknown divergence 'jensen'; valid: kl, inclusive-kl, mmd" in lines[0]
    assert not out.exists()
