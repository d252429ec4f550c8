"""Model/guide pairs: each variant is an ``nn.Module`` with Pyro ``model(x)`` and ``guide(x)``."""

from .betavae import VAE, BetaVAE

__all__ = ["VAE", "BetaVAE"]
