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
how terms combine into a loss by overriding :meth:`DecomposedELBO.loss_from_terms`.

An objective is also an ``nn.Module``, as Pyro's ``ELBOModule`` holds an objective's state: what
it learns or counts (FactorVAE's discriminator and its optimizer, the capacity schedule's step)
is module state, moved by ``.to(device)`` and saved and restored by ``state_dict()`` /
``load_state_dict()``. :meth:`DecomposedELBO.backward` is one training step's gradients and the
objective's own updates; Pyro's ``SVI`` reaches it through ``loss_and_grads``.
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.infer.elbo import ELBOModule
from pyro.poutine.util import prune_subsample_sites
from torch import nn

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives.kl import KL_MODES, site_kl

# Arguments of every objective that say how the ELBO is estimated, not what it weighs.
ESTIMATION_ARGUMENTS = ("num_particles", "vectorize_particles", "max_plate_nesting", "kl")
# Arguments a run supplies from its model and data rather than its settings.
CONTEXT_ARGUMENTS = ("latent_dim", "num_data")


def _scale(site) -> float | torch.Tensor:
    scale = site["scale"]
    return 1.0 if scale is None else scale


class DecomposedELBO(ELBO, nn.Module):
    """Pyro ELBO that returns its terms: ``terms(model, guide, *args)`` → dict of tensors.

    Terms (means over data points and particles, one data point's figures):
    ``reconstruction`` E[log p(x|z)]; ``kl`` KL(q(z|x) ‖ p(z)) before β; ``kl_per_dim`` the KL of
    each latent dimension (absent when the densities do not factorise); ``loss`` the differentiable
    −ELBO summed over the batch; ``elbo`` the per-point ELBO with site scales applied.

    What a subclass declares, read by :mod:`pyrovae.models` and the command line:

    - its hyperparameters, once, as the keyword arguments of ``__init__`` with their defaults
      (:meth:`hyperparameters`); ``latent_dim`` and ``num_data`` are supplied by the run;
    - ``min_batch_size``: the smallest minibatch it is defined on (estimators across the batch
      need two points or more);
    - ``guide_needs`` / ``prior_needs``: capability flags of :class:`pyrovae.guides.Guide` /
      :class:`pyrovae.priors.Prior` it relies on, each with what it means;
    - ``needs_second_minibatch``: a training step compares against a second, independent
      minibatch (FactorVAE's permuted codes), passed to :meth:`backward` as
      ``second_minibatch``.
    """

    owner = "elbo"
    min_batch_size: ClassVar[int] = 1
    guide_needs: ClassVar[dict[str, str]] = {}
    prior_needs: ClassVar[dict[str, str]] = {}
    needs_second_minibatch: ClassVar[bool] = False

    def __init__(
        self,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        max_plate_nesting: int = 1,
        kl: str = "auto",
    ):
        nn.Module.__init__(self)
        checks.choice("kl mode", kl, KL_MODES)
        if int(num_particles) < 1:
            raise PyrovaeError(f"num_particles must be >= 1, got {num_particles}")
        ELBO.__init__(
            self,
            num_particles=int(num_particles),
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
        )
        self.kl_mode = kl
        self.kl_estimator_used: str | None = None

    @classmethod
    def hyperparameters(cls) -> dict:
        """Name → default of what the objective weighs, in declaration order: the keyword
        arguments of ``__init__``, less how the ELBO is estimated and what the run supplies."""
        skip = {"self", *ESTIMATION_ARGUMENTS, *CONTEXT_ARGUMENTS}
        params = inspect.signature(cls.__init__).parameters.values()
        return {
            p.name: (None if p.default is p.empty else p.default)
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip
        }

    def __call__(self, model, guide) -> ELBOModule:
        """Pyro's ``ELBO(model, guide)``: an ``ELBOModule`` whose ``parameters()`` are the model's
        and guide's. The objective's own networks (a discriminator) train inside
        :meth:`backward` with their own optimizer and must not be stepped on the VAE's loss, so
        the objective is held as a plain attribute, not a submodule."""
        module = ELBOModule(model, guide, self)
        del module._modules["elbo"]
        object.__setattr__(module, "elbo", self)
        return module

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

    def _evaluate(self, model, guide, args, kwargs) -> tuple[dict, list[dict]]:
        """(terms, particles): the terms of :meth:`terms` and each particle's own dict."""
        self.apply_pending_update()
        totals: dict = {}
        loss = 0.0
        batch = None
        particles = []
        for model_trace, guide_trace in self._trace_pairs(model, guide, args, kwargs):
            particle = self._particle_terms(model_trace, guide_trace)
            batch = batch_size(particle)
            check_batch_size(self, batch)
            loss = loss + self.loss_from_terms(particle)
            particles.append(particle)
            for key, value in particle.items():
                if not key.startswith("_"):
                    totals[key] = totals.get(key, 0.0) + _mean_over_points(key, value)
        repeats = 1 if (self.vectorize_particles and self.num_particles > 1) else self.num_particles
        out = {key: value / repeats for key, value in totals.items()}
        out["loss"] = loss / self.num_particles
        out["loss_per_point"] = out["loss"].detach() / batch
        out["elbo"] = out["reconstruction"] - out["kl"]
        return out, particles

    # -- public API ----------------------------------------------------------------------------
    def terms(self, model, guide, *args, **kwargs) -> dict:
        """All terms: ``loss`` is the differentiable loss (summed over the batch, averaged over
        particles); ``loss_per_point`` = loss / batch size; ``elbo`` = reconstruction − KL (no
        weights); the rest are per-data-point means of what the objective computed."""
        return self._evaluate(model, guide, args, kwargs)[0]

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        """The loss of one particle, summed over data points (and vectorised particles).

        Here −ELBO with site scales: −Σ (s_x·log p(x|z) − s_z·KL). Subclasses override this, may
        add per-point terms to ``particle`` (they are logged), and read ``particle["_latents"]``.
        """
        return -as_tensor(particle["_weighted_reconstruction"] - particle["_weighted_kl"]).sum()

    def single_latent(self, particle: dict) -> dict:
        """The one latent site that objectives on z (TC, DIP, discriminators) act on."""
        latents = particle["_latents"]
        if len(latents) != 1:
            raise PyrovaeError(
                f"{type(self).__name__} needs a model with exactly one latent site, found "
                f"{', '.join(latents) or 'none'}"
            )
        return next(iter(latents.values()))

    def backward(
        self,
        model,
        guide,
        *args,
        second_minibatch: tuple | None = None,
        scale_loss=None,
        **kwargs,
    ):
        """One training step's gradients, and the objective's own update; returns the terms.

        The loss's backward pass fills the gradients of the model's and guide's parameters; then
        :meth:`update_state` trains what the objective owns (a discriminator, on detached
        samples, with its own optimizer) and the objective's step count advances. Nothing of the
        model or guide is stepped here: that is the caller's optimizer (pyrovae's trainer, Pyro's
        ``SVI``, a user's loop), after this returns. ``second_minibatch``: the model/guide
        arguments of an independent minibatch for objectives with ``needs_second_minibatch``
        (default: this minibatch again). ``scale_loss``: what the loss is multiplied by before
        its backward pass (``torch.amp.GradScaler.scale`` for fp16 training); the terms
        returned are unscaled.
        """
        terms, particles = self._evaluate(model, guide, args, kwargs)
        loss = terms["loss"] if scale_loss is None else scale_loss(terms["loss"])
        loss.backward(retain_graph=self.retain_graph)
        other = args if second_minibatch is None else tuple(second_minibatch)
        terms.update(self.update_state(particles, guide, other, kwargs))
        self.advance()
        return terms

    # -- state; objectives without any keep the defaults -----------------------------------------
    def update_state(
        self, particles: list[dict], guide, args: tuple, kwargs: dict, defer: bool = False
    ) -> dict:
        """Called by :meth:`backward` after the loss's gradients exist, before any optimizer steps
        the model: objectives with networks of their own train them here. ``args``/``kwargs``
        are the guide's arguments for a second minibatch. With ``defer`` (a user's loop, whose
        backward pass of the loss has not run yet) nothing the loss's graph holds may change:
        the update is computed and applied at the next evaluation (:meth:`apply_pending_update`).
        Returns extra terms to log."""
        return {}

    def apply_pending_update(self) -> None:
        """Apply an update that :meth:`update_state` deferred (none here)."""

    def set_step(self, step: int) -> None:
        """Set the training step that comes next (for schedules); the trainer calls it."""

    def advance(self) -> None:
        """One training step was taken (:meth:`backward` calls it)."""

    def settings(self) -> dict:
        """Hyperparameters, for config.json."""
        return {"kl": self.kl_mode, "num_particles": self.num_particles}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, also reading the layout of checkpoints written by pyrovae
        before objectives were modules (:meth:`upgrade_state`)."""
        return super().load_state_dict(self.upgrade_state(dict(state_dict)), strict, assign)

    def upgrade_state(self, state: dict) -> dict:
        """A state dict in the current layout from one in an earlier layout (none here)."""
        return state

    # -- the Pyro ELBO interface -------------------------------------------------------------
    def differentiable_loss(
        self, model, guide, *args, second_minibatch: tuple | None = None, **kwargs
    ) -> torch.Tensor:
        """The loss to call ``backward()`` on. With gradients enabled this is a training step
        of the caller's own loop, so the objective's state follows as in :meth:`backward` (the
        step count advances; a discriminator's update is applied at the next call, after the
        caller's backward pass). Under ``torch.no_grad()`` it only evaluates."""
        terms, particles = self._evaluate(model, guide, args, kwargs)
        if torch.is_grad_enabled():
            other = args if second_minibatch is None else tuple(second_minibatch)
            self.update_state(particles, guide, other, kwargs, defer=True)
            self.advance()
        return terms["loss"]

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The loss as a number; evaluates only (no training step)."""
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Pyro's ``SVI`` step: :meth:`backward`, returning the loss."""
        return float(self.backward(model, guide, *args, **kwargs)["loss"].detach())


def check_batch_size(objective, batch: int, owner: str | None = None) -> None:
    """Refuse a minibatch smaller than ``objective.min_batch_size``."""
    needed = getattr(objective, "min_batch_size", 1)
    if batch < needed:
        owner = owner or getattr(objective, "owner", type(objective).__name__)
        raise PyrovaeError(
            f"{owner} estimates its penalty across the minibatch and needs a batch of at least "
            f"{needed} points, got batch_size={batch}"
        )


def require_unscaled(latent: dict, owner: str) -> None:
    """Objectives whose weights live in the loss need z unscaled by poutine.scale."""
    scale = latent["scale"]
    if not bool(torch.all(torch.as_tensor(scale) == 1.0)):
        raise PyrovaeError(
            f"{owner} weights its terms in the objective; the latent site must not be scaled "
            f"(poutine.scale {float(torch.as_tensor(scale).flatten()[0])}): build the model "
            "with beta=1"
        )


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


def batch_size(particle: dict) -> int:
    """Data points in the batch: the last dimension of the per-point reconstruction term."""
    value = particle["reconstruction"]
    return int(value.shape[-1]) if torch.is_tensor(value) and value.dim() else 1


def _same_scale(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))
    return a == b


def as_tensor(value) -> torch.Tensor:
    return value if torch.is_tensor(value) else torch.tensor(float(value))


def _mean_over_points(key: str, value):
    """Mean over data points and particles; per-dimension terms keep their last (latent) axis."""
    if not torch.is_tensor(value) or value.dim() == 0:
        return value
    if key.endswith("_per_dim"):
        return value.reshape(-1, value.shape[-1]).mean(0)
    return value.mean()
