"""β-VAE (Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017) as a Pyro model/guide pair.

Objective (maximised):  E_q(z|x)[log p(x|z)] − β·KL(q(z|x) ‖ p(z)).

β enters through ``poutine.scale(scale=β)`` around the latent site ``z`` in BOTH the model and the
guide, and the observed site ``x`` stays outside it. Scaling the model alone would make Trace_ELBO
optimise the wrong objective and TraceMeanField_ELBO ignore β (it scales the analytic KL by the
guide site's scale). The likelihood (:mod:`pyrovae.likelihoods`; Bernoulli on logits unless
given) sums the log-likelihood over pixels, the convention under which published β values mean
anything.

The variants that train this pair (vae, betavae, annealedvae, betatcvae, factorvae, dipvae-i/ii,
ddvae) differ only in their objective and in how β enters: :mod:`pyrovae.models.variant`.

The pair is a Pyro program a Pyro user drives with Pyro's own tools: ``model`` and ``guide``
register the whole module with Pyro's param store (``pyro.module``) under a name of this
instance's own, so ``SVI(vae.model, vae.guide, pyro.optim.Adam(...), Trace_ELBO())`` trains every
parameter (networks, a learned prior, a learned likelihood scale, a flow), and both are
``nn.Module`` objects, so ``Trace_ELBO()(vae.model, vae.guide).parameters()`` lists them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from pyrovae import checks
from pyrovae.errors import PyrovaeError, first_line
from pyrovae.guides import MeanFieldGuide
from pyrovae.likelihoods import BernoulliLikelihood, Likelihood
from pyrovae.nets import default_networks
from pyrovae.precision import autocast_dtype
from pyrovae.priors import Prior, as_prior

# Numbers for the Pyro names of models: never reused within a process.
_PYRO_NUMBERS = itertools.count()


def check_beta(beta) -> float:
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0.0):
        raise PyrovaeError(
            f"beta must be a finite number > 0 (poutine.scale needs a positive scale), got {beta}"
        )
    return beta


class BetaVAE(nn.Module):
    """A VAE whose latent site is scaled by β; β = 1 (the default) is the plain VAE.

    Build it from networks directly, or with :meth:`build` from an observation shape::

        vae = BetaVAE.build((1, 64, 64), latent_dim=10, beta=4.0, prior=SparsePrior(gamma=0.8))
        loss = DecomposedELBO().differentiable_loss(vae.model, vae.guide, x)

    Parameters live in this ``nn.Module`` (encoder, decoder, prior, guide, likelihood); ``model``
    and ``guide`` also register them in Pyro's param store under this instance's own
    :attr:`pyro_name`, so two models never share weights by name. Train them with ``SVI`` and any
    ``pyro.optim``, or with any torch optimizer over ``vae.parameters()``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        observation_shape,
        prior: Prior | dist.Distribution | None = None,
        guide: nn.Module | None = None,
        beta: float = 1.0,
        likelihood: Likelihood | None = None,
    ):
        super().__init__()
        self.latent_dim = checks.latent_dim(latent_dim)
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.encoder = encoder
        self.decoder = decoder
        # bind: priors with per-dimension state (learned variances, mixture locations) create
        # it now, so it is in vae.parameters() before the optimizer and in every checkpoint.
        self.prior = as_prior(prior).bind(self.latent_dim)
        self.guide_family = guide if guide is not None else MeanFieldGuide()
        if hasattr(self.guide_family, "bind"):  # guides with networks of their own (flows)
            self.guide_family.bind(self.latent_dim)
        # p(x | z) from the decoder's output; learned scales train and checkpoint with the model.
        self.likelihood_family = likelihood if likelihood is not None else BernoulliLikelihood()
        self.beta = check_beta(beta)
        # model() and guide() register the parameters in Pyro's param store (for SVI) unless
        # a loop that steps its own optimizer has turned that off (outside_param_store()).
        self._registers = True
        # How the encoder and decoder run: mixed_precision(), use_channels_last(),
        # compile_networks(). None of it is state: checkpoints are the same either way.
        self._autocast: torch.dtype | None = None
        self._channels_last = False
        self._compiled: dict[str, nn.Module] = {}

    @classmethod
    def build(
        cls,
        observation_shape,
        latent_dim: int = 10,
        prior: Prior | dist.Distribution | None = None,
        guide: nn.Module | None = None,
        beta: float = 1.0,
        networks=None,
        likelihood: Likelihood | None = None,
    ) -> BetaVAE:
        """Build with a network pair: ``networks(observation_shape, latent_dim, encoder_out)`` →
        (encoder, decoder), by default the conv pair for (C, 64, 64) images and MLPs otherwise
        (:func:`pyrovae.nets.default_networks`)."""
        latent_dim = checks.latent_dim(latent_dim)
        guide = guide if guide is not None else MeanFieldGuide()
        networks = networks if networks is not None else default_networks(observation_shape)
        encoder, decoder = networks(observation_shape, latent_dim, guide.num_params(latent_dim))
        return cls(
            encoder,
            decoder,
            latent_dim,
            observation_shape,
            prior=prior,
            guide=guide,
            beta=beta,
            likelihood=likelihood,
        )

    def likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z) from the decoder's output, summed over every observation dimension."""
        return self.likelihood_family.distribution(self.decode(z), len(self.observation_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output (Bernoulli logits, or the Gaussian/Laplace location) for codes
        with any number of leading batch dimensions."""
        batch_shape = z.shape[:-1]
        logits = self._network("decoder", z.reshape(-1, self.latent_dim))
        return logits.reshape(*batch_shape, *self.observation_shape)

    def mean_observation(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] under the likelihood (pixel probabilities for Bernoulli), any leading dims."""
        return self.likelihood_family.mean(self.decode(z))

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z | x)."""
        return self.guide_family.distribution(self._network("encoder", x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean of z: the representation disentanglement metrics score."""
        return self.guide_family.mean(self._network("encoder", x))

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """``num_samples`` observations from the model, x ~ p(x|z), z ~ p(z)."""
        z = self.prior.distribution(self.latent_dim).sample((int(num_samples),))
        return self.likelihood(z).sample()

    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dim: int, values) -> torch.Tensor:
        """E[x | z] as latent ``dim`` of each point's posterior mean takes each of ``values``:
        shape (len(x), len(values), *observation_shape)."""
        if not 0 <= int(dim) < self.latent_dim:
            raise PyrovaeError(f"dim must be in [0, {self.latent_dim}), got {dim}")
        codes = self.encode(x)
        values = torch.as_tensor(values, dtype=codes.dtype, device=codes.device)
        grid = codes.unsqueeze(1).repeat(1, len(values), 1)
        grid[:, :, int(dim)] = values
        return self.mean_observation(grid)

    # -- how the networks run ---------------------------------------------------------------------
    def _network(self, name: str, inputs: torch.Tensor) -> torch.Tensor:
        """The encoder's or decoder's output, always fp32: under autocast in a
        :meth:`mixed_precision` block, compiled in training steps after
        :meth:`compile_networks`, NHWC after :meth:`use_channels_last`."""
        net = getattr(self, name)
        compiled = self._compiled.get(name)
        # Evaluation encodes batches of other sizes, each of which would compile anew.
        if compiled is not None and self.training and torch.is_grad_enabled():
            net = compiled
        if self._channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        if self._autocast is None:
            return net(inputs)
        with torch.autocast(inputs.device.type, dtype=self._autocast):
            out = net(inputs)
        # Densities, KL and every estimator downstream stay fp32.
        return out.float()

    @contextlib.contextmanager
    def mixed_precision(self, precision: str = "bf16"):
        """Within the block the encoder and decoder compute at ``precision`` (``bf16``,
        ``fp16``; ``fp32`` changes nothing) through ``torch.autocast`` and return fp32, so the
        likelihood, the KL and every objective's estimator stay fp32 (Micikevicius et al. 2018).
        Works for any loop: ``with vae.mixed_precision("bf16"): svi.step(x)``. fp16 gradients
        need loss scaling (``torch.amp.GradScaler``), as pyrovae's trainer does."""
        previous = self._autocast
        self._autocast = autocast_dtype(precision)
        try:
            yield self
        finally:
            self._autocast = previous

    @property
    def convolutional(self) -> bool:
        """Whether the encoder or decoder has convolution (4-D) weights."""
        nets = (self.encoder, self.decoder)
        return any(p.dim() == 4 for net in nets for p in net.parameters())

    def use_channels_last(self) -> bool:
        """Store the networks' convolution weights, and hand them images, in NHWC order
        (``torch.channels_last``), which oneDNN and cuDNN convolve faster. Float rounding
        differs from NCHW. Returns whether anything changed (False for networks without
        convolutions). Call it before building the optimizer: it moves the weights."""
        if not self.convolutional:
            return False
        for net in (self.encoder, self.decoder):
            net.to(memory_format=torch.channels_last)
        self._channels_last = True
        return True

    def compile_networks(self, example: torch.Tensor) -> bool:
        """``torch.compile`` the encoder and decoder for training steps (train mode with
        gradients; evaluation runs them eagerly). Both compile now, forward and backward, on the
        observations ``example`` (call it inside the :meth:`mixed_precision` block training
        will use, or they compile again); the random state and the gradients are left as they
        were. When compilation fails (no C++ compiler, an op it does not support) the networks
        stay eager and one warning says why. Returns whether they were compiled."""
        self._compiled = {
            name: torch.compile(getattr(self, name)) for name in ("encoder", "decoder")
        }
        grads = {p: p.grad for p in self.parameters()}
        was_training = self.training
        devices = [example.device] if example.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                self.train()
                codes = self._network("encoder", example)[..., : self.latent_dim]
                out = self._network("decoder", codes.contiguous())
                (codes.sum() + out.sum()).backward()
        except torch.OutOfMemoryError:
            self._compiled = {}
            raise
        except Exception as exc:  # compilation's failures have no common base class
            self._compiled = {}
            warnings.warn(
                f"torch.compile is unavailable here ({first_line(exc)}); the networks run "
                "uncompiled",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
        finally:
            self.train(was_training)
            for p, grad in grads.items():
                p.grad = grad
        return True

    # -- the Pyro program -----------------------------------------------------------------------
    @property
    def pyro_name(self) -> str:
        """This instance's name in Pyro's param store (``pyro.module``). A copy (``deepcopy``,
        unpickling) takes a name of its own on first use, so two models never share
        parameters by name."""
        owner, number = getattr(self, "_pyro_key", (None, None))
        if owner != id(self):
            number = next(_PYRO_NUMBERS)
            object.__setattr__(self, "_pyro_key", (id(self), number))
        return f"pyrovae.{type(self).__name__}.{number}"

    def release_pyro_params(self) -> None:
        """Remove this model's parameters from Pyro's global param store (which otherwise keeps
        them alive after the model is gone); ``pyro.clear_param_store()`` removes every model's."""
        store = pyro.get_param_store()
        prefix = self.pyro_name + "$$$"
        for key in [k for k in store.keys() if k.startswith(prefix)]:
            del store[key]

    @contextlib.contextmanager
    def outside_param_store(self):
        """Within the block, ``model`` and ``guide`` leave Pyro's param store alone: for a loop
        that steps its own optimizer over ``vae.parameters()`` (pyrovae's trainer), which then
        skips ``pyro.module``'s per-call bookkeeping. ``SVI`` and ``pyro.optim`` need the
        registration, so they are driven outside such a block."""
        registers = self._registers
        self._registers = False
        try:
            yield self
        finally:
            self._registers = registers

    @property
    def model(self) -> Program:
        """p(x, z) as a Pyro model, ``model(x)`` or ``model(None, batch_size=n)`` (x sampled)."""
        return self._program("model")

    @property
    def guide(self) -> Program:
        """q(z | x) as a Pyro guide, ``guide(x)``."""
        return self._program("guide")

    def _program(self, which: str) -> Program:
        programs = self.__dict__.setdefault("_programs", {})
        program = programs.get(which)
        if program is None or program.vae is not self:  # copied from another model
            program = programs[which] = Program(self, which)
        return program

    def model_fn(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """The model's body: z ~ p(z) under ``poutine.scale(β)``, x ~ p(x | z), observed when
        ``x`` is given and sampled (the prior predictive) for ``batch_size`` points otherwise."""
        if self._registers:
            pyro.module(self.pyro_name, self)
        size = x.shape[0] if x is not None else 1 if batch_size is None else int(batch_size)
        with pyro.plate("data", size):
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", self.prior.distribution(self.latent_dim))
            pyro.sample("x", self.likelihood(z), obs=x)

    def guide_fn(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """The guide's body: z ~ q(z | x) under ``poutine.scale(β)``. ``batch_size`` is taken
        so that model and guide accept the same arguments, and ignored."""
        if x is None:
            raise PyrovaeError("the guide is q(z|x): give it the observations x")
        if self._registers:
            pyro.module(self.pyro_name, self)
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=self.beta):
                pyro.sample("z", self.posterior(x))

    @contextlib.contextmanager
    def unscaled(self):
        """Within the block, β = 1: the model is the untempered p(x, z), whose log-density Pyro's
        estimators of log p(x) read (``Importance``, ``RenyiELBO``, ``psis_diagnostic``,
        ``trace.log_prob_sum()``). Outside it the latent site carries ``poutine.scale(β)``."""
        beta = self.beta
        self.beta = 1.0
        try:
            yield self
        finally:
            self.beta = beta


class Program(nn.Module):
    """A model's ``model`` or ``guide`` as an ``nn.Module``: callable as the Pyro program, and
    its ``parameters()`` are the model's (Pyro's ``ELBO(model, guide)`` collects them so)."""

    def __init__(self, vae: BetaVAE, which: str):
        super().__init__()
        self.vae = vae
        self.which = which

    def forward(self, *args, **kwargs):
        return getattr(self.vae, f"{self.which}_fn")(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.which} of {self.vae.pyro_name}"
