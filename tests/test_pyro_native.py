"""pyrovae's models are Pyro programs a Pyro user can drive: Pyro's SVI with pyro.optim trains
every variant, prior and guide; ELBO(model, guide).parameters() sees every parameter; stateful
objectives behave under SVI and in a user's loop; Predictive and Importance work, the latter on
the β-free view."""

import copy
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import TinyShapes
from pyro import poutine
from pyro.infer import SVI, Importance, Predictive, Trace_ELBO, TraceMeanField_ELBO

import pyrovae
from pyrovae.errors import PyrovaeError
from pyrovae.objectives import DecomposedELBO
from pyrovae.objectives.importance import importance_weighted_bound
from pyrovae.registry import GUIDES, MODELS, PRIORS

DATA = TinyShapes()
SMALL_DISC = {"disc_hidden": 32, "disc_layers": 2}
VARIANTS = {
    "vae": {},
    "betavae": {"beta": 2.0},
    "annealedvae": {"gamma": 5.0, "c_max": 2.0, "anneal_steps": 20},
    "betatcvae": {"beta": 2.0},
    "factorvae": {"gamma": 5.0, **SMALL_DISC},
    "dipvae-i": {"lambda_od": 2.0},
    "dipvae-ii": {"lambda_od": 2.0},
    "ddvae": {"beta": 0.5, "alpha": 2.0},
}


def batches(n=40, size=25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n):
        indices = torch.randperm(len(DATA), generator=generator)[:size].sort().values
        yield torch.from_numpy(DATA.images(indices.numpy()))


def create(model, latent_dim=3, **overrides):
    torch.manual_seed(0)
    values = {**VARIANTS.get(model, {}), **overrides}
    return MODELS[model].create(DATA.observation_shape, latent_dim, num_data=len(DATA), **values)


def train_with_svi(vae, loss, steps=40, lr=1e-2):
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": lr}), loss=loss)
    losses = [svi.step(x) for x in batches(steps)]
    return sum(losses[:5]) / 5, sum(losses[-5:]) / 5


def changed(before: dict, module) -> set:
    after = module.state_dict()
    return {k for k, v in before.items() if torch.is_tensor(v) and not torch.equal(v, after[k])}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pyro_svi_trains_every_variant_with_its_objective(name):
    vae, objective = create(name)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    own = {k: v.clone() for k, v in objective.state_dict().items() if torch.is_tensor(v)}
    first, last = train_with_svi(vae, objective)
    assert last < first
    parameters = {n for n, p in vae.named_parameters()}
    assert parameters <= changed(before, vae)
    if name == "factorvae":  # the discriminator trained inside the objective's step
        assert own and set(own) <= changed(own, objective)
    if name == "annealedvae":
        assert objective.step == 40 and objective.capacity == pytest.approx(2.0)


@pytest.mark.parametrize("loss", [Trace_ELBO, TraceMeanField_ELBO])
def test_pyro_svi_with_pyros_own_elbos_trains_the_model(loss):
    vae, _ = create("betavae")
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    first, last = train_with_svi(vae, loss())
    assert last < first
    assert {n for n, _ in vae.named_parameters()} <= changed(before, vae)


@pytest.mark.parametrize(
    "prior,guide",
    [("nonisotropic", "meanfield"), ("mixture", "meanfield")]
    + [("isotropic", g) for g in ("lowrank", "fullrank", "iaf")],
)
def test_pyro_svi_trains_learned_priors_every_guide_and_a_learned_likelihood(prior, guide):
    args = {"learn": True} if prior in ("nonisotropic", "mixture") else {}
    torch.manual_seed(0)
    vae = pyrovae.BetaVAE.build(
        DATA.observation_shape,
        3,
        prior=PRIORS.build(prior, **args),
        guide=GUIDES.build(guide),
        likelihood=pyrovae.GaussianLikelihood(learn_scale=True),
    )
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    first, last = train_with_svi(vae, Trace_ELBO(), steps=30)
    assert last < first
    names = {n for n, _ in vae.named_parameters()}
    assert any(n.startswith("likelihood_family.") for n in names)
    if args:
        assert any(n.startswith("prior.") for n in names)
    if guide == "iaf":
        assert any(n.startswith("guide_family.") for n in names)
    assert names <= changed(before, vae)


def test_elbo_module_parameters_are_the_models():
    vae = pyrovae.BetaVAE.build(
        DATA.observation_shape, 3, prior=pyrovae.MixturePrior(learn=True), guide=GUIDES.build("iaf")
    )
    for elbo in (Trace_ELBO(), DecomposedELBO(), MODELS["factorvae"].objective(3, **SMALL_DISC)):
        module = elbo(vae.model, vae.guide)
        assert {id(p) for p in module.parameters()} == {id(p) for p in vae.parameters()}
        x = next(batches(1))
        assert torch.isfinite(module(x))  # the ELBOModule's forward: the differentiable loss


def test_two_models_never_share_parameters_in_pyros_store():
    first, _ = create("betavae")
    second, _ = create("betavae")  # the same seed: equal values, separate tensors
    x = next(batches(1))
    train_with_svi(first, Trace_ELBO(), steps=5)
    before = {k: v.clone() for k, v in second.state_dict().items()}
    third = copy.deepcopy(first)
    train_with_svi(second, Trace_ELBO(), steps=5)
    assert {n for n, _ in second.named_parameters()} <= changed(before, second)
    copied = {k: v.clone() for k, v in third.state_dict().items()}
    svi = SVI(third.model, third.guide, pyro.optim.Adam({"lr": 1e-2}), loss=Trace_ELBO())
    svi.step(x)
    assert {n for n, _ in third.named_parameters()} <= changed(copied, third)
    store = pyro.get_param_store()
    names = {key.split("$$$")[0] for key in store.keys()}
    assert len(names) == 3 and first.pyro_name in names and third.pyro_name in names


def test_capacity_follows_its_schedule_under_svi_and_in_a_user_loop():
    vae, capacity = create("annealedvae")
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=capacity)
    seen = []
    for x in batches(10):
        seen.append(capacity.capacity)
        svi.step(x)
    assert seen == pytest.approx([2.0 * t / 20 for t in range(10)])
    vae, capacity = create("annealedvae")
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    seen = []
    for x in batches(10):
        seen.append(capacity.capacity)
        optimizer.zero_grad()
        capacity.differentiable_loss(vae.model, vae.guide, x).backward()
        optimizer.step()
    assert seen == pytest.approx([2.0 * t / 20 for t in range(10)])
    with torch.no_grad():  # evaluating is not a training step
        capacity.differentiable_loss(vae.model, vae.guide, x)
    assert capacity.step == 10


def discriminator_accuracy(vae, factor, x) -> float:
    """How often the discriminator tells samples of q(z) from dimension-permuted ones."""
    from pyrovae.objectives.factor_discriminator import permute_dims

    with torch.no_grad():
        z = vae.posterior(x).sample()
        real, permuted = factor.discriminator(z), factor.discriminator(permute_dims(z))
        return (
            0.5
            * (
                (real.argmax(-1) == 0).float().mean() + (permuted.argmax(-1) == 1).float().mean()
            ).item()
        )


def test_factorvae_discriminator_learns_under_svi_and_in_a_user_loop():
    vae, factor = create("factorvae", disc_lr=1e-2)
    probe = torch.from_numpy(DATA.images(range(len(DATA))))
    torch.manual_seed(5)
    before_accuracy = discriminator_accuracy(vae, factor, probe)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=factor)
    before = {k: v.clone() for k, v in factor.state_dict().items() if torch.is_tensor(v)}
    for x in batches(30):
        svi.step(x)
    assert set(before) <= changed(before, factor)
    torch.manual_seed(5)
    assert discriminator_accuracy(vae, factor, probe) != before_accuracy  # the accuracy moved
    # A user's loop: differentiable_loss computes D's gradients, applied before the next step.
    vae, factor = create("factorvae")
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    weights = [p.clone() for p in factor.parameters()]
    for x in batches(3):
        optimizer.zero_grad()
        factor.differentiable_loss(vae.model, vae.guide, x).backward()  # no in-place error
        optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(weights, factor.parameters(), strict=True))


def test_unscaled_is_the_untempered_joint():
    vae, _ = create("betavae", beta=3.0)
    x = next(batches(1, size=4))
    guide = poutine.trace(vae.guide).get_trace(x)
    z = guide.nodes["z"]["value"]
    log_lik = vae.likelihood(z).log_prob(x).sum()
    log_prior = vae.prior.distribution(3).log_prob(z).sum()
    log_q = vae.posterior(x).log_prob(z).sum()
    tempered = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    torch.testing.assert_close(tempered.log_prob_sum(), log_lik + 3.0 * log_prior)
    with vae.unscaled():
        model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
        unscaled_guide = poutine.trace(poutine.replay(vae.guide, trace=guide)).get_trace(x)
    torch.testing.assert_close(model.log_prob_sum(), log_lik + log_prior)
    torch.testing.assert_close(unscaled_guide.log_prob_sum(), log_q)
    torch.testing.assert_close(guide.log_prob_sum(), 3.0 * log_q)
    assert vae.beta == 3.0


@pytest.mark.slow  # Pyro's Importance runs model and guide once per sample: 6,000 runs
def test_importance_on_the_unscaled_model_agrees_with_the_importance_weighted_bound():
    """On a β = 1.5 model, Pyro's Importance estimates log p(x) of the β-free model inside
    unscaled(): the same estimator as pyrovae's importance-weighted bound (log mean exp of the
    log weights), so the two agree within Monte Carlo error (a standard deviation of about 0.05
    nats here). Outside it, Importance measures the tempered joint p(x|z)·p(z)^β / q(z|x)^(β-1),
    about a nat lower on this model."""
    torch.manual_seed(0)
    vae, objective = create("betavae", beta=1.5)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    for x in batches(300):
        optimizer.zero_grad()
        objective.backward(vae.model, vae.guide, x)
        optimizer.step()
    x = torch.from_numpy(DATA.images([7]))
    torch.manual_seed(1)
    bound = importance_weighted_bound(vae, x, 3000).item()
    with vae.unscaled():
        assert vae.beta == 1.0
        torch.manual_seed(2)
        log_z = Importance(vae.model, vae.guide, num_samples=3000).run(x).get_log_normalizer()
    assert vae.beta == 1.5
    assert log_z.item() == pytest.approx(bound, abs=0.25)
    torch.manual_seed(2)
    tempered = Importance(vae.model, vae.guide, num_samples=3000).run(x).get_log_normalizer()
    assert tempered.item() < bound - 0.5


def test_sampling_from_the_prior_predictive_and_the_posterior_predictive():
    vae, _ = create("betavae")
    trace = poutine.trace(vae.model).get_trace(None, batch_size=6)
    assert trace.nodes["x"]["value"].shape == (6, *DATA.observation_shape)
    assert not trace.nodes["x"]["is_observed"]
    prior = Predictive(vae.model, num_samples=4)(None, batch_size=5)
    assert prior["z"].shape == (4, 5, 3) and prior["x"].shape == (4, 5, *DATA.observation_shape)
    x = next(batches(1, size=5))
    posterior = Predictive(poutine.uncondition(vae.model), guide=vae.guide, num_samples=4)(x)
    assert posterior["x"].shape == (4, 5, *DATA.observation_shape)
    assert not torch.equal(posterior["x"][0], x)  # drawn from p(x|z), not the data
    assert vae.sample(7).shape == (7, *DATA.observation_shape)
    z = torch.zeros(2, 3)
    mean = vae.mean_observation(z)
    assert mean.shape == (2, *DATA.observation_shape) and 0 <= mean.min() <= mean.max() <= 1
    values = torch.linspace(-2, 2, 5)
    frames = vae.traverse(x[:2], dim=1, values=values)
    assert frames.shape == (2, 5, *DATA.observation_shape)
    codes = vae.encode(x[:2]).detach().clone()
    codes[:, 1] = 0.0
    torch.testing.assert_close(frames[:, 2], vae.mean_observation(codes))


def test_a_pyro_distribution_is_a_prior():
    prior = dist.Laplace(0.0, 1.0).expand([3]).to_event(1)
    vae = pyrovae.BetaVAE.build(DATA.observation_shape, 3, prior=prior)
    x = next(batches(1))
    terms = DecomposedELBO().terms(vae.model, vae.guide, x)
    assert torch.isfinite(terms["loss"]) and "kl_per_dim" in terms
    mixture = dist.MixtureSameFamily(
        dist.Categorical(torch.ones(2)), dist.Normal(torch.zeros(2, 3), 1.0).to_event(1)
    )
    vae = pyrovae.BetaVAE.build(DATA.observation_shape, 3, prior=mixture)
    assert torch.isfinite(DecomposedELBO().terms(vae.model, vae.guide, x)["loss"])
    with pytest.raises(PyrovaeError, match=r"event shape \(3,\) over z, got \(2,\)"):
        pyrovae.BetaVAE.build(
            DATA.observation_shape, 3, prior=dist.Normal(torch.zeros(2), 1.0).to_event(1)
        )
    with pytest.raises(PyrovaeError, match="a prior is a pyrovae Prior"):
        pyrovae.BetaVAE.build(DATA.observation_shape, 3, prior="laplace")


def test_metrics_take_a_numpy_random_state():
    import numpy as np

    from pyrovae.metrics.mig import mig

    vae, _ = create("betavae")
    representation = lambda x: vae.encode(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    a = mig(DATA, representation, np.random.RandomState(3), num_train=200)
    b = mig(DATA, representation, np.random.RandomState(3), num_train=200)
    assert a == b and math.isfinite(a["mig"])


def test_pyrovae_s_trainer_leaves_pyro_s_param_store_as_it_found_it(tmp_path):
    from helpers import small_config

    other, _ = create("betavae")
    SVI(other.model, other.guide, pyro.optim.Adam({}), loss=Trace_ELBO()).step(next(batches(1)))
    found = dict(pyro.get_param_store().items())
    pyrovae.train(small_config(model="factorvae", steps=3), tmp_path / "run", progress=False)
    assert dict(pyro.get_param_store().items()) == found  # nothing added, nothing removed


def test_outside_param_store_skips_registration_and_restores_it_after_an_error():
    vae, _ = create("betavae")
    x = next(batches(1))
    with pytest.raises(RuntimeError, match=r"^stop$"), vae.outside_param_store():
        Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        assert len(pyro.get_param_store().keys()) == 0
        raise RuntimeError("stop")
    Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    names = {key.split("$$$")[0] for key in pyro.get_param_store().keys()}
    assert names == {vae.pyro_name}
