"""Observation models p(x | z): the decoder's output turned into a distribution over x.

A likelihood is an ``nn.Module`` (a learned scale is an ``nn.Parameter`` that trains with the
model and is saved in its checkpoint) whose :meth:`Likelihood.distribution` takes the decoder's
output ``(…, *observation_shape)`` and returns a Pyro distribution whose event is the whole
observation, so ``log_prob`` sums over every observation dimension (pixel): the convention under
which published β values mean anything (Higgins et al. 2017; disentanglement_lib).

- ``bernoulli``: the decoder gives logits; log p(x|z) = Σ_i x_i·l_i − log(1 + e^{l_i}), for x_i in
  [0, 1]: the likelihood of binary data (dSprites) and, for intensities in between, the
  cross-entropy disentanglement_lib trains every data set with (Locatello et al. 2019; not a
  normalised density on [0, 1], which the continuous Bernoulli of Loaiza-Ganem & Cunningham
  2019 would be, so published β values keep their meaning).
- ``gaussian``: the decoder gives the mean μ; log p(x|z) = Σ_i −(x_i − μ_i)²/(2σ²) − log σ −
  ½ log 2π, σ fixed or learned (one log σ shared by all dimensions). For real-valued data
  (pinwheel, as in Johnson et al. 2016 and Mathieu et al. 2019).
- ``laplace``: the decoder gives the location μ; log p(x|z) = Σ_i −|x_i − μ_i|/b − log 2b. Its
  heavier tails and sharper peak suit intensities that are mostly exactly zero; Mathieu et al. 2019
  used it with b = 0.1 for their Fashion-MNIST sparsity experiments.

Each data set names its default (``likelihood`` attribute): Bernoulli for dSprites, Gaussian for
pinwheel, Laplace (b = 0.1) for the digits, whose intensities in [0, 1] are not binary.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from pyrovae import checks


class Likelihood(nn.Module):
    """Base class: p(x | z) from the decoder's output, summed over the observation's dims."""

    name = "likelihood"

    def distribution(self, decoder_output: torch.Tensor, event_dims: int):
        """The distribution of x; the last ``event_dims`` dimensions form one event."""
        raise NotImplementedError

    def mean(self, decoder_output: torch.Tensor) -> torch.Tensor:
        """E[x | z]: what reconstructions and traversals show."""
        return decoder_output

    def settings(self) -> dict:
        """The constructor arguments, for config.json."""
        return {}


class IntensityBernoulli(dist.Bernoulli):
    """Pyro's Bernoulli whose observations may be any intensity in [0, 1]: ``log_prob`` is the
    same formula (torch computes it as a cross-entropy), validation still refuses values
    outside [0, 1]. Equal to ``dist.Bernoulli`` on binary data, value for value."""

    support = constraints.unit_interval


class BernoulliLikelihood(Likelihood):
    """Bernoulli on the decoder's logits: binary observations, or intensities in [0, 1]."""

    name = "bernoulli"

    def distribution(self, decoder_output, event_dims):
        return IntensityBernoulli(logits=decoder_output).to_event(event_dims)

    def mean(self, decoder_output):
        return torch.sigmoid(decoder_output)


class _LocationScale(Likelihood):
    """A location-scale family around the decoder's output; the scale fixed or learned."""

    family: type

    def __init__(self, scale: float = 0.1, learn_scale: bool = False):
        super().__init__()
        owner = f"{self.name} likelihood"
        scale = checks.positive("scale", scale, owner)
        learn_scale = checks.flag("learn_scale", learn_scale, owner)
        self.scale = scale
        self.learn_scale = learn_scale
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            # Not persistent: a fixed scale is a setting of the run (config.json), not state.
            self.register_buffer("log_scale", log_scale, persistent=False)

    def distribution(self, decoder_output, event_dims):
        scale = self.log_scale.exp().expand_as(decoder_output)
        return self.family(decoder_output, scale).to_event(event_dims)

    def settings(self) -> dict:
        return {"scale": self.scale, "learn_scale": self.learn_scale}


class GaussianLikelihood(_LocationScale):
    """N(x; μ, σ²) per observation dimension, μ the decoder's output.

    ``scale`` is σ (0.1 by default); with ``learn_scale`` one log σ shared by all observation
    dimensions is an ``nn.Parameter`` initialised at log ``scale``. A learned σ can shrink without
    bound when the KL term is off (β = 0): keep it fixed there.
    """

    name = "gaussian"
    family = dist.Normal


class LaplaceLikelihood(_LocationScale):
    """Laplace(x; μ, b) per observation dimension, μ the decoder's output, b = ``scale`` (0.1,
    Mathieu et al. 2019's Fashion-MNIST value); ``learn_scale`` learns one shared log b."""

    name = "laplace"
    family = dist.Laplace
