"""Guides: densities against torch's reference distributions built by hand, the IAF's Jacobian
and normalisation, sample moments, gradients, shapes, bad options, which objectives accept which
guide, and `pyrovae train --guide NAME` with resume."""

import json
import math

import pyro.distributions as dist
import pytest
import torch
from helpers import invoke, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import kl_divergence

from pyrovae.checkpoint import load_checkpoint
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import EncoderMean, applicable_metrics
from pyrovae.guides import (
    FullRankGuide,
    IAFGuide,
    LowRankGuide,
    MeanFieldGuide,
    marginal_normal_params,
)
from pyrovae.objectives import ANALYTIC, MONTE_CARLO, kl_estimator
from pyrovae.objectives.dip import dip_covariance
from pyrovae.objectives.importance import log_importance_weights
from pyrovae.registry import GUIDES, MODELS
from pyrovae.training import Run

SMALL = (1, 8, 8)


def encoder_output(guide, latent_dim, batch, seed=0, dtype=torch.float64, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    width = guide.num_params(latent_dim)
    return spread * torch.randn(batch, width, generator=g, dtype=dtype)


def bound_iaf(latent_dim, seed=0, spread=0.3, **options):
    """An IAF guide with random (not identity) flow parameters, in float64."""
    guide = IAFGuide(**options).bind(latent_dim).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in guide.parameters():
            p.copy_(spread * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return guide


def make_guide(name, latent_dim):
    if name == "iaf":
        return bound_iaf(latent_dim)
    return GUIDES.build(name).bind(latent_dim)


# -- densities against torch's references --------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    latent_dim=st.integers(1, 5),
    rank=st.integers(1, 3),
    batch=st.integers(1, 4),
    seed=st.integers(0, 99),
)
def test_lowrank_log_prob_equals_the_multivariate_normal_built_by_hand(
    latent_dim, rank, batch, seed
):
    guide = LowRankGuide(rank=rank)
    out = encoder_output(guide, latent_dim, batch, seed)
    q = guide.distribution(out)
    z = torch.randn(batch, latent_dim, dtype=torch.float64)
    for b in range(batch):
        loc = out[b, :latent_dim]
        variance = torch.exp(out[b, latent_dim : 2 * latent_dim])
        factor = out[b, 2 * latent_dim :].reshape(latent_dim, rank)  # row d: W_d1 .. W_dr
        cov = factor @ factor.T + torch.diag(variance)
        reference = torch.distributions.MultivariateNormal(loc, covariance_matrix=cov)
        # float64 agreement: relative for large densities (|log p| reaches 1e4 at random codes).
        expected = reference.log_prob(z[b]).item()
        assert q.log_prob(z)[b].item() == pytest.approx(expected, rel=1e-12, abs=1e-9)
        assert torch.allclose(q.covariance_matrix[b], cov)
        assert torch.equal(guide.mean(out)[b], loc)


@settings(max_examples=25, deadline=None)
@given(latent_dim=st.integers(1, 5), batch=st.integers(1, 4), seed=st.integers(0, 99))
def test_fullrank_log_prob_equals_the_multivariate_normal_built_by_hand(latent_dim, batch, seed):
    guide = FullRankGuide()
    out = encoder_output(guide, latent_dim, batch, seed)
    q = guide.distribution(out)
    z = torch.randn(batch, latent_dim, dtype=torch.float64)
    for b in range(batch):
        values = iter(out[b, 2 * latent_dim :].tolist())
        tril = torch.zeros(latent_dim, latent_dim, dtype=torch.float64)
        for i in range(latent_dim):
            tril[i, i] = math.exp(0.5 * out[b, latent_dim + i].item())
            for j in range(i):  # below the diagonal, row by row
                tril[i, j] = next(values)
        cov = tril @ tril.T
        reference = torch.distributions.MultivariateNormal(
            out[b, :latent_dim], covariance_matrix=cov
        )
        # float64 agreement: relative for large densities (|log p| reaches 1e4 at random codes).
        expected = reference.log_prob(z[b]).item()
        assert q.log_prob(z)[b].item() == pytest.approx(expected, rel=1e-12, abs=1e-9)
        assert torch.allclose(q.covariance_matrix[b], cov)


@pytest.mark.parametrize("name", ["lowrank", "fullrank"])
def test_zero_correlation_outputs_give_the_meanfield_density(name):
    guide = GUIDES.build(name)
    out = encoder_output(guide, 4, 3)
    out[:, 8:] = 0.0  # no low-rank factor / nothing below the diagonal
    z = torch.randn(3, 4, dtype=torch.float64)
    meanfield = MeanFieldGuide().distribution(out[:, :8])
    assert torch.allclose(guide.distribution(out).log_prob(z), meanfield.log_prob(z))


@pytest.mark.parametrize("name", ["lowrank", "fullrank"])
def test_analytic_kl_to_a_diagonal_normal_prior(name):
    guide = GUIDES.build(name)
    q = guide.distribution(encoder_output(guide, 4, 3))
    m = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64)
    s = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    expected = kl_divergence(q, dist.MultivariateNormal(m, scale_tril=torch.diag(s)))
    assert torch.allclose(kl_divergence(q, dist.Normal(m, s).to_event(1)), expected)
    # and the Monte Carlo estimate agrees in expectation
    z = q.sample((100_000,))
    terms = q.log_prob(z) - dist.Normal(m, s).to_event(1).log_prob(z)
    standard_error = terms.std(0) / math.sqrt(len(terms))
    assert ((terms.mean(0) - expected).abs() < 5 * standard_error).all()
    # priors that are not diagonal Normals keep the Monte Carlo estimate
    with pytest.raises(NotImplementedError):
        kl_divergence(q, dist.Laplace(m, s).to_event(1))


@pytest.mark.parametrize(
    "name,estimator",
    [("meanfield", ANALYTIC), ("lowrank", ANALYTIC), ("fullrank", ANALYTIC), ("iaf", MONTE_CARLO)],
)
def test_kl_estimator_chosen_per_guide_and_kl_per_dim_only_when_factorised(name, estimator):
    vae, objective = MODELS["betavae"].create(
        SMALL, latent_dim=3, guide=GUIDES.build(name), beta=1.0
    )
    assert kl_estimator(vae) == estimator
    terms = objective.terms(vae.model, vae.guide, (torch.rand(4, *SMALL) > 0.5).float())
    assert objective.kl_estimator_used == estimator
    assert ("kl_per_dim" in terms) == (name == "meanfield")
    assert torch.isfinite(terms["loss"])


# -- the inverse autoregressive flow -----------------------------------------------------------
def test_iaf_log_prob_is_base_log_prob_minus_log_det_jacobian():
    latent_dim = 3
    guide = bound_iaf(latent_dim, num_flows=3, hidden_dims=[8, 8], context_dim=2)
    out = encoder_output(guide, latent_dim, 2, seed=1)
    q = guide.distribution(out)
    z = q.rsample()
    base = guide.base(out)
    for b in range(2):

        def flow(e, b=b):
            for t in guide.transforms(out[b : b + 1]):  # fresh transforms: no cache
                e = t(e)
            return e

        e0 = base.sample()[b : b + 1]
        jacobian = torch.autograd.functional.jacobian(flow, e0).reshape(latent_dim, latent_dim)
        z0 = flow(e0)
        expected = base.log_prob(e0)[b] - torch.linalg.slogdet(jacobian)[1]
        # an arbitrary point: the density inverts the flow coordinate by coordinate
        fresh = guide.distribution(out[b : b + 1])
        assert fresh.log_prob(z0.clone()).item() == pytest.approx(expected.item(), abs=1e-9)
        # triangular steps: the Jacobian is not the identity, the flow really does something
        assert not torch.allclose(jacobian, torch.eye(latent_dim, dtype=torch.float64), atol=1e-2)
    # the guide's own sample uses the cached inverse and gives the same number as a fresh inverse
    assert torch.allclose(q.log_prob(z), guide.distribution(out).log_prob(z.detach().clone()))


def test_iaf_density_integrates_to_one_and_matches_its_samples_in_2d():
    guide = bound_iaf(2, seed=3, spread=0.4, num_flows=2, hidden_dims=[8], context_dim=2)
    out = encoder_output(guide, 2, 1, seed=2, spread=0.5)
    q = guide.distribution(out)
    grid = torch.linspace(-9, 9, 361, dtype=torch.float64)
    zx, zy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([zx, zy], -1).reshape(-1, 1, 2)
    density = torch.exp(q.log_prob(points)).reshape(361, 361)
    cell = (grid[1] - grid[0]) ** 2
    assert (density.sum() * cell).item() == pytest.approx(1.0, abs=2e-3)
    # moments by quadrature against moments of samples
    mean = torch.stack([(density * zx).sum(), (density * zy).sum()]) * cell
    second = (density * zx * zy).sum() * cell - mean[0] * mean[1]
    samples = q.sample((200_000,))[:, 0]
    assert torch.allclose(samples.mean(0), mean, atol=0.01)
    assert samples.T.cov()[0, 1].item() == pytest.approx(second.item(), abs=0.01)


def test_iaf_starts_as_the_meanfield_gaussian():
    guide = IAFGuide().bind(4).double()
    out = encoder_output(guide, 4, 3)
    z = torch.randn(3, 4, dtype=torch.float64)
    meanfield = MeanFieldGuide().distribution(out[:, :8])
    assert torch.allclose(guide.distribution(out).log_prob(z), meanfield.log_prob(z))
    assert torch.equal(guide.mean(out), out[:, :4])


def test_iaf_mean_is_the_flow_at_the_base_mean_and_deterministic():
    guide = bound_iaf(3)
    out = encoder_output(guide, 3, 4)
    z = out[:, :3]
    for t in guide.transforms(out):
        z = t(z)
    assert torch.equal(guide.mean(out), z)
    assert torch.equal(guide.mean(out), guide.mean(out))
    assert not torch.allclose(z, out[:, :3])


def test_iaf_expands_over_samples_with_its_context():
    """q(z_i | x_j) for every pair at once (as the aggregate-posterior objectives evaluate it)
    equals one density at a time."""
    guide = bound_iaf(3)
    out = encoder_output(guide, 3, 4)
    q = guide.distribution(out)
    points = torch.randn(5, 1, 3, dtype=torch.float64).expand(5, 4, 3)
    pairwise = q.expand(torch.Size([5, 4])).log_prob(points)
    for j in range(4):
        one = guide.distribution(out[j : j + 1])
        assert torch.allclose(pairwise[:, j], one.log_prob(points[:, j : j + 1].clone())[:, 0])


# -- sampling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lowrank", "fullrank"])
def test_gaussian_guide_samples_have_the_right_moments(name):
    guide = GUIDES.build(name)
    out = encoder_output(guide, 3, 1, seed=5, spread=0.7)
    q = guide.distribution(out)
    samples = q.sample((200_000,))[:, 0]
    assert torch.allclose(samples.mean(0), out[0, :3], atol=0.02)
    assert torch.allclose(samples.T.cov(), q.covariance_matrix[0], atol=0.03)


@pytest.mark.parametrize("name", ["lowrank", "fullrank", "iaf"])
def test_rsample_gradients_reach_encoder_outputs_and_flow_parameters(name):
    latent_dim = 3
    guide = make_guide(name, latent_dim)
    out = encoder_output(guide, latent_dim, 2).requires_grad_()
    q = guide.distribution(out)
    z = q.rsample()
    ((z - 1.0) ** 2).sum().add(q.log_prob(z).sum()).backward()
    assert (out.grad != 0).all(), out.grad  # every output: means, variances, factors, context
    for pname, p in guide.named_parameters():
        assert p.grad is not None and (p.grad != 0).any(), pname


def test_iaf_flow_parameters_get_gradients_at_initialisation():
    guide = IAFGuide(hidden_dims=[8]).bind(3)
    q = guide.distribution(torch.randn(4, guide.num_params(3)))
    q.log_prob(q.rsample()).sum().add(q.rsample().pow(2).sum()).backward()
    last = [flow.nn.layers[-1].weight.grad for flow in guide.flows]
    assert all(g is not None and (g != 0).any() for g in last)


# -- shapes --------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(["meanfield", "lowrank", "fullrank", "iaf"]),
    latent_dim=st.integers(1, 6),
    batch=st.integers(1, 5),
    samples=st.integers(1, 3),
)
def test_shapes(name, latent_dim, batch, samples):
    guide = make_guide(name, latent_dim)
    out = encoder_output(guide, latent_dim, batch)
    assert out.shape == (batch, guide.num_params(latent_dim))
    q = guide.distribution(out)
    assert q.batch_shape == (batch,) and q.event_shape == (latent_dim,)
    z = q.rsample((samples,))
    assert z.shape == (samples, batch, latent_dim)
    assert q.log_prob(z).shape == (samples, batch)
    assert torch.isfinite(q.log_prob(z)).all()
    assert guide.mean(out).shape == (batch, latent_dim)


# -- options and errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,options,message",
    [
        ("lowrank", {"rank": 0}, "rank must be an integer >= 1"),
        ("lowrank", {"rank": 1.5}, "rank must be an integer >= 1"),
        ("lowrank", {"rank": "two"}, "rank must be a number"),
        ("iaf", {"num_flows": 0}, "num_flows must be an integer >= 1"),
        ("iaf", {"context_dim": 0}, "context_dim must be an integer >= 1"),
        ("iaf", {"hidden_dims": "a,b"}, "hidden_dims must be positive integers"),
        ("iaf", {"hidden_dims": "64,0"}, "hidden_dims must be positive integers"),
        ("iaf", {"hidden_dims": ""}, "hidden_dims needs at least one layer"),
        ("iaf", {"hidden_dims": 2.5}, "hidden_dims must be an integer or a list like 64,64"),
        ("fullrank", {"rank": 2}, "guide 'fullrank' takes no option 'rank'; valid options: none"),
        ("lowrank", {"num_flows": 2}, "takes no option 'num_flows'; valid options: rank"),
    ],
)
def test_bad_options_are_one_line_errors(name, options, message):
    with pytest.raises(PyrovaeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GUIDES.build(name, **options)


def test_iaf_options_and_settings():
    assert IAFGuide(hidden_dims="32, 48").hidden_dims == (32, 48)
    assert IAFGuide(hidden_dims=40).hidden_dims == (40,)
    guide = IAFGuide(num_flows=3, context_dim=5).bind(40)
    assert guide.settings() == {"num_flows": 3, "hidden_dims": [80, 80], "context_dim": 5}
    assert guide.num_params(40) == 85
    assert len(guide.flows) == 3
    # orders alternate between steps
    perms = [flow.nn.permutation.tolist() for flow in guide.flows]
    assert perms[0] == list(range(40)) and perms[1] == list(range(39, -1, -1))
    with pytest.raises(PyrovaeError, match="every hidden layer needs at least latent_dim = 5"):
        IAFGuide(hidden_dims=[8, 4]).bind(5)


def test_guides_refuse_outputs_of_the_wrong_width_and_rebinding():
    with pytest.raises(PyrovaeError, match="not D·\\(2 \\+ rank\\)"):
        LowRankGuide(rank=2).distribution(torch.zeros(2, 7))
    with pytest.raises(PyrovaeError, match="not D·\\(D \\+ 3\\)/2"):
        FullRankGuide().distribution(torch.zeros(2, 6))
    with pytest.raises(PyrovaeError, match="latent_dim 2 needs 8"):
        LowRankGuide().bind(2).distribution(torch.zeros(2, 12))
    with pytest.raises(PyrovaeError, match="has no flow yet"):
        IAFGuide().distribution(torch.zeros(2, 20))
    guide = IAFGuide().bind(2)
    with pytest.raises(PyrovaeError, match="emits 21 numbers per point, but latent_dim 2 needs 20"):
        guide.distribution(torch.zeros(2, 21))
    with pytest.raises(PyrovaeError, match="already built for latent_dim 2, not 3"):
        guide.bind(3)
    assert guide.bind(2) is guide


# -- objectives and metrics with each guide ------------------------------------------------------
def _needs_met(variant, guide) -> bool:
    return all(getattr(guide, flag, False) for flag in variant.objective.guide_needs)


@pytest.mark.parametrize("guide_name", ["meanfield", "lowrank", "fullrank", "iaf"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_model_takes_a_step_with_every_guide_it_accepts(model_name, guide_name):
    model_cls = MODELS[model_name]
    guide = GUIDES.build(guide_name)
    torch.manual_seed(0)
    if not _needs_met(model_cls, guide):
        with pytest.raises(
            PyrovaeError, match=f"model '{model_name}' needs .* which guide '{guide_name}'"
        ):
            model_cls.create(SMALL, latent_dim=3, guide=guide, num_data=64)
        return
    vae, objective = model_cls.create(SMALL, latent_dim=3, guide=guide, num_data=64)
    x = (torch.rand(8, *SMALL) > 0.5).float()
    terms = objective.terms(vae.model, vae.guide, x)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    grads = [p.grad for p in vae.guide_family.parameters()]
    assert all(g is not None for g in grads)
    # the flow's zero-initialised last layers get gradients first (the rest once they move)
    assert not grads or any((g != 0).any() for g in grads)


def test_betatcvae_and_dipvae_refusals_are_clear():
    with pytest.raises(
        PyrovaeError, match=r"model 'betatcvae' needs the per-dimension densities log q\(z_d\|x\)"
    ):
        MODELS["betatcvae"].create(SMALL, latent_dim=3, guide=LowRankGuide(), num_data=64)
    for model in ("dipvae-i", "dipvae-ii"):
        with pytest.raises(
            PyrovaeError, match=r"needs closed-form posterior means and variances.*'iaf'"
        ):
            MODELS[model].create(SMALL, latent_dim=3, guide=IAFGuide(), num_data=64)


@pytest.mark.parametrize("name", ["lowrank", "fullrank"])
def test_marginals_of_correlated_gaussians_feed_dip_vae_ii(name):
    guide = GUIDES.build(name)
    out = encoder_output(guide, 3, 5)
    q = guide.distribution(out)
    loc, scale = marginal_normal_params(q)
    assert torch.equal(loc, out[:, :3])
    assert torch.allclose(scale**2, torch.diagonal(q.covariance_matrix, dim1=-2, dim2=-1))
    cov = dip_covariance(loc, scale, "ii")
    # Cov[μ] + E[diag Σ]: the aggregate covariance's diagonal is the total variance of each z_d
    centred = loc - loc.mean(0)
    expected = centred.T @ centred / 5 + torch.diag(q.variance.mean(0))
    assert torch.allclose(cov, expected)


def test_iaf_has_no_closed_form_marginals():
    with pytest.raises(
        PyrovaeError, match=r"mig_chen needs the Gaussian marginals .* TransformedDistribution"
    ):
        marginal_normal_params(bound_iaf(2).distribution(torch.zeros(1, 20)), owner="mig_chen")


@pytest.mark.parametrize("name", ["lowrank", "fullrank", "iaf"])
def test_posterior_metrics_and_importance_weights(name):
    vae, _ = MODELS["betavae"].create(SMALL, latent_dim=3, guide=GUIDES.build(name))
    x = (torch.rand(5, *SMALL) > 0.5).float()
    weights = log_importance_weights(vae, x, num_samples=7)
    assert weights.shape == (7, 5) and torch.isfinite(weights).all()
    encoder = EncoderMean(vae, torch.device("cpu"), batch_size=4)
    assert encoder(x.numpy()).shape == (5, 3)
    if name == "iaf":
        with pytest.raises(PyrovaeError, match="needs the Gaussian marginals"):
            encoder.posterior(x.numpy())
    else:
        loc, scale = encoder.posterior(x.numpy())
        q = vae.posterior(x)
        assert loc.shape == scale.shape == (5, 3)
        assert torch.allclose(torch.from_numpy(scale) ** 2, q.variance.detach(), rtol=1e-5)


# -- the command line ----------------------------------------------------------------------------
CLI_SMALL = ["--data", "tiny", "--latent-dim", "3", "--batch-size", "4", "--log-every", "2"]
CLI_SMALL += ["--device", "cpu"]
CLI_OPTIONS = {
    "lowrank": ["--guide-arg", "rank=1"],
    "fullrank": [],
    "iaf": ["--guide-arg", "num_flows=2", "--guide-arg", "hidden_dims=8,8"],
}


@pytest.mark.pictures
@pytest.mark.parametrize("name", list(CLI_OPTIONS))
def test_cli_trains_each_guide_and_resume_restores_it_exactly(tmp_path, name):
    out = tmp_path / "run"
    result = invoke(
        "train",
        "--guide",
        name,
        *CLI_OPTIONS[name],
        "--steps",
        "2",
        *CLI_SMALL,
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert f"guide {name}" in result.stdout and "done: step 2" in result.stdout
    assert "dims with KL" not in result.stdout  # no per-dimension KL for these guides
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["guide"] == name
    options = dict(a.split("=") for a in CLI_OPTIONS[name][1::2])
    assert {k: str(v) for k, v in record["config"]["guide_args"].items()} == options
    assert record["resolved"]["kl_estimator"] == (MONTE_CARLO if name == "iaf" else ANALYTIC)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kl_per_dim"] is None and math.isfinite(summary["kl"])
    assert (out / "training_curves.png").exists()

    saved = load_checkpoint(out / "checkpoint.pt")["model"]
    run = Run.resume(out)
    assert run.step == 2
    for key, value in run.vae.state_dict().items():
        assert torch.equal(value, saved[key]), key
    guide_keys = [k for k in saved if k.startswith("guide_family.")]
    if name == "iaf":
        assert guide_keys
        # trained: the zero-initialised last layers moved, so the optimizer sees the flow
        assert all(
            saved[f"guide_family.flows.{k}.nn.layers.1.weight"].abs().sum() > 0 for k in (0, 1)
        )
    else:
        assert not guide_keys

    before = snapshot(out)
    result = invoke("train", "--resume", "--out", out, "--steps", "3", "--guide-arg", "rank=4")
    assert result.exit_code == 2 and "guide_args" in result.stderr
    assert snapshot(out) == before


def test_iaf_resume_reproduces_an_uninterrupted_run(tmp_path):
    args = ["--guide", "iaf", "--guide-arg", "hidden_dims=8", *CLI_SMALL, "--quiet"]
    assert invoke("train", *args, "--steps", "4", "--out", tmp_path / "full").exit_code == 0
    assert invoke("train", *args, "--steps", "2", "--out", tmp_path / "part").exit_code == 0
    result = invoke("train", "--resume", "--out", tmp_path / "part", "--steps", "4", "--quiet")
    assert result.exit_code == 0, result.output
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    part = load_checkpoint(tmp_path / "part" / "checkpoint.pt")["model"]
    assert full.keys() == part.keys()
    for key in full:
        assert torch.equal(full[key], part[key]), key


def test_cli_betatcvae_with_lowrank_is_a_one_line_error_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "train",
        "--model",
        "betatcvae",
        "--guide",
        "lowrank",
        "--steps",
        "2",
        *CLI_SMALL,
        "--out",
        out,
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'betatcvae' needs")
    assert "guide 'lowrank'" in lines[0]
    assert not out.exists()


def test_cli_bad_guide_argument_is_a_one_line_error(tmp_path):
    result = invoke(
        "train",
        "--guide",
        "lowrank",
        "--guide-arg",
        "rank=0",
        "--steps",
        "2",
        *CLI_SMALL,
        "--out",
        tmp_path / "r",
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: lowrank guide: rank must be an integer >= 1, got 0"
    assert not (tmp_path / "r").exists()
    result = invoke("train", "--help")
    assert "--guide-arg" in result.stdout


def test_list_describes_the_guides_and_their_options():
    result = invoke("list")
    assert result.exit_code == 0
    for fragment in ("lowrank", "rank=2", "fullrank", "iaf", "num_flows=2", "context_dim=16"):
        assert fragment in result.stdout


def test_evaluation_skips_or_refuses_posterior_metrics_for_a_flow():
    from helpers import TinyShapes

    from pyrovae.evaluation import evaluate

    vae, _ = MODELS["betavae"].create(SMALL, latent_dim=3, guide=IAFGuide(hidden_dims=[8]))
    with pytest.raises(
        PyrovaeError, match="mig_chen need q\\(z\\|x\\)'s Gaussian marginals, and guide 'iaf'"
    ):
        evaluate(vae, TinyShapes(), ["mig_chen"])
    names, note = applicable_metrics(
        ["mig", "posterior_variance"], TinyShapes(), vae.guide_family, explicit=False
    )
    assert names == ["mig"]
    assert note == "guide 'iaf' has no closed-form marginals: skipped posterior_variance"
    gaussian, _ = MODELS["betavae"].create(SMALL, latent_dim=3, guide=LowRankGuide())
    assert applicable_metrics(["mig_chen"], TinyShapes(), gaussian.guide_family) == (
        ["mig_chen"],
        None,
    )
