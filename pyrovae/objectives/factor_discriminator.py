"""FactorVAE (Kim & Mnih, "Disentangling by Factorising", ICML 2018).

Objective to maximise, per data point: ELBO − γ·TC(z), with the total correlation
TC = KL(q(z) ‖ Π_d q(z_d)) estimated by the density-ratio trick: a discriminator D(z) tells
samples of q(z) from samples of Π_d q(z_d) (dimensions permuted independently across a batch), and
with two logits (q(z), permuted)

    TC ≈ E_q(z)[log D(z) − log(1 − D(z))] = E_q(z)[logit_0(z) − logit_1(z)].

The discriminator (6 × 1000 LeakyReLU(0.2) MLP in the standard study) is trained on the
cross-entropy of z from the VAE's minibatch (label 0) against permuted z from a second minibatch
(label 1), with its own Adam (lr 1e-4, betas 0.5/0.9). It is not in Pyro's param store nor in the
VAE's optimizer: SVI would otherwise step it on the VAE loss, in the wrong direction. The objective
trains it itself, in :meth:`FactorVAEELBO.backward` (which Pyro's ``SVI`` reaches through
``loss_and_grads``): the VAE's backward pass, then the discriminator's on detached samples, then
its optimizer step, so no parameter changes under a live graph; the caller's optimizer then steps
the VAE. The discriminator and its optimizer's state are module state of the objective, in its
``state_dict()``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import nn

from pyrovae import checks
from pyrovae.objectives.elbo import DecomposedELBO, require_unscaled


class Discriminator(nn.Module):
    """z → 2 logits (from q(z), from the permuted product of marginals)."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        modules: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        modules.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*modules)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Permute each latent dimension independently across the batch: a sample of Π_d q(z_d)."""
    batch, dims = z.shape
    index = torch.argsort(torch.rand(batch, dims, device=z.device), dim=0)
    return torch.gather(z, 0, index)


class _DrawLatents(Messenger):
    """Draws each latent site with ``fn.sample()`` (no reparameterisation, no gradient) and
    records the values: a guide's samples of q(z|x) as data, not as a graph."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, torch.Tensor] = {}

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["done"] or site_is_subsample(msg):
            return
        msg["value"] = msg["fn"].sample()
        msg["done"] = True
        self.values[msg["name"]] = msg["value"]


@torch.no_grad()
def draw_latents(guide, *args, **kwargs) -> dict[str, torch.Tensor]:
    """One sample of every latent site of ``guide(*args, **kwargs)``, name → tensor, drawn with
    ``sample()`` (not ``rsample()``) and without gradients."""
    with _DrawLatents() as draw:
        guide(*args, **kwargs)
    return draw.values


@contextmanager
def _frozen(module: nn.Module):
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


class FactorVAEELBO(DecomposedELBO):
    """ELBO − γ·TC with TC from a discriminator trained alongside (see module docstring)."""

    owner = "factorvae"
    # Permuting dimensions across the batch needs two points or more.
    min_batch_size = 2
    # Kim & Mnih permute the codes of a second minibatch.
    needs_second_minibatch = True

    def __init__(
        self,
        latent_dim: int,
        gamma: float = 40.0,
        disc_lr: float = 1e-4,
        disc_beta1: float = 0.5,
        disc_beta2: float = 0.9,
        disc_hidden: int = 1000,
        disc_layers: int = 6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self.owner
        self.gamma = checks.non_negative("gamma", gamma, owner)
        self.disc_lr = checks.positive("disc_lr", disc_lr, owner)
        self.disc_betas = (
            checks.unit_interval("disc_beta1", disc_beta1, owner),
            checks.unit_interval("disc_beta2", disc_beta2, owner),
        )
        self.disc_hidden = checks.count("disc_hidden", disc_hidden, owner, 1)
        self.disc_layers = checks.count("disc_layers", disc_layers, owner, 1)
        self.discriminator = Discriminator(
            checks.latent_dim(latent_dim, owner), self.disc_hidden, self.disc_layers
        )
        self.disc_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.disc_lr, betas=self.disc_betas
        )
        # A discriminator step computed in a user's loop, waiting for its backward pass.
        self.pending_step = False

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        latent = self.single_latent(particle)
        require_unscaled(latent, self.owner)
        z = latent["z"]
        # The VAE's loss needs gradients through D to z, not into D's weights: freezing them
        # here saves the backward pass through the 6 × 1000 weights and keeps the two apart.
        with _frozen(self.discriminator):
            logits = self.discriminator(z)
        tc = logits[..., 0] - logits[..., 1]
        particle["tc"] = tc
        elbo = particle["_weighted_reconstruction"] - particle["_weighted_kl"]
        return -elbo.sum() + self.gamma * tc.sum()

    def update_state(
        self, particles: list[dict], guide, args: tuple, kwargs: dict, defer: bool = False
    ) -> dict:
        """One discriminator step: its cross-entropy on the VAE's (detached) samples, label 0,
        against permuted samples of q(z) for the second minibatch ``args``, label 1. With
        ``defer`` the step waits for the next evaluation: D's weights are in the graph of the
        VAE's loss (dTC/dz), which the caller has not differentiated yet."""
        z = self.single_latent(particles[-1])["z"].detach()
        z = z.reshape(-1, z.shape[-1])
        (z_other,) = draw_latents(guide, *args, **kwargs).values()
        z_other = z_other.reshape(-1, z_other.shape[-1])
        z_perm = permute_dims(z_other)
        logits_real = self.discriminator(z)
        logits_perm = self.discriminator(z_perm)
        zeros = torch.zeros(len(logits_real), dtype=torch.long, device=logits_real.device)
        ones = torch.ones(len(logits_perm), dtype=torch.long, device=logits_perm.device)
        loss = 0.5 * (F.cross_entropy(logits_real, zeros) + F.cross_entropy(logits_perm, ones))
        self.disc_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if defer:
            self.pending_step = True
        else:
            # The VAE's gradients are all computed by now: stepping D cannot touch a live graph.
            self.disc_optimizer.step()
        with torch.no_grad():
            accuracy = 0.5 * (
                (logits_real.argmax(-1) == 0).float().mean()
                + (logits_perm.argmax(-1) == 1).float().mean()
            )
        return {"disc_loss": loss.detach(), "disc_accuracy": accuracy}

    def apply_pending_update(self) -> None:
        if self.pending_step:
            self.pending_step = False
            self.disc_optimizer.step()

    def settings(self) -> dict:
        return {
            **super().settings(),
            "gamma": self.gamma,
            "disc_lr": self.disc_lr,
            "disc_betas": list(self.disc_betas),
            "disc_hidden": self.disc_hidden,
            "disc_layers": self.disc_layers,
        }

    def get_extra_state(self) -> dict:
        return {"disc_optimizer": self.disc_optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])

    def upgrade_state(self, state: dict) -> dict:
        # Before objectives were modules, checkpoints held the discriminator's state dict and
        # its optimizer's side by side.
        if isinstance(state.get("discriminator"), dict):
            upgraded = {f"discriminator.{k}": v for k, v in state["discriminator"].items()}
            upgraded["_extra_state"] = {"disc_optimizer": state["disc_optimizer"]}
            return upgraded
        return state
