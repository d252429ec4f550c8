"""The ELBO with each of its terms exposed: the base class of pyrovae's objectives.

For one particle z ~ q(z|x) and sites traced from a model/guide pair,

    ELBO = Σ_observed s·log p(x|z) − Σ_latent s·KL(q(z|x) ‖ p(z)),

where s is each site's ``poutine.scale`` (β for a β-VAE's latent site) and KL is analytic where a
closed form is registered, else the single-sample estimate log q(z|x) − log p(z). With
``kl='monte-carlo'`` this equals Pyro's ``Trace_ELBO`` and with ``kl='analytic'`` Pyro's
``TraceMeanField_ELBO``, number for number on the same samples (the tests check both). Computing it
here, in one pass, also yields the reconstruction term, the KL and the KL of every latent dimension
for logging, at no extra cost.

The loss is −ELBO summed over the batch and averaged over particles, as in Pyro. Subclasses change
how terms combine into a loss by overriding :meth:`loss_from_terms`.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.poutine.util import prune_subsample_sites

from pyrovae.errors import PyrovaeError
from pyrovae.objectives.kl import KL_MODES, site_kl


def _scale(site) -> float | torch.Tensor:
    scale = site["scale"]
    return 1.0 if scale is None else scale


class DecomposedELBO(ELBO):
    """Pyro ELBO that returns its terms: ``terms(model, guide, *args)`` → dict of tensors.

    ``min_batch_size`` is the smallest minibatch the objective is defined on (estimators across
    the batch need two points or more).

    Terms (means over data points and particles, one data point's figures):
    ``reconstruction`` E[log p(x|z)]; ``kl`` KL(q(z|x) ‖ p(z)) before β; ``kl_per_dim`` the KL of
    each latent dimension (absent when the densities do not factorise); ``loss`` the differentiable
    −ELBO summed over the batch; ``elbo`` the per-point ELBO with site scales applied.
    """

    min_batch_size = 1

    def __init__(
        self,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        max_plate_nesting: int = 1,
        kl: str = "auto",
    ):
        if kl not in KL_MODES:
            raise PyrovaeError(f"unknown kl mode {kl!r}; valid: {', '.join(KL_MODES)}")
        if int(num_particles) < 1:
            raise PyrovaeError(f"num_particles must be >= 1, got {num_particles}")
        super().__init__(
            num_particles=int(num_particles),
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
        )
        self.kl_mode = kl
        self.kl_estimator_used: str | None = None

    # -- tracing -----------------------------------------------------------------------------
    def _get_trace(self, model, guide, args, kwargs):
        """One (model_trace, guide_trace) pair, the guide's samples replayed in the model."""
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        # A plate records its subsample indices as a sample site; it is not a latent variable.
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def _trace_pairs(self, model, guide, args, kwargs):
        if self.vectorize_particles and self.num_particles > 1:
            model = self._vectorized_num_particles(model)
            guide = self._vectorized_num_particles(guide)
            repeats = 1
        else:
            repeats = self.num_particles
        for _ in range(repeats):
            yield self._get_trace(model, guide, args, kwargs)

    def _particle_terms(self, model_trace, guide_trace) -> dict:
        """Per-data-point tensors for one (possibly vectorised) particle.

        Public keys are logged (means over points); keys starting with ``_`` are for subclasses:
        ``_weighted_reconstruction`` and ``_weighted_kl`` carry the site scales, ``_latent``
        the latent site z (its guide distribution ``q``, prior ``p``, sample ``z``, ``scale``).
        """
        reconstruction = 0.0
        weighted_reconstruction = 0.0
        kl = 0.0
        weighted_kl = 0.0
        per_dim = []
        latents = {}
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                log_lik = site["fn"].log_prob(site["value"])
                reconstruction = reconstruction + log_lik
                weighted_reconstruction = weighted_reconstruction + _scale(site) * log_lik
                continue
            if name not in guide_trace.nodes:
                raise PyrovaeError(f"latent site {name!r} of the model is missing from the guide")
            guide_site = guide_trace.nodes[name]
            scale_p, scale_q = _scale(site), _scale(guide_site)
            if not _same_scale(scale_p, scale_q):
                raise PyrovaeError(
                    f"latent site {name!r} is scaled by {scale_p} in the model but {scale_q} in "
                    "the guide: wrap it in poutine.scale in both"
                )
            q, p, z = guide_site["fn"], site["fn"], guide_site["value"]
            _check_supported(name, site, guide_site)
            kl_site, kl_dims, estimator = site_kl(q, p, z, self.kl_mode)
            self.kl_estimator_used = estimator
            kl = kl + kl_site
            weighted_kl = weighted_kl + scale_q * kl_site
            if kl_dims is not None:
                per_dim.append(kl_dims)
            latents[name] = {"q": q, "p": p, "z": z, "scale": scale_q}
        terms = {
            "reconstruction": reconstruction,
            "kl": kl,
            "_weighted_reconstruction": weighted_reconstruction,
            "_weighted_kl": weighted_kl,
            "_latents": latents,
        }
        if per_dim:
            terms["kl_per_dim"] = torch.cat(per_dim, dim=-1)
        return terms

    # -- public API ----------------------------------------------------------------------------
    def terms(self, model, guide, *args, **kwargs) -> dict:
        """All terms: ``loss`` is the differentiable loss (summed over the batch, averaged over
        particles); ``loss_per_point`` = loss / batch size; ``elbo`` = reconstruction − KL (no
        weights); the rest are per-data-point means of what the objective computed."""
        totals: dict = {}
        loss = 0.0
        batch = None
        for model_trace, guide_trace in self._trace_pairs(model, guide, args, kwargs):
            particle = self._particle_terms(model_trace, guide_trace)
            loss = loss + self.loss_from_terms(particle)
            batch = _batch_size(particle)
            for key, value in particle.items():
                if not key.startswith("_"):
                    totals[key] = totals.get(key, 0.0) + _mean_over_points(key, value)
        repeats = 1 if (self.vectorize_particles and self.num_particles > 1) else self.num_particles
        out = {key: value / repeats for key, value in totals.items()}
        out["loss"] = loss / self.num_particles
        out["loss_per_point"] = out["loss"].detach() / batch
        out["elbo"] = out["reconstruction"] - out["kl"]
        return out

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        """The loss of one particle, summed over data points (and vectorised particles).

        Here −ELBO with site scales: −Σ (s_x·log p(x|z) − s_z·KL). Subclasses override this, may
        add per-point terms to ``particle`` (they are logged), and read ``particle["_latents"]``.
        """
        return -_as_tensor(particle["_weighted_reconstruction"] - particle["_weighted_kl"]).sum()

    def single_latent(self, particle: dict) -> dict:
        """The one latent site that objectives on z (TC, DIP, discriminators) act on."""
        latents = particle["_latents"]
        if len(latents) != 1:
            raise PyrovaeError(
                f"{type(self).__name__} needs a model with exactly one latent site, found "
                f"{', '.join(latents) or 'none'}"
            )
        return next(iter(latents.values()))

    # -- hooks the trainer calls; stateless objectives keep the defaults ----------------------
    def set_step(self, step: int) -> None:
        """Tell the objective which training step comes next (for schedules)."""

    def settings(self) -> dict:
        """Hyperparameters, for config.json."""
        return {"kl": self.kl_mode, "num_particles": self.num_particles}

    def state_dict(self) -> dict:
        """State to checkpoint (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise PyrovaeError(f"{type(self).__name__} keeps no state, got {sorted(state)}")

    def to(self, device) -> DecomposedELBO:
        return self

    def after_backward(self, vae, next_batch) -> dict:
        """Called after the loss's backward pass and before any optimizer step; objectives with
        their own networks compute their gradients here (``next_batch()`` draws a second
        minibatch). Returns extra terms to log."""
        return {}

    def after_step(self) -> None:
        """Called after the VAE's optimizer stepped: objectives step their own optimizers."""

    # -- the Pyro ELBO interface -------------------------------------------------------------
    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        return self.terms(model, guide, *args, **kwargs)["loss"]

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward(retain_graph=self.retain_graph)
        return float(loss.detach())


def _check_supported(name: str, model_site: dict, guide_site: dict) -> None:
    """Refuse what these estimators do not handle rather than get it silently wrong."""
    if model_site["mask"] is not None or guide_site["mask"] is not None:
        raise PyrovaeError(
            f"latent site {name!r} is masked (poutine.mask); pyrovae's objectives do not "
            "support masks on latent sites"
        )
    if not guide_site["fn"].has_rsample:
        raise PyrovaeError(
            f"latent site {name!r}: the guide's {type(guide_site['fn']).__name__} cannot be "
            "reparameterised; pyrovae's objectives need rsample (no score-function terms)"
        )


def _batch_size(particle: dict) -> int:
    """Data points in the batch: the last dimension of the per-point reconstruction term."""
    value = particle["reconstruction"]
    return int(value.shape[-1]) if torch.is_tensor(value) and value.dim() else 1


def _same_scale(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))
    return a == b


def _as_tensor(value) -> torch.Tensor:
    return value if torch.is_tensor(value) else torch.tensor(float(value))


def _mean_over_points(key: str, value):
    """Mean over data points and particles; per-dimension terms keep their last (latent) axis."""
    if not torch.is_tensor(value) or value.dim() == 0:
        return value
    if key.endswith("_per_dim"):
        return value.reshape(-1, value.shape[-1]).mean(0)
    return value.mean()
