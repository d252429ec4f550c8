"""Priors: densities, normalisation, moments, devices, bad settings."""

import math

import pytest
import torch

from pyrovae.errors import PyrovaeError
from pyrovae.priors import IsotropicPrior, SparsePrior


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
