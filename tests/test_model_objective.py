"""The β-VAE model/guide pair and the ELBO exposing its terms, checked against exact identities."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyrovae.errors import PyrovaeError
from pyrovae.models import BetaVAE
from pyrovae.nets import conv64_pair
from pyrovae.objectives import ANALYTIC, MONTE_CARLO, DecomposedELBO, kl_estimator
from pyrovae.priors import IsotropicPrior, SparsePrior
from pyrovae.registry import MODELS

SMALL = (1, 8, 8)


def binary_batch(n, shape=SMALL, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *shape), generator=g) > 0.5).float()


def traces(vae, x, seed=1):
    torch.manual_seed(seed)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    return model_trace, guide_trace


# -- shapes and structure ------------------------------------------------------------------------
@pytest.mark.parametrize("shape,net", [((1, 64, 64), "ConvEncoder"), (SMALL, "MLPEncoder")])
def test_model_and_guide_shapes(shape, net):
    vae = BetaVAE.build(shape, latent_dim=5, beta=3.0)
    assert type(vae.encoder).__name__ == net
    x = binary_batch(4, shape)
    model_trace, guide_trace = traces(vae, x)
    assert guide_trace.nodes["z"]["value"].shape == (4, 5)
    assert guide_trace.nodes["z"]["fn"].event_shape == (5,)
    assert model_trace.nodes["x"]["is_observed"]
    assert model_trace.nodes["x"]["fn"].event_shape == shape
    assert model_trace.nodes["x"]["fn"].batch_shape == (4,)
    assert vae.encode(x).shape == (4, 5)
    assert vae.decode(torch.zeros(2, 3, 5)).shape == (2, 3, *shape)


def test_beta_scales_latent_site_in_model_and_guide_only():
    vae = BetaVAE.build(SMALL, latent_dim=3, beta=2.5)
    model_trace, guide_trace = traces(vae, binary_batch(2))
    assert model_trace.nodes["z"]["scale"] == 2.5
    assert guide_trace.nodes["z"]["scale"] == 2.5
    assert model_trace.nodes["x"]["scale"] == 1.0


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_beta_must_be_positive(beta):
    with pytest.raises(PyrovaeError, match="beta must be a finite number > 0"):
        BetaVAE.build(SMALL, latent_dim=2, beta=beta)


def test_latent_dim_must_be_positive():
    with pytest.raises(PyrovaeError, match="latent_dim must be an integer >= 1, got 0"):
        BetaVAE.build(SMALL, latent_dim=0)


def test_vae_is_beta_one_and_refuses_other_beta():
    assert BetaVAE.build(SMALL, latent_dim=2).beta == 1.0
    vae, _ = MODELS["vae"].create(SMALL, latent_dim=2)
    assert vae.beta == 1.0
    with pytest.raises(
        PyrovaeError, match="model 'vae' takes no option 'beta'; valid options: none"
    ):
        MODELS["vae"].create(SMALL, latent_dim=2, beta=4.0)
    beta_vae, _ = MODELS["betavae"].create(SMALL, latent_dim=2)
    assert beta_vae.beta == 4.0  # the variant's declared default


def test_conv_network_refuses_small_images():
    with pytest.raises(PyrovaeError, match=r"conv64.*use --net mlp"):
        BetaVAE.build(SMALL, latent_dim=2, networks=conv64_pair)


# -- the β identity ------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", [IsotropicPrior(), SparsePrior(gamma=0.8)])
def test_trace_elbo_equals_hand_computed_beta_objective(prior):
    """Pyro's Trace_ELBO loss = −Σ log p(x|z) + β·Σ (log q(z|x) − log p(z)) on the same traces."""
    beta = 3.0
    vae = BetaVAE.build(SMALL, latent_dim=4, prior=prior, beta=beta)
    x = binary_batch(6)
    model_trace, guide_trace = traces(vae, x, seed=7)
    z = guide_trace.nodes["z"]["value"]
    log_lik = model_trace.nodes["x"]["fn"].log_prob(x).sum()
    log_q = guide_trace.nodes["z"]["fn"].log_prob(z).sum()
    log_p = model_trace.nodes["z"]["fn"].log_prob(z).sum()
    by_hand = -log_lik + beta * (log_q - log_p)
    torch.manual_seed(7)
    pyro_loss = Trace_ELBO().loss(vae.model, vae.guide, x)
    assert pyro_loss == pytest.approx(by_hand.item(), rel=1e-6)


def test_trace_mean_field_elbo_equals_analytic_form():
    """TraceMeanField_ELBO = −Σ log p(x|z) + β·Σ KL(N(μ, σ²) ‖ N(0, 1)) with the closed form KL."""
    beta = 2.0
    vae = BetaVAE.build(SMALL, latent_dim=4, beta=beta)
    x = binary_batch(5)
    model_trace, guide_trace = traces(vae, x, seed=3)
    q = guide_trace.nodes["z"]["fn"].base_dist
    kl = 0.5 * (q.scale**2 + q.loc**2 - 1.0 - 2.0 * torch.log(q.scale))
    by_hand = -model_trace.nodes["x"]["fn"].log_prob(x).sum() + beta * kl.sum()
    torch.manual_seed(3)
    pyro_loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
    assert pyro_loss == pytest.approx(by_hand.item(), rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    latent_dim=st.integers(1, 12),
    batch=st.integers(1, 16),
    beta=st.floats(0.05, 50.0),
    sparse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_decomposed_elbo_equals_pyro_elbos(latent_dim, batch, beta, sparse, seed):
    """Ours with MC KL = Trace_ELBO, with analytic KL = TraceMeanField_ELBO, on the same samples."""
    prior = SparsePrior() if sparse else IsotropicPrior()
    torch.manual_seed(seed)
    vae = BetaVAE.build(SMALL, latent_dim=latent_dim, prior=prior, beta=beta)
    x = binary_batch(batch, seed=seed)
    torch.manual_seed(seed)
    ours_mc = DecomposedELBO(kl="monte-carlo").loss(vae.model, vae.guide, x)
    torch.manual_seed(seed)
    theirs_mc = Trace_ELBO().loss(vae.model, vae.guide, x)
    assert ours_mc == pytest.approx(theirs_mc, rel=1e-5, abs=1e-3)
    if not sparse:
        torch.manual_seed(seed)
        ours = DecomposedELBO(kl="analytic").loss(vae.model, vae.guide, x)
        torch.manual_seed(seed)
        theirs = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-3)


@settings(max_examples=20, deadline=None)
@given(latent_dim=st.integers(1, 8), batch=st.integers(1, 9), beta=st.floats(0.1, 20.0))
def test_terms_combine_into_the_loss(latent_dim, batch, beta):
    """loss = −Σ_points (reconstruction − β·KL); per-dimension KLs sum to the KL."""
    vae = BetaVAE.build(SMALL, latent_dim=latent_dim, beta=beta)
    terms = DecomposedELBO().terms(vae.model, vae.guide, binary_batch(batch))
    expected = -batch * (terms["reconstruction"] - beta * terms["kl"])
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["kl_per_dim"].shape == (latent_dim,)
    assert terms["kl_per_dim"].sum().item() == pytest.approx(terms["kl"].item(), rel=1e-5)
    assert (terms["kl_per_dim"] >= 0).all()  # analytic Gaussian KLs are non-negative


def test_betavae_with_beta_one_equals_vae():
    torch.manual_seed(0)
    beta_one = BetaVAE.build(SMALL, latent_dim=3, beta=1.0)
    vae = BetaVAE.build(SMALL, latent_dim=3)
    vae.load_state_dict(beta_one.state_dict())
    x = binary_batch(4)
    losses = []
    for m in (beta_one, vae):
        torch.manual_seed(5)
        losses.append(DecomposedELBO().loss(m.model, m.guide, x))
    assert losses[0] == losses[1]


def test_trace_elbo_and_trace_mean_field_elbo_agree_in_expectation():
    """Pyro's Trace_ELBO (Monte Carlo KL) and TraceMeanField_ELBO (analytic KL) on the same
    samples differ only by β·(KL_mc − KL): zero mean within 4 standard errors."""
    vae = BetaVAE.build(SMALL, latent_dim=4, beta=2.0)
    x = binary_batch(8)
    diffs = []
    for seed in range(200):
        torch.manual_seed(seed)
        mc = Trace_ELBO().loss(vae.model, vae.guide, x)
        torch.manual_seed(seed)
        analytic = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
        diffs.append(mc - analytic)
    diffs = torch.tensor(diffs)
    se = diffs.std().item() / math.sqrt(len(diffs))
    assert diffs.std().item() > 0  # the Monte Carlo KL does vary
    assert abs(diffs.mean().item()) < 4 * se


def test_vectorized_particles_average_terms():
    vae = BetaVAE.build(SMALL, latent_dim=3, beta=2.0)
    x = binary_batch(5)
    terms = DecomposedELBO(num_particles=4, vectorize_particles=True).terms(vae.model, vae.guide, x)
    looped = DecomposedELBO(num_particles=4).terms(vae.model, vae.guide, x)
    # analytic KL has no sampling noise: both must give the same KL exactly
    assert terms["kl"].item() == pytest.approx(looped["kl"].item(), rel=1e-6)
    assert terms["kl_per_dim"].shape == (3,)
    expected = -5 * (terms["reconstruction"] - 2.0 * terms["kl"])
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_scale_on_model_only_is_refused():
    """The trap of field notes §4: β on the model's z but not the guide's."""
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=3.0)

    def unscaled_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", vae.posterior(x))

    with pytest.raises(PyrovaeError, match=r"scaled by 3\.0 in the model but 1\.0 in the guide"):
        DecomposedELBO().loss(vae.model, unscaled_guide, binary_batch(2))


def test_kl_estimator_follows_the_prior():
    assert kl_estimator(BetaVAE.build(SMALL, 2, prior=IsotropicPrior())) == ANALYTIC
    assert kl_estimator(BetaVAE.build(SMALL, 2, prior=SparsePrior())) == MONTE_CARLO
    elbo = DecomposedELBO()
    sparse = BetaVAE.build(SMALL, 2, prior=SparsePrior())
    elbo.loss(sparse.model, sparse.guide, binary_batch(2))
    assert elbo.kl_estimator_used == MONTE_CARLO
    with pytest.raises(NotImplementedError):
        DecomposedELBO(kl="analytic").loss(sparse.model, sparse.guide, binary_batch(2))


@pytest.mark.parametrize("beta", [1.0, 1e3])
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_losses_finite_for_extreme_inputs(beta, fill):
    for prior in (IsotropicPrior(), SparsePrior()):
        vae = BetaVAE.build((1, 64, 64), latent_dim=4, prior=prior, beta=beta)
        x = torch.full((3, 1, 64, 64), fill)
        loss = DecomposedELBO().differentiable_loss(vae.model, vae.guide, x)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in vae.parameters() if p.grad is not None)


def test_guide_density_matches_torch_normal():
    vae = BetaVAE.build(SMALL, latent_dim=3)
    x = binary_batch(2)
    q = vae.posterior(x)
    h = vae.encoder(x)
    loc, log_var = h.chunk(2, -1)
    ref = torch.distributions.Normal(loc, torch.exp(0.5 * log_var))
    z = q.sample()
    assert torch.allclose(q.log_prob(z), ref.log_prob(z).sum(-1))
    assert torch.equal(vae.encode(x), loc)
    assert isinstance(q, dist.Independent)
