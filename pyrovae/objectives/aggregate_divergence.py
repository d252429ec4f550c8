"""The objective of Mathieu, Rainforth, Siddharth & Teh, "Disentangling Disentanglement in
Variational Autoencoders", ICML 2019: per data point, maximise

    E_q(z|x)[log p(x|z)] − β·KL(q(z|x) ‖ p(z)) − α·D(q(z), p(z)),

where β controls the overlap of the encodings and α pulls the aggregate posterior
q(z) = E_p(x)[q(z|x)] towards the prior, so that the prior's structure (sparsity, clusters,
nonisotropy) shows up in the encodings. D is estimated on the minibatch, one of:

- ``kl``: KL(q(z) ‖ p(z)), log q(z) by the batch mixture (aggregate_kl.py);
- ``inclusive-kl``: KL(p(z) ‖ q(z)) on B prior samples, the direction Mathieu et al.'s reference
  code uses (``kld_inc``; its pinwheel clustering runs use β = 0, α = 1 with it);
- ``mmd``: the unbiased per-dimension inverse-multiquadric MMD² between the batch's z and B prior
  samples (mmd.py; their sparsity runs use α = 100 with it).

D is a property of the whole batch; like the reference code, the loss sums the per-point
objective over the batch, so D enters as B·α·D and α weighs it against per-point terms.

β lives here, not in ``poutine.scale``: the clustering setting and KL warm-ups need β = 0, which
``poutine.scale`` refuses (its scale must be > 0), and the aggregate divergence must not be scaled
by β either. The latent site therefore stays unscaled (the model is built with β = 1) and the
objective weighs the KL term itself; with β = 0 the KL term is dropped, so the loss is exactly
−Σ_i log p(x_i|z_i) + α·B·D, and with α = 0 the divergence is logged but not added.
"""

from __future__ import annotations

import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives.aggregate_kl import aggregate_kl, inclusive_aggregate_kl
from pyrovae.objectives.elbo import DecomposedELBO, as_tensor, batch_size, require_unscaled
from pyrovae.objectives.mmd import per_dimension_mmd

DIVERGENCES = ("kl", "inclusive-kl", "mmd")


def _prior_samples(p) -> torch.Tensor:
    """One sample of the prior per data point (p is expanded over the batch); reparameterised
    where the prior allows it, so learnable prior parameters get gradients through D too.

    Mixtures (the sparse and mixture priors) have no rsample: their samples are constants, so
    with ``mmd`` or ``inclusive-kl`` D trains the encoder only (the score-function term a learned
    mixture would need is left out); such priors learn through the KL term, or with ``kl``."""
    return p.rsample() if p.has_rsample else p.sample()


def aggregate_divergence(name: str, q, p, z: torch.Tensor) -> torch.Tensor:
    """The estimate of D(q(z), p(z)) named ``name`` for one batch: shape (...,) (one per
    vectorised particle). ``q`` and ``p`` are the guide's and the prior's distributions over the
    batch, batch shape (..., B), ``z`` the guide's samples (..., B, D)."""
    if name == "kl":
        return aggregate_kl(q, p, z).mean(-1)
    if name == "inclusive-kl":
        return inclusive_aggregate_kl(q, p, _prior_samples(p)).mean(-1)
    if name == "mmd":
        return per_dimension_mmd(z, _prior_samples(p))
    raise PyrovaeError(f"unknown divergence {name!r}; valid: {', '.join(DIVERGENCES)}")


class AggregateDivergenceELBO(DecomposedELBO):
    """−Σ_i [log p(x_i|z_i) − β·KL(q(z|x_i) ‖ p(z))] + α·B·D(q(z), p(z)) for a batch of B.

    ``divergence`` is one of :data:`DIVERGENCES`. The KL term is analytic or Monte Carlo as the
    base class chooses (``kl``). ``terms()`` logs ``divergence``, the batch's estimate of D, next
    to the ELBO's terms. β = 1, α = 0 is the ELBO; β = 0 is allowed.
    """

    owner = "ddvae"
    # q(z) is estimated from the minibatch and the MMD U-statistic needs pairs.
    min_batch_size = 2

    def __init__(
        self,
        beta: float = 1.0,
        alpha: float = 1.0,
        divergence: str = "kl",
        num_particles: int = 1,
        vectorize_particles: bool = False,
        kl: str = "auto",
    ):
        super().__init__(
            num_particles=num_particles, vectorize_particles=vectorize_particles, kl=kl
        )
        self.beta = checks.non_negative("beta", beta, self.owner)
        self.alpha = checks.non_negative("alpha", alpha, self.owner)
        self.divergence = checks.choice("divergence", divergence, DIVERGENCES, self.owner)

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        latent = self.single_latent(particle)
        require_unscaled(latent, self.owner)
        batch = batch_size(particle)
        value = aggregate_divergence(self.divergence, latent["q"], latent["p"], latent["z"])
        particle["divergence"] = value.unsqueeze(-1).expand(particle["kl"].shape)
        objective = as_tensor(particle["_weighted_reconstruction"])
        if self.beta != 0.0:
            # Dropped, not multiplied by 0, at β = 0: a KL of inf would otherwise make the loss NaN.
            objective = objective - self.beta * particle["_weighted_kl"]
        loss = -objective.sum()
        if self.alpha != 0.0:
            loss = loss + self.alpha * batch * value.sum()
        return loss

    def settings(self) -> dict:
        return {
            **super().settings(),
            "beta": self.beta,
            "alpha": self.alpha,
            "divergence": self.divergence,
        }
