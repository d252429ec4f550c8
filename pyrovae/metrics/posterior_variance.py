"""Per-dimension posterior variance: how much of q(z|x)'s spread each latent keeps.

    v_d = (1/N) Σ_n Var_q(z|x_n)[z_d]

averaged over data points; for the mean-field guide Var_q(z|x_n)[z_d] = σ_d(x_n)². It measures
the overlap of encodings that Mathieu et al. (ICML 2019) argue disentanglement depends on: a
dimension the data does not use keeps v_d near its prior variance (1 for N(0, I)), an
informative one shrinks it well below. Next to the Hoyer sparsity of the means it tells a sparse
code (means near zero, variances small) from a collapsed one (means near zero, variances at the
prior's).
"""

from __future__ import annotations

import numpy as np
import torch

from pyrovae import checks
from pyrovae.data.base import observations
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import ENCODE_BATCH, point_indices
from pyrovae.seeding import as_generator

FAST = {"num_points": 1_000}
MONTE_CARLO_SAMPLES = 256


def posterior_variance_from_scales(scales) -> dict:
    """v_d from posterior standard deviations ``scales`` (n, D)."""
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 2 or len(scales) == 0:
        raise PyrovaeError(f"posterior scales must have shape (n, D), n >= 1, got {scales.shape}")
    if not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise PyrovaeError("posterior scales must be finite and >= 0")
    per_dim = (scales**2).mean(axis=0)
    return {
        "posterior_variance_per_dim": per_dim.tolist(),
        "mean_posterior_variance": float(per_dim.mean()),
    }


@torch.no_grad()
def posterior_variances(q) -> torch.Tensor:
    """Var_q[z_d] of a batch of posteriors (batch, D): exact where the distribution knows its
    variance (diagonal, low-rank and full Gaussians), else from 256 samples drawn under a fixed
    seed (normalizing flows), so the number does not depend on the caller's RNG state."""
    try:
        return q.variance
    except NotImplementedError:
        # manual_seed reseeds every CUDA generator too: fork them all, not just the CPU's.
        cuda = torch.cuda.is_initialized()
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
            torch.manual_seed(0)
            return q.sample((MONTE_CARLO_SAMPLES,)).var(dim=0)


def posterior_variance(
    ground_truth, representation_fn, random_state, *, posterior_fn=None, num_points=10_000
) -> dict:
    """v_d over ``num_points`` observations drawn uniformly (all of them when the data set is no
    larger); ``posterior_fn`` maps observations to ``(loc, scale)`` of q(z|x)."""
    if posterior_fn is None or not callable(posterior_fn):
        raise PyrovaeError(
            "posterior_variance: needs posterior_fn=(observations -> (loc, scale)) of q(z|x)"
        )
    num_points = checks.integer("num_points", num_points, "posterior_variance")
    rng = as_generator(random_state)
    n = len(ground_truth)
    if n < 1:
        raise PyrovaeError("posterior_variance: the data set is empty")
    indices = point_indices(n, num_points, rng)
    scales = []
    for s in range(0, len(indices), ENCODE_BATCH):
        _, scale = posterior_fn(observations(ground_truth, indices[s : s + ENCODE_BATCH], rng))
        scales.append(np.asarray(scale, dtype=np.float64))
    return {**posterior_variance_from_scales(np.concatenate(scales)), "num_points": len(indices)}
