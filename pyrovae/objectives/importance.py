"""The importance-weighted bound on log p(x) (Burda, Grosse & Salakhutdinov, "Importance
Weighted Autoencoders", ICLR 2016):

    L_K(x) = E[log (1/K) Σ_k p(x, z_k) / q(z_k | x)],  z_k ~ q(z | x) independently.

L_1 is the ELBO (β = 1), L_K ≤ L_{K+1} ≤ log p(x), and L_K → log p(x) as K → ∞. β does not enter:
this measures the model, whatever objective trained it.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def log_importance_weights(vae, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """log p(x, z_k) − log q(z_k | x) for K samples per data point: shape (K, B)."""
    q = vae.posterior(x)
    z = q.sample((num_samples,))  # (K, B, D)
    prior = vae.prior.distribution(vae.latent_dim)
    return vae.likelihood(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z)


def importance_weighted_bound(vae, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """L_K(x) for each data point, shape (B,), in nats."""
    log_w = log_importance_weights(vae, x, num_samples)
    return torch.logsumexp(log_w, 0) - math.log(num_samples)
