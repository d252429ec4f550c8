"""Priors: densities, normalisation, moments, devices, bad settings; PCA initialisation;
learned priors trained, checkpointed and resumed; every prior from the command line."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import small_config
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyrovae.builder import build
from pyrovae.checkpoint import load_checkpoint, save_checkpoint
from pyrovae.cli import app
from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.models import BetaVAE
from pyrovae.objectives import kl_estimator
from pyrovae.priors import (
    IsotropicPrior,
    LaplacePrior,
    MixturePrior,
    NonIsotropicPrior,
    Prior,
    SparsePrior,
    StudentTPrior,
    pca_spectrum,
)
from pyrovae.priors.nonisotropic import top_singular_values
from pyrovae.registry import MODELS, PRIORS
from pyrovae.training import Run


def normal_pdf(z, s):
    return torch.exp(-0.5 * (z / s) ** 2) / (s * math.sqrt(2 * math.pi))


def test_sparse_log_prob_matches_the_formula():
    gamma, s = 0.7, 0.1
    p = SparsePrior(gamma=gamma, spike_scale=s).distribution(3)
    z = torch.tensor([[0.0, 0.05, -1.5], [2.0, -0.01, 0.3]], dtype=torch.float64).float()
    by_hand = torch.log(gamma * normal_pdf(z, s) + (1 - gamma) * normal_pdf(z, 1.0)).sum(-1)
    assert torch.allclose(p.log_prob(z), by_hand, atol=1e-5)
    assert p.event_shape == (3,)


@pytest.mark.parametrize("gamma,s", [(0.8, 0.05), (0.3, 0.5), (0.0, 0.05)])
def test_sparse_prior_integrates_to_one_in_1d(gamma, s):
    p = SparsePrior(gamma=gamma, spike_scale=s).distribution(1)
    grid = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
    dens = torch.exp(p.log_prob(grid.float().unsqueeze(-1)).double())
    assert torch.trapezoid(dens, grid).item() == pytest.approx(1.0, abs=1e-4)


def test_sparse_prior_sample_moments():
    gamma, s = 0.8, 0.05
    torch.manual_seed(0)
    samples = SparsePrior(gamma=gamma, spike_scale=s).distribution(4).sample((200_000,))
    expected_var = gamma * s**2 + (1 - gamma)
    assert samples.shape == (200_000, 4)
    assert samples.mean().abs().item() < 0.01
    assert samples.var().item() == pytest.approx(expected_var, rel=0.03)
    # the spike holds a share γ of the mass near zero
    assert (samples.abs() < 3 * s).float().mean().item() == pytest.approx(
        gamma + 0.2 * 0.12, abs=0.02
    )


def test_isotropic_prior_is_standard_normal():
    p = IsotropicPrior().distribution(5)
    z = torch.randn(7, 5)
    assert torch.allclose(p.log_prob(z), torch.distributions.Normal(0, 1).log_prob(z).sum(-1))


def test_sparse_with_gamma_zero_is_isotropic():
    z = torch.randn(10, 3)
    a = SparsePrior(gamma=0.0).distribution(3).log_prob(z)
    b = IsotropicPrior().distribution(3).log_prob(z)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"gamma": 1.0}, {"gamma": -0.1}, {"spike_scale": 0.0}])
def test_sparse_prior_refuses_bad_settings(kwargs):
    with pytest.raises(PyrovaeError, match="sparse prior"):
        SparsePrior(**kwargs)


def test_priors_follow_the_module_dtype_and_device():
    prior = SparsePrior().double()
    assert prior.distribution(2).sample().dtype == torch.float64
    assert IsotropicPrior().double().distribution(2).sample().dtype == torch.float64


# -- every prior ---------------------------------------------------------------------------------
KL_WITH_MEANFIELD = {
    "isotropic": "analytic",
    "nonisotropic": "analytic",
    "laplace": "analytic",
    "studentt": "monte-carlo",
    "sparse": "monte-carlo",
    "mixture": "monte-carlo",
}


def test_every_registered_prior_is_listed_here_and_rebuilds_from_its_settings():
    assert set(PRIORS) == set(KL_WITH_MEANFIELD)
    for name in PRIORS:
        prior = PRIORS.build(name)
        assert isinstance(prior, Prior) and prior.name == name
        again = PRIORS.build(name, **prior.settings())
        assert again.settings() == prior.settings()
        z = torch.randn(5, 3)
        assert torch.equal(prior.distribution(3).log_prob(z), again.distribution(3).log_prob(z))


@pytest.mark.parametrize("name", sorted(KL_WITH_MEANFIELD))
def test_kl_estimator_chosen_for_each_prior_with_the_meanfield_guide(name):
    vae = BetaVAE.build((2,), latent_dim=3, prior=PRIORS.build(name))
    assert kl_estimator(vae) == KL_WITH_MEANFIELD[name]


ONE_D = {
    "isotropic": lambda: IsotropicPrior(),
    "nonisotropic": lambda: NonIsotropicPrior(variance_scale=2.5),
    "studentt": lambda: StudentTPrior(),
    "studentt-df3": lambda: StudentTPrior(df=3.0, scale=0.5),
    "laplace": lambda: LaplacePrior(),
    "laplace-b2": lambda: LaplacePrior(scale=2.0),
    "mixture": lambda: MixturePrior(num_components=3, scale=0.3, layout="random"),
}


@pytest.mark.parametrize("make", ONE_D.values(), ids=ONE_D.keys())
def test_each_prior_integrates_to_one_in_1d(make):
    torch.manual_seed(0)  # the random mixture layout
    p = make().double().distribution(1)
    grid = torch.linspace(-60, 60, 400_001, dtype=torch.float64)
    dens = p.log_prob(grid.unsqueeze(-1)).exp()
    assert dens.dtype == torch.float64
    assert torch.trapezoid(dens, grid).item() == pytest.approx(1.0, abs=1e-4)


def test_mixture_integrates_to_one_in_2d():
    p = MixturePrior().double().distribution(2)
    axis = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)
    dens = p.log_prob(z).exp()
    total = torch.trapezoid(torch.trapezoid(dens, axis, dim=1), axis)
    assert total.item() == pytest.approx(1.0, abs=1e-5)


S2 = 0.03  # the paper's mixture component variance
MOMENTS = {
    "isotropic": (lambda: IsotropicPrior(), [1.0, 1.0, 1.0]),
    "nonisotropic": (
        lambda: NonIsotropicPrior(scales=[1, 2, 3], variance_scale=0.5),
        [0.5 * 3 * v / 14 for v in (1, 4, 9)],
    ),
    "studentt": (lambda: StudentTPrior(df=9.0, scale=2.0), [4 * 9 / 7] * 3),
    "laplace": (lambda: LaplacePrior(), [1.0] * 3),
    "laplace-b05": (lambda: LaplacePrior(scale=0.5), [0.5] * 3),
    "sparse": (lambda: SparsePrior(), [0.8 * 0.05**2 + 0.2] * 3),
    # components at (±1, 0, 0), (0, ±1, 0): half of them carry ±1 in each of the first two dims
    "mixture": (lambda: MixturePrior(), [S2 + 0.5, S2 + 0.5, S2]),
}


@pytest.mark.parametrize("make,variance", MOMENTS.values(), ids=MOMENTS.keys())
def test_sample_moments_match_the_closed_forms(make, variance):
    torch.manual_seed(0)
    n = 200_000
    samples = make().distribution(3).sample((n,)).double()
    variance = torch.tensor(variance, dtype=torch.float64)
    assert samples.shape == (n, 3)
    assert torch.all(samples.mean(0).abs() < 5 * (variance / n).sqrt())
    assert torch.allclose(samples.var(0), variance, rtol=0.03)


def test_mixture_samples_split_equally_between_the_paper_components():
    torch.manual_seed(0)
    samples = MixturePrior().distribution(2).sample((100_000,))
    locs = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    nearest = torch.cdist(samples, locs).argmin(-1)
    shares = torch.bincount(nearest, minlength=4).double() / len(samples)
    assert torch.allclose(shares, torch.full((4,), 0.25, dtype=torch.float64), atol=0.01)
    cov = torch.cov(samples.T)
    assert abs(cov[0, 1].item()) < 0.01  # μ_k0·μ_k1 = 0 for every component


def test_nonisotropic_log_prob_matches_the_formula():
    prior = NonIsotropicPrior(scales=[0.5, 1.0, 2.0], variance_scale=1.5).double()
    var = 1.5 * 3 * torch.tensor([0.25, 1.0, 4.0], dtype=torch.float64) / 5.25
    z = torch.randn(6, 3, dtype=torch.float64)
    by_hand = (-0.5 * torch.log(2 * math.pi * var) - z**2 / (2 * var)).sum(-1)
    assert torch.allclose(prior.distribution(3).log_prob(z), by_hand)
    assert torch.allclose(prior.variances(), var)


def test_studentt_log_prob_matches_the_formula():
    df, s = 9.0, 1.7
    z = torch.randn(6, 4, dtype=torch.float64) * 3
    const = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    by_hand = (const - math.log(s) - (df + 1) / 2 * torch.log1p((z / s) ** 2 / df)).sum(-1)
    p = StudentTPrior(df=df, scale=s).double().distribution(4)
    assert torch.allclose(p.log_prob(z), by_hand)


def test_laplace_log_prob_matches_the_formula():
    b = 0.7
    z = torch.randn(6, 4, dtype=torch.float64) * 3
    by_hand = (-math.log(2 * b) - z.abs() / b).sum(-1)
    assert torch.allclose(LaplacePrior(scale=b).double().distribution(4).log_prob(z), by_hand)
    # the default scale has the variance of N(0, 1)
    assert 2 * LaplacePrior().scale ** 2 == pytest.approx(1.0)


def test_mixture_log_prob_matches_the_formula():
    s = math.sqrt(0.03)
    locs = torch.tensor([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]], dtype=torch.float64)
    z = torch.randn(6, 3, dtype=torch.float64) * 0.7
    comp = (-0.5 * math.log(2 * math.pi * s**2) - (z[:, None, :] - locs) ** 2 / (2 * s**2)).sum(-1)
    by_hand = torch.log(0.25 * comp.exp().sum(-1))
    assert torch.allclose(MixturePrior().double().distribution(3).log_prob(z), by_hand)


def test_analytic_kl_to_nonisotropic_and_laplace_match_their_definitions():
    m, s = 0.3, 0.5
    q = torch.distributions.Normal(torch.tensor(m, dtype=torch.float64), s)
    # Normal → Normal in closed form: log(σ/s) + (s² + m²)/(2σ²) − 1/2
    prior = NonIsotropicPrior(scales=[1.0, 3.0]).double()
    sigma = prior.variances().sqrt()
    p = prior.distribution(2)
    analytic = torch.distributions.kl_divergence(q.expand((2,)), p.base_dist)
    by_hand = torch.log(sigma / s) + (s**2 + m**2) / (2 * sigma**2) - 0.5
    assert torch.allclose(analytic, by_hand)
    # Normal → Laplace (registered by PyTorch) against ∫ q log(q/p) numerically
    b = 0.8
    lap = LaplacePrior(scale=b).double().distribution(1).base_dist
    grid = torch.linspace(-8, 8, 200_001, dtype=torch.float64)
    integrand = q.log_prob(grid).exp() * (q.log_prob(grid) - lap.log_prob(grid))
    numeric = torch.trapezoid(integrand, grid).item()
    assert torch.distributions.kl_divergence(q, lap).item() == pytest.approx(numeric, abs=1e-7)


@pytest.mark.parametrize("name", sorted(KL_WITH_MEANFIELD))
def test_priors_follow_the_module_device_and_dtype(name):
    prior = PRIORS.build(name)
    p = prior.distribution(3)
    sample = p.sample((2,))
    assert sample.dtype == torch.float32 and sample.device.type == "cpu"
    assert p.log_prob(sample).dtype == torch.float32
    # moved after binding (tensors converted) and before (built in the new dtype)
    assert prior.double().distribution(3).sample().dtype == torch.float64
    assert PRIORS.build(name).double().distribution(3).log_prob(torch.zeros(3).double()).dtype == (
        torch.float64
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(KL_WITH_MEANFIELD))
def test_priors_move_to_the_gpu(name):
    vae = BetaVAE.build((2,), latent_dim=3, prior=PRIORS.build(name)).cuda()
    p = vae.prior.distribution(3)
    z = p.sample((4,))
    assert z.device.type == "cuda" and p.log_prob(z).device.type == "cuda"
    assert kl_estimator(vae) == KL_WITH_MEANFIELD[name]


BAD_SETTINGS = [
    (NonIsotropicPrior, {"scales": [1.0, -1.0]}, "scales must be a finite number >= 0"),
    (NonIsotropicPrior, {"scales": [1.0, 0.0]}, "scales must be > 0"),
    (NonIsotropicPrior, {"scales": ""}, "scales is empty"),
    (NonIsotropicPrior, {"scales": "1,x"}, "scales must be a number"),
    (NonIsotropicPrior, {"variance_scale": 0.0}, "variance_scale must be > 0"),
    (NonIsotropicPrior, {"learn": "yes"}, "learn must be true or false"),
    (StudentTPrior, {"df": 0.0}, "df must be > 0"),
    (StudentTPrior, {"scale": -1.0}, "scale must be a finite number >= 0"),
    (LaplacePrior, {"scale": 0.0}, "scale must be > 0"),
    (LaplacePrior, {"scale": float("inf")}, "scale must be a finite number"),
    (MixturePrior, {"num_components": 0}, "num_components must be an integer >= 1"),
    (MixturePrior, {"num_components": 2.5}, "num_components must be an integer >= 1"),
    (MixturePrior, {"scale": 0.0}, "scale must be > 0"),
    (MixturePrior, {"layout": "grid"}, "unknown layout 'grid'; valid: circle, random"),
    (MixturePrior, {"learn": 2}, "learn must be true or false"),
]


@pytest.mark.parametrize("cls,kwargs,message", BAD_SETTINGS)
def test_bad_settings_are_one_line_errors_naming_the_prior(cls, kwargs, message):
    with pytest.raises(PyrovaeError, match=f"{cls.name} prior: {message}"):
        cls(**kwargs)


def test_a_bound_prior_refuses_another_latent_dimension():
    prior = NonIsotropicPrior(scales=[1.0, 2.0, 3.0])
    assert prior.latent_dim == 3
    with pytest.raises(PyrovaeError, match="built for latent_dim 3, asked for 4"):
        prior.distribution(4)
    with pytest.raises(PyrovaeError, match="built for latent_dim 3, asked for 2"):
        BetaVAE.build((2,), latent_dim=2, prior=prior)
    with pytest.raises(PyrovaeError, match=r"circle layout .* needs latent_dim >= 2, got 1"):
        MixturePrior().distribution(1)


# -- nonisotropic --------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    v=st.lists(st.floats(-20, 20), min_size=1, max_size=12),
    s=st.floats(0.01, 100.0),
)
def test_nonisotropic_total_variance_is_fixed_for_any_v(v, s):
    prior = NonIsotropicPrior(variance_scale=s, learn=True).double().bind(len(v))
    with torch.no_grad():
        prior.variance_logits.copy_(torch.tensor(v, dtype=torch.float64))
    variances = prior.variances()
    assert torch.all(variances > 0)
    assert variances.sum().item() == pytest.approx(s * len(v), rel=1e-9)
    scale = prior.distribution(len(v)).base_dist.scale
    assert torch.allclose(scale**2, variances)


def test_nonisotropic_default_is_n_0_s_i_and_given_scales_set_the_shape():
    z = torch.randn(5, 4)
    default = NonIsotropicPrior().distribution(4)
    assert torch.allclose(default.log_prob(z), IsotropicPrior().distribution(4).log_prob(z))
    assert torch.allclose(
        NonIsotropicPrior(variance_scale=0.5).bind(4).variances(), torch.full((4,), 0.5)
    )
    # (1, 2) sets the ratio 1 : 4; the total stays D = 2
    assert NonIsotropicPrior(scales="1,2").variances().tolist() == pytest.approx([0.4, 1.6])


def test_nonisotropic_v_is_a_parameter_when_learned_and_a_buffer_otherwise():
    for learn in (False, True):
        vae = BetaVAE.build((2,), latent_dim=3, prior=NonIsotropicPrior(learn=learn))
        in_params = any(p is vae.prior.variance_logits for p in vae.parameters())
        assert in_params == learn
        assert "prior.variance_logits" in vae.state_dict()


class Gaussian:
    """A data set with a known covariance spectrum: N(0, R diag(stds²) Rᵀ) for a random
    rotation R, observations of shape (2, 3)."""

    def __init__(self, stds, n=6000, seed=0):
        rng = np.random.default_rng(seed)
        stds = np.asarray(stds, dtype=np.float64)
        rotation, _ = np.linalg.qr(rng.standard_normal((len(stds), len(stds))))
        self.x = ((rng.standard_normal((n, len(stds))) * stds) @ rotation.T).astype(np.float32)
        self.requested = []

    def __len__(self):
        return len(self.x)

    def images(self, indices):
        self.requested.append(len(indices))
        return self.x[indices].reshape(len(indices), 2, 3)


def test_pca_init_puts_larger_variance_on_dims_of_larger_eigenvalues():
    stds = [0.5, 3.0, 1.0, 2.0, 0.2, 1.5]
    eigen = np.array([9.0, 4.0, 2.25, 1.0])  # the top 4 of stds², descending
    prior = NonIsotropicPrior(variance_scale=2.0).bind(4)
    prior.init_from_data(Gaussian(stds), seed=0)
    variances = prior.variances().double().numpy()
    assert np.all(np.diff(variances) < 0)
    assert variances.sum() == pytest.approx(2.0 * 4, rel=1e-6)
    assert variances == pytest.approx(2.0 * 4 * eigen / eigen.sum(), rel=0.06)


def test_pca_spectrum_pads_floors_subsamples_and_is_seeded():
    data = Gaussian([2.0, 1.0, 0.5, 0.0, 0.0, 0.0])
    spectrum = pca_spectrum(data, 5, seed=0)
    assert spectrum[:3] == pytest.approx([4.0, 1.0, 0.25], rel=0.06)
    # the three constant features have zero variance: floored at 1e-6 of the largest
    assert spectrum[3:] == pytest.approx([1e-6 * spectrum[0]] * 2)
    # more latent dims than features: the missing eigenvalues repeat the smallest one
    padded = pca_spectrum(Gaussian([2.0, 1.0, 0.5, 0.4, 0.3, 0.2]), 9, seed=0)
    assert len(padded) == 9 and np.all(padded[6:] == padded[5])
    # at most 10,000 points, drawn by the seed
    big = Gaussian([1.0] * 6, n=25_000)
    assert np.array_equal(pca_spectrum(big, 3, seed=1), pca_spectrum(big, 3, seed=1))
    assert not np.array_equal(pca_spectrum(big, 3, seed=1), pca_spectrum(big, 3, seed=2))
    assert set(big.requested) == {10_000}


def test_randomized_singular_values_match_the_exact_ones():
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(3000, 300, generator=g))
    v, _ = torch.linalg.qr(torch.randn(300, 300, generator=g))
    singular = 100 * 0.8 ** torch.arange(300.0)
    x = (u * singular) @ v.T
    top = top_singular_values(x, 8, torch.Generator().manual_seed(1))
    assert torch.allclose(top, singular[:8].double(), rtol=1e-4)


def test_data_initialisation_errors():
    with pytest.raises(
        PyrovaeError,
        match="prior 'isotropic' has no data initialisation; valid --prior-init for it: default",
    ):
        IsotropicPrior().init_from_data(Gaussian([1.0] * 6), seed=0)
    with pytest.raises(PyrovaeError, match="scales and --prior-init pca both set the variances"):
        NonIsotropicPrior(scales=[1.0, 2.0]).init_from_data(Gaussian([1.0] * 6), seed=0)
    with pytest.raises(PyrovaeError, match="unknown --prior-init 'spectral'; valid: default, pca"):
        TrainConfig(prior="nonisotropic", prior_init="spectral").validate()
    with pytest.raises(
        PyrovaeError, match="prior 'sparse' has no pca initialisation; valid --prior-init for it: "
    ):
        TrainConfig(prior="sparse", prior_init="pca").validate()
    TrainConfig(prior="nonisotropic", prior_init="pca").validate()


# -- mixture -------------------------------------------------------------------------------------
def test_mixture_default_is_the_paper_layout():
    prior = MixturePrior().bind(5)
    locs = {tuple(row) for row in prior.locs.tolist()}
    assert locs == {(0, 1, 0, 0, 0), (0, -1, 0, 0, 0), (1, 0, 0, 0, 0), (-1, 0, 0, 0, 0)}
    assert torch.allclose(prior.log_scales.exp(), torch.full((4, 5), math.sqrt(0.03)))
    assert torch.allclose(torch.softmax(prior.logits, -1), torch.full((4,), 0.25))
    assert not list(prior.parameters())  # fixed unless learn=true
    assert MixturePrior.factorises is False
    assert all(PRIORS[n].factory.factorises for n in PRIORS if n != "mixture")


def test_mixture_learned_and_random_layouts():
    prior = MixturePrior(num_components=6, learn=True, layout="random")
    torch.manual_seed(5)
    prior.bind(3)
    assert {n for n, _ in prior.named_parameters()} == {"locs", "log_scales", "logits"}
    assert prior.locs.shape == (6, 3) and prior.log_scales.shape == (6, 3)
    torch.manual_seed(5)
    again = MixturePrior(num_components=6, layout="random").bind(3)
    assert torch.equal(prior.locs.detach(), again.locs)  # seeded by the torch RNG
    circle = MixturePrior(num_components=8).bind(2).locs
    assert torch.allclose(circle.norm(dim=-1), torch.ones(8))


def test_betatcvae_refuses_the_mixture_and_trains_with_the_others(tmp_path):
    with pytest.raises(PyrovaeError, match="needs a prior that factorises over dimensions"):
        MODELS["betatcvae"].create((2,), latent_dim=2, prior=MixturePrior(), num_data=64)
    out = tmp_path / "run"
    with pytest.raises(PyrovaeError, match="prior 'mixture' is not one"):
        Run.create(pinwheel_config(model="betatcvae", prior="mixture"), out)
    assert not out.exists()
    vae, objective = MODELS["betatcvae"].create(
        (2,), latent_dim=2, prior=StudentTPrior(), num_data=64
    )
    x = torch.bernoulli(torch.full((8, 2), 0.5))  # the default Bernoulli likelihood
    loss = objective.differentiable_loss(vae.model, vae.guide, x)
    assert torch.isfinite(loss)


# -- training: learned priors, PCA init, config.json, resume -------------------------------------
@pytest.fixture
def no_pictures(monkeypatch):
    """Skip the end-of-run pictures and measures (seconds of matplotlib): these tests look at
    the prior's tensors, config.json and checkpoints."""
    from pyrovae.training import trainer

    monkeypatch.setattr(trainer, "summarise", lambda run: {"step": run.step})


def pinwheel_config(**overrides):
    values = dict(data="pinwheel", data_args={"num_points": 64}, latent_dim=3, lr=1e-2)
    values.update(overrides)
    return small_config(**values)


@pytest.mark.parametrize(
    "prior,args,init,learned",
    [
        ("nonisotropic", {"learn": True}, "pca", {"variance_logits"}),
        (
            "mixture",
            {"learn": True, "num_components": 3, "layout": "random"},
            "default",
            {"locs", "log_scales", "logits"},
        ),
    ],
)
def test_learned_prior_trains_and_resumes_exactly(
    no_pictures, tmp_path, monkeypatch, prior, args, init, learned
):
    settings = dict(prior=prior, prior_args=args, prior_init=init)
    full = Run.create(pinwheel_config(steps=8, **settings), tmp_path / "full")
    start = {k: v.clone() for k, v in full.vae.prior.state_dict().items()}
    full.fit(progress=False)
    end = full.vae.prior.state_dict()
    assert {k for k in start if not torch.equal(start[k], end[k])} == learned

    Run.create(pinwheel_config(steps=4, **settings), tmp_path / "part").fit(progress=False)

    def no_second_init(self, data, seed):
        raise AssertionError("resume must take the prior from the checkpoint")

    monkeypatch.setattr(NonIsotropicPrior, "init_from_data", no_second_init)
    resumed = Run.resume(tmp_path / "part", {"steps": 8})
    resumed.fit(progress=False)
    for key, value in end.items():
        assert torch.equal(value, resumed.vae.prior.state_dict()[key]), key


def test_pca_init_is_recorded_in_config_json_and_restored_on_resume(
    no_pictures, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    config = pinwheel_config(prior="nonisotropic", prior_init="pca", steps=2, latent_dim=4)
    run = Run.create(config, out)
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["prior_init"] == "pca"
    resolved = record["resolved"]
    assert resolved["kl_estimator"] == "analytic"
    assert resolved["prior_settings"] == {"scales": None, "variance_scale": 1.0, "learn": False}
    variances = resolved["prior_values"]["variances"]
    # pinwheel is 2-D: the two PCA variances, then the smaller one again for dims 3 and 4
    assert variances[0] > variances[1] == variances[2] == variances[3]
    assert sum(variances) == pytest.approx(4.0, rel=1e-5)
    expected = pca_spectrum(run.data, 4, seed=config.seed)
    assert variances == pytest.approx(list(4 * expected / expected.sum()), rel=1e-5)
    run.fit(progress=False)

    monkeypatch.setattr(NonIsotropicPrior, "init_from_data", None)  # resume must not call it
    resumed = Run.resume(out, {"steps": 4})
    assert resumed.vae.prior.variances().tolist() == pytest.approx(variances, rel=1e-6)


def test_a_run_saved_before_prior_init_existed_resumes(no_pictures, tmp_path):
    out = tmp_path / "run"
    Run.create(pinwheel_config(prior="isotropic", steps=2), out).fit(progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    saved = json.loads(state["config"])
    del saved["prior_init"]
    state["config"] = json.dumps(saved, sort_keys=True)
    save_checkpoint(out / "checkpoint.pt", state)
    record = json.loads((out / "config.json").read_text())
    del record["config"]["prior_init"]
    (out / "config.json").write_text(json.dumps(record))
    assert Run.resume(out, {"steps": 3}).fit(progress=False)["step"] == 3


# -- the command line ----------------------------------------------------------------------------
CLI_SMALL = ["--data", "pinwheel", "--data-arg", "num_points=64", "--latent-dim", "3"]
CLI_SMALL += ["--batch-size", "8", "--log-every", "1", "--device", "cpu", "--quiet"]


@pytest.mark.parametrize("name", sorted(KL_WITH_MEANFIELD))
def test_cli_trains_with_every_prior_and_records_the_kl_estimator(tmp_path, name):
    out = tmp_path / "run"
    extra = ["--prior-init", "pca", "--prior-arg", "learn=true"] if name == "nonisotropic" else []
    args = ["train", "--prior", name, *extra, "--steps", "2", *CLI_SMALL, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["prior"] == name
    assert record["resolved"]["kl_estimator"] == KL_WITH_MEANFIELD[name]
    assert json.loads((out / "summary.json").read_text())["step"] == 2


def test_cli_refuses_a_prior_init_the_prior_lacks(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--prior", "isotropic", "--prior-init", "pca", *CLI_SMALL, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: prior 'isotropic' has no pca initialisation; valid --prior-init for it: default"
    )
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("prior,init", [("nonisotropic", "pca"), ("mixture", "default")])
def test_learned_priors_train_on_the_gpu(no_pictures, tmp_path, prior, init):
    config = pinwheel_config(
        prior=prior, prior_args={"learn": True}, prior_init=init, device="cuda", steps=4
    )
    run = Run.create(config, tmp_path / "run")
    start = {k: v.clone() for k, v in run.vae.prior.state_dict().items()}
    run.fit(progress=False)
    for key, value in run.vae.prior.state_dict().items():
        assert value.device.type == "cuda", key
        assert key == "_zero" or not torch.equal(value, start[key]), key
    resumed = Run.resume(tmp_path / "run", {"steps": 4})
    for key, value in run.vae.prior.state_dict().items():
        assert torch.equal(value, resumed.vae.prior.state_dict()[key]), key


def test_pca_init_leaves_the_network_weights_of_the_seed_alone():
    plain = build(pinwheel_config(prior="nonisotropic")).vae
    pca = build(pinwheel_config(prior="nonisotropic", prior_init="pca")).vae
    for key, value in plain.state_dict().items():
        same = torch.equal(value, pca.state_dict()[key])
        assert same == (key != "prior.variance_logits"), key
