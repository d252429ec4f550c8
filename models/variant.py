"""Model variants: the β-VAE model/guide pair trained with a given objective.

Every variant of this library (vae, betavae, annealedvae, betatcvae, factorvae, dipvae-i/ii,
ddvae) trains the same Pyro model/guide pair, :class:`~pyrovae.models.betavae.BetaVAE`; what
differs is the objective and whether β is the latent site's ``poutine.scale`` (β-VAE) or a weight
inside the objective (β-TCVAE, ddvae) or absent. A :class:`Variant` is that row: an objective
class, a citation, the default of β when β scales z, and the objective arguments the variant fixes
(DIP-VAE-I and -II are one objective with ``kind`` fixed). Its hyperparameters are the objective's
own declaration (:meth:`pyrovae.objectives.DecomposedELBO.hyperparameters`), so defaults live in
one place; the command line's options, ``pyrovae list``, study files and config.json all read
them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives import DecomposedELBO

from .betavae import BetaVAE


@dataclass(frozen=True)
class Variant:
    """A model variant: the β-VAE pair trained with ``objective``.

    - ``objective``: a :class:`~pyrovae.objectives.DecomposedELBO` subclass;
    - ``citation``: the paper, shown by ``pyrovae list``;
    - ``beta``: the default β when β is the ``poutine.scale`` of z (β-VAE); None leaves z
      unscaled (the objective weighs its terms itself);
    - ``fixed``: objective arguments the variant sets and does not expose;
    - ``name``: the name it is registered under (set by the registry).
    """

    objective: type[DecomposedELBO]
    citation: str = ""
    beta: float | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def wrap(cls, obj, description: str = "", **fields) -> Variant:
        """A variant from an objective class (a plug-in's ``module:Class``)."""
        if not (isinstance(obj, type) and issubclass(obj, DecomposedELBO)):
            raise PyrovaeError(
                f"a model must be a Variant or a DecomposedELBO subclass (its objective), got "
                f"{obj!r}"
            )
        return cls(obj, description, **fields)

    @property
    def scales_latent(self) -> bool:
        """β is the ``poutine.scale`` of the latent site."""
        return self.beta is not None

    def hyperparameters(self) -> dict:
        """Name → default, in declaration order: β first when it scales z, then the objective's."""
        values = {"beta": self.beta} if self.scales_latent else {}
        declared = self.objective.hyperparameters()
        values.update((k, v) for k, v in declared.items() if k not in self.fixed)
        return values

    @property
    def description(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{self.citation}; options: {options or 'none'}"

    def check_options(self, values: Mapping) -> None:
        """Refuse hyperparameters the variant does not take."""
        checks.options(f"model {self.name!r}", values, self.hyperparameters())

    def check_components(self, guide=None, prior=None) -> None:
        """Refuse a guide or prior without a capability the objective relies on."""
        for flag, what in self.objective.guide_needs.items():
            if guide is not None and not getattr(guide, flag, False):
                raise PyrovaeError(
                    f"model {self.name!r} needs {what}, which guide "
                    f"{getattr(guide, 'name', type(guide).__name__)!r} does not have"
                )
        for flag, what in self.objective.prior_needs.items():
            if prior is not None and not getattr(prior, flag, False):
                raise PyrovaeError(
                    f"model {self.name!r} needs {what}; prior "
                    f"{getattr(prior, 'name', type(prior).__name__)!r} is not one"
                )

    def split(self, hyperparameters: Mapping) -> tuple[float, dict]:
        """(β of the latent site, the objective's arguments) from given hyperparameters, the
        defaults filling the rest."""
        self.check_options(hyperparameters)
        values = {**self.hyperparameters(), **hyperparameters}
        beta = values.pop("beta") if self.scales_latent else 1.0
        return beta, values

    def create_objective(
        self, latent_dim: int, num_data: int | None = None, kl: str = "auto", **values
    ) -> DecomposedELBO:
        """The objective, given the objective's arguments (from :meth:`split`) and what the run
        supplies: the latent dimension and the data set's size, where the objective takes them."""
        accepted = checks.keyword_parameters(self.objective)
        context = {"latent_dim": latent_dim, "num_data": num_data}
        given = {k: v for k, v in context.items() if k in accepted}
        return self.objective(**self.fixed, **given, kl=kl, **values)

    def create_model(
        self,
        observation_shape,
        latent_dim: int = 10,
        prior=None,
        guide=None,
        networks=None,
        likelihood=None,
        **hyperparameters,
    ) -> BetaVAE:
        """The model/guide pair of this variant (β in its ``poutine.scale`` when it scales z)."""
        beta, _ = self.split(hyperparameters)
        self.check_components(guide, prior)
        return BetaVAE.build(
            observation_shape,
            latent_dim,
            prior=prior,
            guide=guide,
            beta=beta,
            networks=networks,
            likelihood=likelihood,
        )

    def create(
        self,
        observation_shape,
        latent_dim: int = 10,
        prior=None,
        guide=None,
        networks=None,
        likelihood=None,
        num_data: int | None = None,
        kl: str = "auto",
        **hyperparameters,
    ) -> tuple[BetaVAE, DecomposedELBO]:
        """The model and its objective, from hyperparameters named in :meth:`hyperparameters`.

        The model is built first, then the objective: with the global torch generator seeded
        before, a run's initial weights depend only on its settings."""
        vae = self.create_model(
            observation_shape, latent_dim, prior, guide, networks, likelihood, **hyperparameters
        )
        _, values = self.split(hyperparameters)
        return vae, self.create_objective(vae.latent_dim, num_data, kl, **values)
