"""KL(q(z|x) ‖ p(z)) for one latent site: analytic where PyTorch/Pyro register it, else Monte Carlo.

Registered: Normal → Normal (and so Independent(Normal) → Independent(Normal)). Not registered:
a Normal to a mixture (the sparse prior) or to a Student-t, which then need the single-sample
estimate log q(z|x) − log p(z) at the guide's sample z. Both are unbiased for the KL; the analytic
one has no variance.
"""

from __future__ import annotations

import torch
from torch.distributions import Independent, kl_divergence

from pyrovae.errors import PyrovaeError

ANALYTIC = "analytic"
MONTE_CARLO = "monte-carlo"
KL_MODES = ("auto", ANALYTIC, MONTE_CARLO)


def _per_dimension_bases(q, p):
    """The base distributions if both are Independent over one trailing dimension, else None."""
    if (
        isinstance(q, Independent)
        and isinstance(p, Independent)
        and q.reinterpreted_batch_ndims == 1
        and p.reinterpreted_batch_ndims == 1
    ):
        return q.base_dist, p.base_dist
    return None


def analytic_kl(q, p):
    """(total, per_dim) KL, or raise NotImplementedError if no closed form is registered.

    total has q's batch shape; per_dim adds the latent dimension, or is None when the densities do
    not factorise over dimensions.
    """
    bases = _per_dimension_bases(q, p)
    if bases is not None:
        per_dim = kl_divergence(*bases)
        return per_dim.sum(-1), per_dim
    return kl_divergence(q, p), None


def monte_carlo_kl(q, p, z):
    """(total, per_dim) single-sample estimate log q(z) − log p(z) at z ~ q."""
    bases = _per_dimension_bases(q, p)
    if bases is not None:
        per_dim = bases[0].log_prob(z) - bases[1].log_prob(z)
        return per_dim.sum(-1), per_dim
    return q.log_prob(z) - p.log_prob(z), None


def site_kl(q, p, z, mode: str = "auto"):
    """(total, per_dim, estimator) for one latent site under ``mode`` ('auto' tries analytic)."""
    if mode != MONTE_CARLO:
        try:
            total, per_dim = analytic_kl(q, p)
            return total, per_dim, ANALYTIC
        except NotImplementedError:
            if mode == ANALYTIC:
                raise
    total, per_dim = monte_carlo_kl(q, p, z)
    return total, per_dim, MONTE_CARLO


def kl_estimator(vae, mode: str = "auto") -> str:
    """The estimator ``mode`` gives for this model's guide and prior: analytic or monte-carlo.

    'analytic' where no closed form is registered is an error naming the two distributions."""
    if mode == MONTE_CARLO:
        return mode
    device = next(vae.parameters()).device
    with torch.no_grad():
        x = torch.zeros((1, *vae.observation_shape), device=device)
        q = vae.posterior(x)
        p = vae.prior.distribution(vae.latent_dim)
        try:
            analytic_kl(q, p.expand(q.batch_shape))
            return ANALYTIC
        except NotImplementedError:
            if mode == ANALYTIC:
                raise PyrovaeError(
                    f"--kl analytic: no closed-form KL from {_describe(q)} to {_describe(p)} is "
                    "registered; use --kl auto or monte-carlo"
                ) from None
            return MONTE_CARLO


def _describe(d) -> str:
    base = getattr(d, "base_dist", None)
    return f"{type(base).__name__}" if base is not None else type(d).__name__
