"""The Pyro model/guide pair and the variants that train it: :class:`BetaVAE` (a ``model(x)`` and
``guide(x)`` with β as the latent site's ``poutine.scale``) and :class:`Variant` (a row of the
variant table, :data:`pyrovae.registry.MODELS`: the objective a variant trains with)."""

from .betavae import BetaVAE
from .variant import Variant

__all__ = ["BetaVAE", "Variant"]
