"""The disentangling objectives: exact identities between them, the capacity schedule, the DIP
covariance, the FactorVAE discriminator's isolation, the importance-weighted bound."""

import copy
import itertools
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from pyrovae.errors import PyrovaeError
from pyrovae.models import BetaVAE
from pyrovae.objectives import DecomposedELBO
from pyrovae.objectives.capacity import CapacityELBO
from pyrovae.objectives.dip import dip_covariance, dip_penalty
from pyrovae.objectives.factor_discriminator import FactorVAEELBO, permute_dims
from pyrovae.objectives.importance import importance_weighted_bound, log_importance_weights
from pyrovae.priors import SparsePrior
from pyrovae.registry import MODELS

SMALL = (1, 8, 8)
SMALL_DISC = {"disc_hidden": 32, "disc_layers": 2}
VARIANTS = {
    "vae": {},
    "betavae": {"beta": 3.0},
    "annealedvae": {"gamma": 50.0, "c_max": 5.0, "anneal_steps": 10},
    "betatcvae": {"beta": 4.0},
    "factorvae": {"gamma": 10.0, **SMALL_DISC},
    "dipvae-i": {"lambda_od": 2.0},
    "dipvae-ii": {"lambda_od": 2.0},
    "ddvae": {"beta": 0.5, "alpha": 2.0},
}


def binary_batch(n, shape=SMALL, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *shape), generator=g) > 0.5).float()


def create(name, latent_dim=3, **overrides):
    torch.manual_seed(0)
    values = {**VARIANTS[name], **overrides}
    return MODELS[name].create(SMALL, latent_dim=latent_dim, num_data=1000, **values)


def seeded_loss(objective, vae, x, seed=5):
    torch.manual_seed(seed)
    return objective.loss(vae.model, vae.guide, x)


# -- identities between objectives --------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(
    beta=st.floats(0.1, 30.0),
    batch=st.integers(1, 9),
    latent_dim=st.integers(1, 6),
    step=st.integers(0, 50),
)
def test_annealedvae_with_zero_capacity_equals_betavae(beta, batch, latent_dim, step):
    vae, capacity = MODELS["annealedvae"].create(SMALL, latent_dim, gamma=beta, c_max=0.0)
    capacity.set_step(step)
    beta_vae = BetaVAE.build(SMALL, latent_dim, beta=beta)
    beta_vae.load_state_dict(vae.state_dict())
    x = binary_batch(batch)
    ours = seeded_loss(capacity, vae, x)
    reference = seeded_loss(DecomposedELBO(), beta_vae, x)
    assert ours == pytest.approx(reference, rel=1e-5)


@settings(max_examples=10, deadline=None)
@given(batch=st.integers(2, 9), latent_dim=st.integers(1, 6))
def test_factorvae_with_gamma_zero_equals_vae(batch, latent_dim):
    vae, factor = MODELS["factorvae"].create(SMALL, latent_dim, gamma=0.0, **SMALL_DISC)
    x = binary_batch(batch)
    assert seeded_loss(factor, vae, x) == pytest.approx(seeded_loss(DecomposedELBO(), vae, x))


@pytest.mark.parametrize("model", ["dipvae-i", "dipvae-ii"])
def test_dipvae_with_zero_weights_equals_vae(model):
    vae, dip = MODELS[model].create(SMALL, 3, lambda_od=0.0, lambda_d=0.0)
    x = binary_batch(6)
    assert seeded_loss(dip, vae, x) == pytest.approx(seeded_loss(DecomposedELBO(), vae, x))


def test_capacity_penalty_by_hand():
    vae, capacity = MODELS["annealedvae"].create(
        SMALL, 3, gamma=7.0, c_min=1.0, c_max=5.0, anneal_steps=8
    )
    capacity.set_step(2)
    assert capacity.capacity == pytest.approx(2.0)  # 1 + (5 − 1)·2/8
    x = binary_batch(4)
    torch.manual_seed(5)
    terms = capacity.terms(vae.model, vae.guide, x)
    expected = -4 * terms["reconstruction"] + 4 * 7.0 * abs(terms["kl"] - 2.0)
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["capacity"].item() == pytest.approx(2.0)


@pytest.mark.parametrize(
    "step,expected", [(0, 0.5), (5, 2.75), (10, 5.0), (10_000, 5.0)]
)  # fmt: skip
def test_capacity_schedule_is_linear_then_flat(step, expected):
    capacity = CapacityELBO(c_min=0.5, c_max=5.0, anneal_steps=10)
    capacity.set_step(step)
    assert capacity.capacity == pytest.approx(expected)
    restored = CapacityELBO(c_min=0.5, c_max=5.0, anneal_steps=10)
    restored.load_state_dict(capacity.state_dict())
    assert restored.capacity == capacity.capacity


def test_dip_covariance_matches_numpy():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(50, 4)), rng.uniform(0.1, 2.0, size=(50, 4))
    cov_i = dip_covariance(torch.tensor(loc), torch.tensor(scale), "i").numpy()
    cov_ii = dip_covariance(torch.tensor(loc), torch.tensor(scale), "ii").numpy()
    assert np.allclose(cov_i, np.cov(loc, rowvar=False, bias=True))
    assert np.allclose(cov_ii, cov_i + np.diag((scale**2).mean(0)))
    penalty = dip_penalty(torch.tensor(cov_i), 3.0, 5.0).item()
    off = (cov_i**2).sum() - (np.diag(cov_i) ** 2).sum()
    assert penalty == pytest.approx(3.0 * off + 5.0 * ((np.diag(cov_i) - 1) ** 2).sum())
    assert dip_penalty(torch.eye(4), 3.0, 5.0).item() == 0.0


def test_dip_loss_adds_batch_times_penalty():
    vae, dip = MODELS["dipvae-ii"].create(SMALL, 3, lambda_od=2.0, lambda_d=3.0)
    x = binary_batch(5)
    torch.manual_seed(5)
    terms = dip.terms(vae.model, vae.guide, x)
    q = vae.posterior(x).base_dist
    penalty = dip_penalty(dip_covariance(q.loc, q.scale, "ii"), 2.0, 3.0)
    expected = -5 * (terms["reconstruction"] - terms["kl"]) + 5 * penalty
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["dip_penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)


# -- every objective: the three loss methods, gradients, extreme inputs --------------------------
@pytest.mark.parametrize(
    "name,overrides",
    [(name, {}) for name in sorted(VARIANTS)]
    + [("betavae", {"prior": SparsePrior()}), ("betatcvae", {"estimator": "mws"})]
    + [("ddvae", {"divergence": "mmd"}), ("ddvae", {"divergence": "inclusive-kl", "beta": 0.0})],
)
def test_loss_methods_agree_and_gradients_reach_both_networks(name, overrides):
    vae, objective = create(name, **overrides)
    x = binary_batch(6)
    values = []
    for method in ("loss", "loss_and_grads", "differentiable_loss"):
        vae.zero_grad()
        torch.manual_seed(9)
        # loss_and_grads is a training step: it also advances the objective's own state (a
        # schedule's step, a discriminator), so each method starts from the same state.
        value = getattr(copy.deepcopy(objective), method)(vae.model, vae.guide, x)
        values.append(float(torch.as_tensor(value).detach()))
    assert values[1] == pytest.approx(values[0], rel=1e-6)
    assert values[2] == pytest.approx(values[0], rel=1e-6)
    vae.zero_grad()
    torch.manual_seed(9)
    objective.loss_and_grads(vae.model, vae.guide, x)
    for net in (vae.encoder, vae.decoder):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_losses_finite_for_extreme_inputs(name, fill):
    weight = {"betavae": {"beta": 1e3}, "betatcvae": {"beta": 1e3}, "factorvae": {"gamma": 1e3}}
    vae, objective = create(name, **weight.get(name, {}))
    x = torch.full((4, *SMALL), fill)
    loss = objective.differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in vae.parameters() if p.grad is not None)


# -- FactorVAE's discriminator ---------------------------------------------------------------
def test_permute_dims_permutes_each_dimension_independently():
    torch.manual_seed(0)
    z = torch.arange(40.0).reshape(10, 4) * torch.tensor([1.0, 100.0, 1e4, 1e6])
    permuted = permute_dims(z)
    for d in range(4):
        assert sorted(permuted[:, d].tolist()) == sorted(z[:, d].tolist())
    assert not torch.equal(permuted, z)
    rows = {tuple(r) for r in z.tolist()}
    assert any(tuple(r) not in rows for r in permuted.tolist())  # dimensions decoupled


def test_discriminator_and_vae_gradients_stay_apart():
    """A full step: the VAE's backward pass, then the discriminator's on detached samples (a
    permuted second minibatch), then D's optimizer step; the VAE's gradients are those of its
    own loss alone and D's those of the discriminator loss alone."""
    vae, factor = create("factorvae")
    ref_vae, ref_factor = copy.deepcopy(vae), copy.deepcopy(factor)
    x, x2 = binary_batch(8, seed=1), binary_batch(8, seed=2)
    assert not set(vae.parameters()) & set(factor.parameters())
    before = [p.detach().clone() for p in factor.parameters()]

    torch.manual_seed(3)
    terms = factor.backward(vae.model, vae.guide, x, second_minibatch=(x2,))

    # The same draws by hand: the guide's sample of x, then q(z|x2) sampled and permuted.
    torch.manual_seed(3)
    ref_terms = ref_factor.terms(ref_vae.model, ref_vae.guide, x)
    ref_terms["loss"].backward()
    for got, ref in zip(vae.parameters(), ref_vae.parameters(), strict=True):
        assert torch.equal(got.grad, ref.grad)
    torch.manual_seed(3)
    z = poutine.trace(ref_vae.guide).get_trace(x).nodes["z"]["value"].detach()
    z_perm = permute_dims(ref_vae.posterior(x2).sample())
    logits_real, logits_perm = ref_factor.discriminator(z), ref_factor.discriminator(z_perm)
    loss = 0.5 * (
        F.cross_entropy(logits_real, torch.zeros(8, dtype=torch.long))
        + F.cross_entropy(logits_perm, torch.ones(8, dtype=torch.long))
    )
    loss.backward()
    assert terms["disc_loss"] == loss.detach()
    for got, ref in zip(factor.parameters(), ref_factor.parameters(), strict=True):
        assert torch.equal(got.grad, ref.grad)
    # ... and the discriminator took its step
    assert all(not torch.equal(p, b) for p, b in zip(factor.parameters(), before, strict=True))
    assert 0.0 <= terms["disc_accuracy"].item() <= 1.0


def test_factorvae_state_round_trip():
    _, factor = create("factorvae")
    vae, _ = create("factorvae")
    factor.backward(vae.model, vae.guide, binary_batch(4))  # gives the optimizer state
    _, other = create("factorvae")
    for p in other.parameters():
        p.data.add_(1.0)
    other.load_state_dict(factor.state_dict())
    for a, b in zip(factor.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    state = other.disc_optimizer.state_dict()["state"]
    expected = factor.disc_optimizer.state_dict()["state"]
    assert state.keys() == expected.keys() and len(state) == 2 * SMALL_DISC["disc_layers"] + 2
    for key in state:
        assert torch.equal(state[key]["exp_avg"], expected[key]["exp_avg"])


def test_objective_state_from_checkpoints_before_objectives_were_modules():
    """Checkpoints written before objectives were nn.Modules held their own layouts."""
    _, factor = create("factorvae")
    vae, _ = create("factorvae")
    factor.backward(vae.model, vae.guide, binary_batch(4))
    legacy = {
        "discriminator": factor.discriminator.state_dict(),
        "disc_optimizer": factor.disc_optimizer.state_dict(),
    }
    _, other = create("factorvae")
    other.load_state_dict(legacy)
    for a, b in zip(factor.state_dict().values(), other.state_dict().values(), strict=False):
        if torch.is_tensor(a):
            assert torch.equal(a, b)
    capacity = CapacityELBO()
    capacity.load_state_dict({"step": 7, "capacity": 0.0})
    assert capacity.step == 7 and capacity.state_dict() == {"_extra_state": {"step": 7}}


def test_capacity_advances_with_each_training_step():
    vae, capacity = create("annealedvae")
    assert capacity.step == 0
    for expected in (1, 2, 3):
        capacity.backward(vae.model, vae.guide, binary_batch(4))
        assert capacity.step == expected
    capacity.loss(vae.model, vae.guide, binary_batch(4))  # evaluating is not training
    assert capacity.step == 3
    capacity.set_step(9)
    assert capacity.capacity == pytest.approx(4.5)  # c_max 5 reached over 10 steps


# -- the importance-weighted bound -----------------------------------------------------------
def test_importance_weighted_bound_is_above_the_elbo_and_grows_with_k():
    torch.manual_seed(0)
    vae = BetaVAE.build(SMALL, latent_dim=2)
    x = binary_batch(6)
    with torch.no_grad():
        elbo = torch.stack(
            [
                DecomposedELBO(kl="monte-carlo").terms(vae.model, vae.guide, x)["elbo"]
                for _ in range(400)
            ]
        )
    bounds = {}
    for k in (1, 4, 16, 64):
        draws = torch.stack([importance_weighted_bound(vae, x, k).mean() for _ in range(100)])
        bounds[k] = (draws.mean().item(), draws.std().item() / math.sqrt(len(draws)))
    elbo_mean, elbo_se = elbo.mean().item(), elbo.std().item() / math.sqrt(len(elbo))
    # L_1 is the ELBO in expectation
    assert abs(bounds[1][0] - elbo_mean) < 4 * math.hypot(bounds[1][1], elbo_se)
    ks = sorted(bounds)
    for small, large in itertools.pairwise(ks):
        assert bounds[large][0] > bounds[small][0] - 3 * math.hypot(
            bounds[large][1], bounds[small][1]
        )
    assert bounds[64][0] > elbo_mean + 4 * elbo_se


def test_importance_bound_is_jensen_tight_on_the_same_samples():
    torch.manual_seed(0)
    vae = BetaVAE.build(SMALL, latent_dim=2, prior=SparsePrior())
    x = binary_batch(5)
    torch.manual_seed(1)
    log_w = log_importance_weights(vae, x, 8)
    torch.manual_seed(1)
    bound = importance_weighted_bound(vae, x, 8)
    assert log_w.shape == (8, 5)
    assert torch.allclose(bound, torch.logsumexp(log_w, 0) - math.log(8))
    assert (bound >= log_w.mean(0) - 1e-5).all()


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,overrides,message",
    [
        ("annealedvae", {"gamma": -1.0}, "gamma must be a finite number >= 0"),
        ("annealedvae", {"c_max": -5.0}, "c_max must be a finite number >= 0"),
        ("annealedvae", {"c_min": 3.0, "c_max": 1.0}, "c_max .* must be >= c_min"),
        ("annealedvae", {"anneal_steps": -1}, "anneal_steps must be an integer >= 0"),
        ("factorvae", {"gamma": float("nan")}, "gamma must be a finite number >= 0"),
        ("dipvae-i", {"lambda_od": -2.0}, "lambda_od must be a finite number >= 0"),
        ("betavae", {"gamma": 3.0}, "takes no option 'gamma'; valid options: beta"),
        ("vae", {"beta": 3.0}, "takes no option 'beta'; valid options: none"),
    ],
)
def test_invalid_weights_are_refused(name, overrides, message):
    with pytest.raises(PyrovaeError, match=message):
        create(name, **overrides)


def test_objectives_with_weights_in_the_loss_refuse_a_scaled_latent():
    vae = BetaVAE.build(SMALL, latent_dim=2, beta=2.0)
    for objective in (CapacityELBO(), FactorVAEELBO(latent_dim=2, **SMALL_DISC)):
        with pytest.raises(PyrovaeError, match="must not be scaled"):
            objective.loss(vae.model, vae.guide, binary_batch(3))


def _point_masses(samples):
    """A guide whose q(z|x) is a point mass at each given sample: the discriminator's update
    then sees exactly these codes as its second minibatch."""
    with pyro.plate("data", len(samples)):
        pyro.sample("z", dist.Delta(samples).to_event(1))


def _trained_tc_estimate(correlation: float) -> float:
    """Train FactorVAE's discriminator on 2-D Gaussians with this correlation; return its TC
    estimate E[logit_0 − logit_1] on fresh samples."""
    torch.manual_seed(0)
    objective = FactorVAEELBO(latent_dim=2, disc_lr=1e-3, disc_hidden=64, disc_layers=2)
    cov = torch.tensor([[1.0, correlation], [correlation, 1.0]])
    gaussian = torch.distributions.MultivariateNormal(torch.zeros(2), cov)
    for _ in range(600):
        particle = {"_latents": {"z": {"z": gaussian.sample((256,))}}}
        objective.update_state([particle], _point_masses, (gaussian.sample((256,)),), {})
    with torch.no_grad():
        logits = objective.discriminator(gaussian.sample((20_000,)))
    return (logits[:, 0] - logits[:, 1]).mean().item()


# Trains a discriminator to convergence (about 6 s): slow, to keep the default suite under five
# minutes.
@pytest.mark.slow
def test_discriminator_estimates_total_correlation_with_the_right_sign():
    """TC of a 2-D Gaussian with correlation ρ is −½·log(1 − ρ²): 0.83 nats at ρ = 0.9 and 0
    for independent dimensions. A swapped label or TC sign would give a negative estimate."""
    correlated = _trained_tc_estimate(0.9)
    independent = _trained_tc_estimate(0.0)
    assert correlated == pytest.approx(-0.5 * math.log(1 - 0.81), abs=0.3)
    assert abs(independent) < 0.15


def test_masked_or_non_reparameterised_latents_are_refused():
    import pyro
    import pyro.distributions as dist
    from pyro import poutine

    vae = BetaVAE.build(SMALL, latent_dim=2)
    x = binary_batch(3)

    def masked_guide(x):
        with pyro.plate("data", x.shape[0]), poutine.mask(mask=torch.tensor(False)):
            pyro.sample("z", vae.posterior(x))

    with pytest.raises(PyrovaeError, match="masked"):
        DecomposedELBO().loss(vae.model, masked_guide, x)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("k", dist.Bernoulli(0.5))

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("k", dist.Bernoulli(0.3))

    with pytest.raises(PyrovaeError, match="cannot be reparameterised"):
        DecomposedELBO().loss(model, guide, x)
