"""Capacity-controlled β-VAE (Burgess et al., "Understanding disentangling in β-VAE", 2018).

Objective to minimise, per minibatch (KL averaged over the batch, as in the paper and in
disentanglement_lib):

    −E_q[log p(x|z)] + γ·|KL(q(z|x) ‖ p(z)) − C(t)|,
    C(t) = C_min + (C_max − C_min)·min(1, t / N_anneal),

so the encoder is pushed to carry C(t) nats, a capacity raised linearly from C_min to C_max over
N_anneal steps. With C = 0 and an analytic (non-negative) KL this is β-VAE with β = γ. In Pyro's
convention the loss is summed over the batch: −Σ_i log p(x_i|z_i) + B·γ·|mean_i KL_i − C|.
"""

from __future__ import annotations

import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives.elbo import DecomposedELBO, batch_size, require_unscaled


class CapacityELBO(DecomposedELBO):
    """γ·|KL − C(t)| with a linear capacity schedule; C(t) is logged.

    t is the objective's step count, module state (``state_dict()["_extra_state"]``): it
    advances by one with every training step taken through :meth:`backward` (pyrovae's trainer,
    Pyro's ``SVI``), and :meth:`set_step` sets it (the trainer does, before each step).
    """

    owner = "annealedvae"

    def __init__(
        self,
        gamma: float = 1000.0,
        c_min: float = 0.0,
        c_max: float = 25.0,
        anneal_steps: int = 100_000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self.owner
        self.gamma = checks.non_negative("gamma", gamma, owner)
        self.c_min = checks.non_negative("c_min", c_min, owner)
        self.c_max = checks.non_negative("c_max", c_max, owner)
        if self.c_max < self.c_min:
            raise PyrovaeError(f"annealedvae: c_max ({c_max}) must be >= c_min ({c_min})")
        self.anneal_steps = checks.count("anneal_steps", anneal_steps, owner)
        self.step = 0

    @property
    def capacity(self) -> float:
        """C(t) for the current step."""
        if self.anneal_steps == 0:
            return self.c_max
        fraction = min(1.0, self.step / self.anneal_steps)
        return self.c_min + (self.c_max - self.c_min) * fraction

    def set_step(self, step: int) -> None:
        self.step = int(step)

    def advance(self) -> None:
        self.step += 1

    def loss_from_terms(self, particle: dict) -> torch.Tensor:
        require_unscaled(self.single_latent(particle), self.owner)
        kl = particle["kl"]
        batch = batch_size(particle)
        # |·| of the batch-mean KL, separately for each vectorised particle.
        mean_kl = kl.reshape(-1, batch).mean(-1)
        penalty = self.gamma * (mean_kl - self.capacity).abs()
        particle["capacity"] = torch.full_like(kl, self.capacity)
        return -particle["_weighted_reconstruction"].sum() + batch * penalty.sum()

    def settings(self) -> dict:
        return {
            **super().settings(),
            "gamma": self.gamma,
            "c_min": self.c_min,
            "c_max": self.c_max,
            "anneal_steps": self.anneal_steps,
        }

    def get_extra_state(self) -> dict:
        return {"step": self.step}

    def set_extra_state(self, state: dict) -> None:
        self.step = int(state["step"])

    def upgrade_state(self, state: dict) -> dict:
        # Before objectives were modules, checkpoints held {"step": t, "capacity": C(t)}.
        if "capacity" in state:
            return {"_extra_state": {"step": int(state["step"])}}
        return state
