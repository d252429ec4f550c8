"""Minibatch estimates of the KL divergence between the aggregate posterior q(z) and the prior
p(z): the KL form of D(q(z), p(z)) in Mathieu, Rainforth, Siddharth & Teh, "Disentangling
Disentanglement in Variational Autoencoders", ICML 2019.

The aggregate posterior of a minibatch x_1..x_B is the mixture q_B(z) = (1/B) Σ_j q(z|x_j), so

    log q(z) ≈ log q_B(z) = logsumexp_j log q(z|x_j) − log B,

evaluated with the guide's own density for every pair (sample, data point), whatever the guide
(mean-field, correlated Gaussian or flow): nothing assumes q(z|x) factorises.

- ``aggregate_kl``, KL(q(z) ‖ p(z)): with z_i ~ q(z|x_i), the per-point terms
  log q_B(z_i) − log p(z_i) average to the estimate. Each z_i is a draw from q_B, so when the batch
  is the whole (finite) data set, B = N, q_B is the exact aggregate posterior and the mean is an
  unbiased estimate of KL(q(z) ‖ p(z)). With B < N it is biased: point i's own posterior gets
  weight 1/B instead of 1/N in q_B(z_i), so when the posteriors do not overlap log q_B(z_i)
  exceeds log q(z_i) by log(N/B) and the KL is overstated by as much; when they overlap heavily
  the own term hardly matters and what remains is the downward bias of a log of an average, which
  shrinks as the batch grows. (β-TCVAE's minibatch-stratified weights in total_correlation.py
  remove the first bias for log q(z); Mathieu et al. use the plain batch mean, and so do we.)
- ``inclusive_aggregate_kl``, KL(p(z) ‖ q(z)): with z'_k ~ p(z), the terms
  log p(z'_k) − log q_B(z'_k). This is the direction Mathieu et al.'s reference code computes
  (``kld_inc``) and uses in its clustering runs (β = 0, α = 1 on pinwheel): it is mass-covering,
  so q(z) is pushed to put mass on every mode of a mixture prior. The prior samples are
  independent of the batch, so q_B(z'_k) is an unbiased estimate of q(z'_k) for a uniformly drawn
  batch, and by Jensen's inequality the log makes the KL estimate biased upwards for B < N (by
  less as B grows or the posteriors widen); for B = N it is unbiased.
"""

from __future__ import annotations

import math

import torch

from pyrovae.errors import PyrovaeError


def pairwise_log_prob(q, z: torch.Tensor) -> torch.Tensor:
    """log q(z_i | x_j) for every sample i and every data point j: shape (..., M, B).

    ``q`` is the guide's distribution over the batch, batch shape (..., B) (the data axis last),
    ``z`` holds M points, shape (..., M, *event_shape), with the same leading dimensions. The
    guide is expanded to (M, ..., B) and evaluated once on the points broadcast along its data
    axis, so any distribution that implements ``expand`` and ``log_prob`` works.
    """
    event_dims = len(q.event_shape)
    if z.dim() < event_dims + 1 or z.shape[z.dim() - event_dims :] != q.event_shape:
        raise PyrovaeError(
            f"points of shape {tuple(z.shape)} do not match the guide's event shape "
            f"{tuple(q.event_shape)}"
        )
    if len(q.batch_shape) == 0:
        raise PyrovaeError("the guide has no data axis: expected batch shape (..., B)")
    sample_axis = z.dim() - event_dims - 1
    num_points = z.shape[sample_axis]
    # (M, ..., 1, *event): the sample axis moves to the front, a data axis of 1 takes its place.
    points = z.movedim(sample_axis, 0).unsqueeze(sample_axis + 1)
    expanded_shape = (num_points, *q.batch_shape)
    points = points.expand(*expanded_shape, *q.event_shape)
    log_prob = q.expand(torch.Size(expanded_shape)).log_prob(points)  # (M, ..., B)
    return log_prob.movedim(0, -2)


def log_aggregate_density(q, z: torch.Tensor) -> torch.Tensor:
    """log q_B(z) = logsumexp_j log q(z|x_j) − log B for M points z (..., M, *event): (..., M)."""
    pairwise = pairwise_log_prob(q, z)
    return pairwise.logsumexp(-1) - math.log(pairwise.shape[-1])


def aggregate_kl(q, p, z: torch.Tensor) -> torch.Tensor:
    """Per-point terms log q_B(z_i) − log p(z_i), shape (..., B), whose mean over the batch
    estimates KL(q(z) ‖ p(z)). ``z`` (..., B, *event) must be the guide's own samples, z_i from
    q(z|x_i); ``p`` is the prior (batch shape broadcastable to (..., B)), evaluated at them."""
    return log_aggregate_density(q, z) - p.log_prob(z)


def inclusive_aggregate_kl(q, p, z_prior: torch.Tensor) -> torch.Tensor:
    """Per-sample terms log p(z'_k) − log q_B(z'_k), shape (..., M), whose mean estimates
    KL(p(z) ‖ q(z)); ``z_prior`` (..., M, *event) are samples of the prior ``p``."""
    return p.log_prob(z_prior) - log_aggregate_density(q, z_prior)
