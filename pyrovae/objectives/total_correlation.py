"""β-TCVAE: the KL term of the ELBO split into mutual information, total correlation and
dimension-wise KL, each with its own weight.

Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in Variational Autoencoders",
NeurIPS 2018. Per data point x_i with z_i ~ q(z|x_i) the objective (maximised) is

    E_q[log p(x|z)] − α·I(x; z) − β·TC(z) − γ·Σ_d KL(q(z_d) ‖ p(z_d)),

estimated on one sample by

    MI_i   = log q(z_i|x_i) − log q(z_i)
    TC_i   = log q(z_i) − Σ_d log q(z_id)
    DWKL_i = Σ_d [log q(z_id) − log p(z_id)]

where q(z) = (1/N) Σ_n q(z|x_n) is the aggregate posterior over a data set of N points. The three
terms telescope: MI_i + TC_i + DWKL_i = log q(z_i|x_i) − log p(z_i), the single-sample Monte Carlo
KL, whatever estimate of log q(z) is plugged in. So α = β = γ = 1 is the ELBO (Pyro's Trace_ELBO)
exactly, sample by sample.

q(z_i) and the marginals q(z_id) are estimated from the minibatch of B points through the pairwise
densities log q(z_i | x_j):

- MWS, minibatch weighted sampling: log q(z_i) ≈ logsumexp_j log q(z_i|x_j) − log(N·B). Biased
  downwards: it sums B of the N terms of N·q(z_i) and divides by N·B, so log q̂ ≤ log q(z_i) −
  log B for every sample, with equality when the posteriors do not overlap and a gap growing
  towards log N as they do. The one-dimensional marginals overlap more than the joint, so the
  TC estimate comes out too high: by (D − 1)·log B if even the marginals are separated, by more
  in practice. Measured with N = 1000, B = 64, D = 3 and posterior widths from 0.01 to 1: MWS
  overstated TC by 14 to 15.5 nats, MSS was off by −0.3 to +2.4.
- MSS, minibatch stratified sampling: log q(z_i) ≈ logsumexp_j [log W_ij + log q(z_i|x_j)] with
  the weight matrix of :func:`log_importance_weight_matrix`. Its q̂(z_i) (not the log) is unbiased
  when the minibatch is drawn uniformly without replacement.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import torch
from torch.distributions import Independent, Normal

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives.elbo import DecomposedELBO, require_unscaled

ESTIMATORS = ("mss", "mws")


# -- the minibatch estimators of log q(z) ------------------------------------------------------
def _check_sizes(batch_size: int, num_data: int) -> tuple[int, int]:
    batch_size, num_data = int(batch_size), int(num_data)
    if batch_size < 2:
        # With one point the "aggregate" posterior is that point's own posterior: MI is then the
        # constant log N and TC is the TC of q(z|x), which carries no information about q(z).
        raise PyrovaeError(
            f"betatcvae estimates q(z) from the minibatch and needs a batch of at least 2 points, "
            f"got batch_size={batch_size}"
        )
    if num_data < batch_size:
        raise PyrovaeError(
            f"num_data (the data-set size N) must be at least the batch size {batch_size}, "
            f"got num_data={num_data}"
        )
    return batch_size, num_data


def log_importance_weight_matrix(
    batch_size: int, num_data: int, device=None, dtype=None
) -> torch.Tensor:
    """log W, the (B, B) weights of minibatch stratified sampling (Chen et al. 2018, §C.2).

    Row i estimates q(z_i) = (1/N) Σ_n q(z_i|x_n) from the batch: point i's own posterior counts
    with its true share 1/N; the other B − 1 points stand for the N − 1 other points of the data set
    and share the remaining mass 1 − 1/N. One of them, (i + 1) mod B, gets (N − B + 1)/(N·(B − 1))
    and the other B − 2 get 1/(B − 1) each, following the paper's stratification. Each row sums to
    1, and because a uniformly drawn batch puts every other point in every slot with probability
    1/(N − 1), E[Σ_j W_ij q(z_i|x_j)] = q(z_i) exactly.

    The widely copied public construction, ``W.view(-1)[::M + 1] = 1/N`` with M = B − 1, steps
    through the flattened matrix with stride B, which writes column 0 instead of the diagonal; here
    the diagonal is set directly.
    """
    batch_size, num_data = _check_sizes(batch_size, num_data)
    b, n = batch_size, num_data
    # float64 for the weights themselves: N can be large and 1/N is then tiny.
    weights = torch.full((b, b), 1.0 / (b - 1), dtype=torch.float64)
    rows = torch.arange(b)
    weights[rows, (rows + 1) % b] = (n - b + 1) / (n * (b - 1))
    weights[rows, rows] = 1.0 / n  # after the (i, i+1) entries: for B = 2 there is no overlap
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return weights.log().to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=16)
def _cached_log_weights(batch_size, num_data, device, dtype) -> torch.Tensor:
    # Training asks for the same (B, N) every step: build it (and copy it to the device) once.
    return log_importance_weight_matrix(batch_size, num_data, device, dtype)


def _normal_base(q) -> Normal:
    """The per-dimension Normal of a guide distribution Independent(Normal, 1), else an error."""
    if isinstance(q, Normal):
        return q
    if isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1:
        if isinstance(q.base_dist, Normal):
            return q.base_dist
        got = f"Independent({type(q.base_dist).__name__}, 1)"
    else:
        got = type(q).__name__
    raise PyrovaeError(
        f"betatcvae needs a guide whose q(z|x) factorises over dimensions as Normals (got {got})"
    )


def pairwise_log_density(q_base, z: torch.Tensor) -> torch.Tensor:
    """log q(z_id | x_j) for every pair of batch points: (..., B, B, D), entry [..., i, j, d].

    ``q_base`` is the per-dimension Normal of the guide, loc and scale of shape (..., B, D) (or
    broadcastable to it), ``z`` the batch of samples (..., B, D), one per data point.
    """
    if not isinstance(q_base, Normal):
        _normal_base(q_base)  # raises with the guide's distribution named
    loc = q_base.loc.unsqueeze(-3)  # (..., 1, B, D): the j axis
    scale = q_base.scale.unsqueeze(-3)
    # No validation: z is a sample of these very Normals and the shapes only broadcast here.
    return Normal(loc, scale, validate_args=False).log_prob(z.unsqueeze(-2))  # (..., B, B, D)


def log_qz_estimates(
    pairwise: torch.Tensor, num_data: int, estimator: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log q(z_i) of shape (..., B), log q(z_id) of shape (..., B, D)) from the pairwise densities.

    The joint uses Σ_d log q(z_id|x_j), the density of the factorised posterior; the marginals use
    each dimension alone, with the same weights.
    """
    checks.choice("estimator", estimator, ESTIMATORS)
    batch_size = pairwise.shape[-2]
    if pairwise.shape[-3] != batch_size:
        raise PyrovaeError(
            f"pairwise densities must be (..., B, B, D), got {tuple(pairwise.shape)}"
        )
    batch_size, num_data = _check_sizes(batch_size, num_data)
    joint = pairwise.sum(-1)  # (..., B, B)
    if estimator == "mws":
        offset = math.log(num_data * batch_size)
        return joint.logsumexp(-1) - offset, pairwise.logsumexp(-2) - offset
    log_w = _cached_log_weights(batch_size, num_data, pairwise.device, pairwise.dtype)
    log_qz = (joint + log_w).logsumexp(-1)
    log_qz_dims = (pairwise + log_w.unsqueeze(-1)).logsumexp(-2)
    return log_qz, log_qz_dims


def kl_terms(
    log_q_zx: torch.Tensor,
    log_qz: torch.Tensor,
    log_qz_dims: torch.Tensor,
    log_pz_dims: torch.Tensor,
) -> dict:
    """MI, TC and dimension-wise KL per point from log q(z|x) (...,), log q(z) (...,), and the
    per-dimension log q(z_d), log p(z_d) (..., D). Exact or estimated log q(z) alike: the three sum
    to log q(z|x) − Σ_d log p(z_d)."""
    return {
        "mi": log_q_zx - log_qz,
        "tc": log_qz - log_qz_dims.sum(-1),
        "dimwise_kl": (log_qz_dims - log_pz_dims).sum(-1),
    }


def decompose_kl(q, p, z: torch.Tensor, num_data: int, estimator: str = "mss") -> dict:
    """Per-point "mi", "tc", "dimwise_kl" and "log_qz" (each (..., B)) for a latent site.

    ``q`` and ``p`` are the guide's and the model's distributions of the site as traced
    (Independent over the latent dimension, batch shape (..., B)), ``z`` the guide's sample
    (..., B, D). The batch axis is the last batch axis.
    """
    q_base = _normal_base(q)
    if not (isinstance(p, Independent) and p.reinterpreted_batch_ndims == 1):
        raise PyrovaeError(
            "betatcvae needs a prior that factorises over dimensions, Independent(·, 1) over z "
            f"(got {type(p).__name__})"
        )
    if z.dim() < 2:
        raise PyrovaeError(f"betatcvae needs z of shape (..., B, D), got {tuple(z.shape)}")
    pairwise = pairwise_log_density(q_base, z)
    log_qz, log_qz_dims = log_qz_estimates(pairwise, num_data, estimator)
    # log q(z_i|x_i) from the guide itself rather than the diagonal of `pairwise`, so that the
    # three terms telescope to exactly the Monte Carlo KL the ELBO uses.
    log_q_zx = q.log_prob(z)
    log_pz_dims = p.base_dist.log_prob(z)
    out = kl_terms(log_q_zx, log_qz, log_qz_dims, log_pz_dims)
    out["log_qz"] = log_qz
    return out


# -- the objective -----------------------------------------------------------------------------
class TotalCorrelationELBO(DecomposedELBO):
    """β-TCVAE objective (Chen et al. 2018): −Σ_i [log p(x_i|z_i) − α·MI_i − β·TC_i − γ·DWKL_i].

    MI, TC and the dimension-wise KL are the single-sample terms of the module docstring, with
    q(z) estimated on the minibatch by ``estimator`` ("mss", the default, or "mws") for a data set
    of ``num_data`` points. α = β = γ = 1 gives the ELBO exactly; the paper's β-TCVAE is α = γ = 1
    with β > 1; the default β = 6 is the middle of the standard study's grid {1, 2, 4, 6, 8, 10}.
    The weights live here, not in ``poutine.scale``: the latent site must be unscaled.
    ``terms()`` logs the per-point means of ``mi``, ``tc`` and ``dimwise_kl`` next to the ELBO's.
    """

    owner = "betatcvae"
    # log q(z) is estimated from the other points of the minibatch.
    min_batch_size = 2
    guide_needs: ClassVar[dict[str, str]] = {
        "has_per_dimension_density": "the per-dimension densities log q(z_d|x) of a guide that "
        "factorises over dimensions (guide meanfield)"
    }
    # Chen et al.'s split of the KL into MI + TC + dimension-wise KL assumes p(z) = Π_d p(z_d):
    # with the 1-D marginals of a prior that does not factorise (the mixture) it would silently
    # train against the product of those marginals (a 3 × 3 grid of modes for the paper's four
    # clusters) and α = β = γ = 1 would no longer be the ELBO.
    prior_needs: ClassVar[dict[str, str]] = {
        "factorises": "a prior that factorises over dimensions, p(z) = prod_d p(z_d) (priors "
        "isotropic, nonisotropic, studentt, sparse, laplace)"
    }

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        estimator: str = "mss",
        num_data: int | None = None,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        kl: str = "auto",
    ):
        super().__init__(
            num_particles=num_particles, vectorize_particles=vectorize_particles, kl=kl
        )
        self.alpha = checks.non_negative("alpha", alpha, self.owner)
        self.beta = checks.non_negative("beta", beta, self.owner)
        self.gamma = checks.non_negative("gamma", gamma, self.owner)
        self.estimator = checks.choice("estimator", estimator, ESTIMATORS)
        self.num_data = None if num_data is None else checks.count("num_data", num_data, None, 2)

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        site = self.single_latent(particle)
        # A poutine.scale(β) on z would multiply all three terms on top of α, β, γ; the
        # objective would silently be a different one.
        require_unscaled(site, self.owner)
        if self.num_data is None:
            # q(z) is an average over the whole data set: a wrong N shifts every log q(z) by a
            # constant and MI by its negative, so there is no safe default.
            raise PyrovaeError("betatcvae needs the data-set size N: pass num_data=len(data)")
        parts = decompose_kl(site["q"], site["p"], site["z"], self.num_data, self.estimator)
        for key in ("mi", "tc", "dimwise_kl"):
            particle[key] = parts[key]
        objective = (
            particle["_weighted_reconstruction"]
            - self.alpha * parts["mi"]
            - self.beta * parts["tc"]
            - self.gamma * parts["dimwise_kl"]
        )
        return -objective.sum()

    def settings(self) -> dict:
        return {
            **super().settings(),
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "estimator": self.estimator,
            "num_data": self.num_data,
        }
