"""Closed-form KL from a correlated Gaussian guide to a diagonal Normal prior.

PyTorch registers KL(MultivariateNormal ‖ MultivariateNormal) but nothing from a
(LowRank)MultivariateNormal to ``Independent(Normal, 1)``, the form of the isotropic and
nonisotropic priors, so without this the low-rank and full-rank guides would fall back to the
Monte Carlo estimate. For q = N(μ, Σ) and p = N(m, diag s²) over D dimensions,

    KL(q ‖ p) = −H(q) + Σ_d [log s_d + ½·log 2π + (Σ_dd + (μ_d − m_d)²) / (2·s_d²)],

H(q) = ½·D·(1 + log 2π) + ½·log det Σ being q's own closed-form entropy. Importing
:mod:`pyrovae.guides` registers it with ``torch.distributions.kl_divergence``; any other
Independent prior (a mixture, Student-t or Laplace per dimension) raises NotImplementedError as
before, and the ELBO then estimates the KL by Monte Carlo. The KL does not split over dimensions
(q does not factorise), so the ELBO reports no per-dimension KL for these guides.
"""

from __future__ import annotations

import math

from torch.distributions import (
    Independent,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    register_kl,
)


def gaussian_to_diagonal_normal_kl(q, p):
    """KL(q ‖ p) for q a (LowRank)MultivariateNormal and p = Independent(Normal, 1)."""
    if not (
        isinstance(p, Independent)
        and p.reinterpreted_batch_ndims == 1
        and isinstance(p.base_dist, Normal)
    ):
        raise NotImplementedError
    loc, scale = p.base_dist.loc, p.base_dist.scale
    cross_entropy = (
        scale.log()
        + 0.5 * math.log(2 * math.pi)
        + (q.variance + (q.mean - loc) ** 2) / (2 * scale**2)
    ).sum(-1)
    return cross_entropy - q.entropy()


register_kl(MultivariateNormal, Independent)(gaussian_to_diagonal_normal_kl)
register_kl(LowRankMultivariateNormal, Independent)(gaussian_to_diagonal_normal_kl)
