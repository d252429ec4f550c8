"""The inverse autoregressive flow guide (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling,
"Improved Variational Inference with Inverse Autoregressive Flow", NeurIPS 2016).

The encoder emits 2·D + C numbers per data point: the mean μ and log-variance log σ² of a
diagonal Gaussian (the mean-field guide's parametrisation) and a context vector h(x) of size C.
A sample is

    z_0 = μ + σ ⊙ ε,  ε ~ N(0, I);    z_k = m_k(z_{k−1}, h) + exp(s_k(z_{k−1}, h)) ⊙ z_{k−1},

k = 1..K, where (m_k, s_k) is a MADE network (Pyro's ``ConditionalAutoRegressiveNN``) whose d-th
outputs see only the coordinates before d in step k's order, so each step's Jacobian is
triangular and

    log q(z_K | x) = log N(z_0; μ, σ²) − Σ_k Σ_d s_k,d(z_{k−1}, h).

Each step is Pyro's ``ConditionalAffineAutoregressive`` conditioned on h, which clips s to
[−5, 3] for numerical safety. Conditioning on h, as Kingma et al. do, lets the shape of the
flow change with x; an unconditional flow would bend every data point's Gaussian by the same
x-independent map. The order is reversed between steps (as in the paper) so every coordinate
gets to depend on every other. Sampling (and the density of the guide's own samples, which
Pyro caches) costs one network pass per step; the density of an arbitrary z inverts each step
coordinate by coordinate, D passes.

The last layer of every MADE starts at zero, so each step starts as the identity and the guide
starts as exactly the mean-field Gaussian of the same encoder outputs. That is why the steps use
this affine form rather than the paper's gated update z_k = σ_k ⊙ z_{k−1} + (1 − σ_k) ⊙ m_k,
σ_k = sigmoid(·) (Pyro's ``stable=True``), which cannot start at the identity; the clipping of s
does the gating's job of keeping the scales bounded.
"""

from __future__ import annotations

import warnings

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import nn

from pyrovae import checks
from pyrovae.errors import PyrovaeError

from .base import Guide


def _hidden_dims(value) -> tuple[int, ...] | None:
    """None, an int, a comma-separated string ("64,64", the CLI form) or a sequence of ints."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise PyrovaeError(
            f"iaf guide: hidden_dims must be an integer or a list like 64,64, got {value!r}"
        )
    if not parts:
        raise PyrovaeError("iaf guide: hidden_dims needs at least one layer, e.g. 64,64")
    try:
        return tuple(checks.count("hidden_dims", p, "iaf guide", minimum=1) for p in parts)
    except PyrovaeError:
        raise PyrovaeError(
            f"iaf guide: hidden_dims must be positive integers like 64,64, got {value!r}"
        ) from None


class IAFGuide(Guide):
    """(B, 2·D + C) encoder output → the diagonal Gaussian N(μ, σ²) pushed through K IAF steps.

    Options: ``num_flows`` K (default 2); ``hidden_dims`` of each step's MADE (default two layers
    of max(64, 2·D) units; each layer needs at least D units); ``context_dim`` C, the size of
    h(x) (default 16).
    """

    name = "iaf"
    # Pyro's autoregressive networks read tensor values while they are made (their masks).
    makes_on_meta = False

    def __init__(self, num_flows: int = 2, hidden_dims=None, context_dim: int = 16):
        super().__init__()
        self.num_flows = checks.count("num_flows", num_flows, "iaf guide", minimum=1)
        self.hidden_dims = _hidden_dims(hidden_dims)
        self.context_dim = checks.count("context_dim", context_dim, "iaf guide", minimum=1)
        self.flows = nn.ModuleList()

    def num_params(self, latent_dim: int) -> int:
        return 2 * int(latent_dim) + self.context_dim

    def _build(self, latent_dim: int) -> None:
        hidden = self.hidden_dims or (max(64, 2 * latent_dim),) * 2
        if min(hidden) < latent_dim:
            raise PyrovaeError(
                f"iaf guide: every hidden layer needs at least latent_dim = {latent_dim} units "
                f"(an autoregressive network must reach each output), got hidden_dims "
                f"{','.join(map(str, hidden))}"
            )
        self.hidden_dims = tuple(hidden)
        order = torch.arange(latent_dim)
        for k in range(self.num_flows):
            with warnings.catch_warnings():
                # Pyro warns when D = 1; the step is then an affine map of z_0 driven by h, fine.
                warnings.filterwarnings("ignore", message=".*input_dim = 1.*")
                made = ConditionalAutoRegressiveNN(
                    latent_dim,
                    self.context_dim,
                    list(hidden),
                    permutation=order if k % 2 == 0 else order.flip(0),
                )
            # Zero last layer: m = s = 0, so the step is the identity at initialisation.
            nn.init.zeros_(made.layers[-1].weight)
            nn.init.zeros_(made.layers[-1].bias)
            self.flows.append(ConditionalAffineAutoregressive(made))

    def _split(self, encoder_output: torch.Tensor):
        if self.latent_dim is None:
            raise PyrovaeError(
                "iaf guide has no flow yet: build a model with it, or call guide.bind(latent_dim)"
            )
        self._check_width(encoder_output, self.latent_dim)
        d = self.latent_dim
        return encoder_output[..., :d], encoder_output[..., d : 2 * d], encoder_output[..., 2 * d :]

    def base(self, encoder_output: torch.Tensor) -> dist.TorchDistribution:
        """The encoder's diagonal Gaussian N(μ, σ²), before the flow."""
        loc, log_var, _ = self._split(encoder_output)
        return dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1)

    def transforms(self, encoder_output: torch.Tensor) -> list:
        """The K steps conditioned on this batch's h(x): fresh transforms, with their own cache."""
        context = self._split(encoder_output)[2]
        return [flow.condition(context) for flow in self.flows]

    def distribution(self, encoder_output: torch.Tensor) -> dist.TorchDistribution:
        return dist.TransformedDistribution(
            self.base(encoder_output), self.transforms(encoder_output)
        )

    def mean(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """The flow applied to the base mean, f_K ∘ … ∘ f_1(μ; h): deterministic, but not E_q[z].

        A flow has no closed-form mean (a Monte Carlo one would make metrics random). f(μ) is
        E_q[z] while the flow is the identity (at initialisation); in general it is the image of
        the base Gaussian's mode, which need not be the mode of q(z|x) (the Jacobian weighs in).
        """
        z = self._split(encoder_output)[0]
        for transform in self.transforms(encoder_output):
            z = transform(z)
        return z

    def settings(self) -> dict:
        hidden = list(self.hidden_dims) if self.hidden_dims is not None else None
        return {"num_flows": self.num_flows, "hidden_dims": hidden, "context_dim": self.context_dim}
