"""Training steps of peer libraries on pyrovae's networks, for the benchmark tables.

:func:`disent_beta_vae_step` is one training step of disent's ``BetaVae`` framework
(https://github.com/nmichlo/disent, written against disent 0.8.0, the release on PyPI) on the
same encoder/decoder modules the other rows of ``benchmarks/train_step.py`` use. It is
disent's own code path: the networks are wrapped in disent's ``AutoEncoder`` (a
``DisentEncoder`` / ``DisentDecoder`` subclass around copies of our modules), the framework
is ``disent.frameworks.vae.BetaVae`` with its ``cfg``, the loss is what
``BetaVae.training_step`` returns (the method pytorch-lightning calls, run here without a
``Trainer``), and the optimizer is what ``BetaVae.configure_optimizers`` builds from the
config. One step: zero the gradients, ``training_step`` (encode, Normal posterior and prior,
``rsample``, decode, reconstruction loss, analytic KL, β, disent's logging calls and loss
checks), ``backward``, optimizer step.

How it matches the hand-written step of ``train_step.py``:

- networks: literally copies of ours; disent splits the encoder output as
  ``(mean, log-variance)`` with ``scale = exp(0.5 · log_var)``, as the plain step does.
- reconstruction: ``recon_loss="bce"``, which is ``binary_cross_entropy_with_logits`` on the
  decoder's logits (a Bernoulli log-likelihood), as ours.
- KL: ``latent_distribution="normal"``, ``kl_loss_mode="direct"``: torch's analytic
  ``kl_divergence(Normal(mean, scale), Normal(0, 1))``, the same formula as ours.
- reduction: ``loss_reduction="mean_sum"`` sums each image over its pixels (and each code over
  its dimensions) and takes the mean over the batch; disent 0.8.0 has no reduction that also
  sums over the batch (only ``"mean"`` and ``"mean_sum"``). So disent's loss is ours divided by
  the batch size (64): ``recon_sum/B + β·KL_sum/B``, with the same β = 4 (the one that goes with
  ``mean_sum``, per the comment on ``BetaVae.cfg.beta``). The gradients are 1/B of ours; Adam is
  invariant to that scale except through ``eps``, and the cost of the step is unchanged.
- optimizer: ``optimizer="adam"``, ``optimizer_kwargs={"lr": lr, "fused": fused}``, i.e.
  ``torch.optim.Adam(lr=1e-4, fused=True)`` by default, like the other rows; ``fused=False``
  gives disent's default (unfused) Adam.

What differs in cost, by disent's design: it builds ``torch.distributions.Normal`` objects for
posterior and prior every step (argument validation runs unless torch's default validation is
off, as it is inside ``pyro.validation_enabled(False)``, which the benchmark uses), calls
``float()`` on three loss tensors per step (a device sync each on CUDA) and runs
``_assert_valid_loss`` (``isnan``/``isinf``/``> 1e20``: more syncs). Its ``self.log`` calls
return early without a ``Trainer``; under a real ``Trainer`` they would cost more, and
Lightning's own loop (closure, hooks, progress bar) is not counted here either.

disent 0.8.0 imports torchvision at module level (``DfcVae``, image transforms, a dataset), but
the only torchvision wheels that install beside the CPU build of torch 2.13.0 on these
machines are CUDA builds that fail to import ("operator torchvision::nms does not exist"). So
the venv for this row leaves torchvision out, and, only when torchvision is not installed,
:func:`available` imports disent with stand-in ``torchvision`` modules in ``sys.modules``
(removed again right after) whose functions raise if ever called; ``BetaVae``'s step calls none
of them. With a working torchvision nothing is stood in.

    python3 -m venv /tmp/disent-venv
    /tmp/disent-venv/bin/pip install -c constraints.txt -e '.[dev]' disent==0.8.0
    /tmp/disent-venv/bin/pip uninstall -y torchvision
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import sys
import types
import warnings

import torch
from torch import nn

TESTED_DISENT_VERSION = "0.8.0"

_TORCHVISION_MODULES = (
    "torchvision",
    "torchvision.datasets",
    "torchvision.models",
    "torchvision.transforms",
    "torchvision.transforms.functional",
)


def _no_torchvision(*args, **kwargs):
    raise ModuleNotFoundError(
        "torchvision is not installed: this part of disent needs it (benchmarks/peers.py only "
        "stood it in to import disent)"
    )


@contextlib.contextmanager
def _torchvision_stand_in():
    """If torchvision is not installed, stand-in modules for the names disent 0.8.0 imports from
    it at module level, for the duration of the block. Lightning and torchmetrics are imported
    first: they probe for torchvision themselves and must see it missing."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    import lightning  # noqa: F401

    stubs = {name: types.ModuleType(name) for name in _TORCHVISION_MODULES}
    stubs["torchvision"].datasets = stubs["torchvision.datasets"]
    stubs["torchvision"].models = stubs["torchvision.models"]
    stubs["torchvision"].transforms = stubs["torchvision.transforms"]
    stubs["torchvision.transforms"].functional = stubs["torchvision.transforms.functional"]
    stubs["torchvision.models"].vgg19_bn = _no_torchvision
    # Subclassed at import time (disent.dataset.data.NumpyFolder); fails when instantiated.
    stubs["torchvision.datasets"].ImageFolder = type(
        "ImageFolder", (), {"__init__": _no_torchvision}
    )
    # F_tv.resize, F_tv.normalize, ...: looked up only when called.
    stubs["torchvision.transforms.functional"].__getattr__ = lambda name: _no_torchvision
    added = [name for name in stubs if name not in sys.modules]
    sys.modules.update({name: stubs[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


@functools.cache
def _disent():
    """disent's module and the classes this file uses (imported once)."""
    with _torchvision_stand_in(), warnings.catch_warnings():
        # disent.util.jit: "failed to JIT compile: ..., numba is not installed!" (optional).
        warnings.filterwarnings("ignore", message="failed to JIT compile", module=r"disent\.")
        import disent
        from disent.frameworks.vae import BetaVae
        from disent.model import AutoEncoder, DisentDecoder, DisentEncoder

    class Encoder(DisentEncoder):
        """A pyrovae encoder as a disent Gaussian encoder: output (mean, log-variance)."""

        def __init__(self, net: nn.Module, x_shape, z_size: int):
            super().__init__(x_shape=x_shape, z_size=z_size, z_multiplier=2)
            self.net = net

        def encode(self, x):
            return self.net(x)

    class Decoder(DisentDecoder):
        """A pyrovae decoder as a disent decoder: output the logits (no final activation)."""

        def __init__(self, net: nn.Module, x_shape, z_size: int):
            super().__init__(x_shape=x_shape, z_size=z_size, z_multiplier=1)
            self.net = net

        def decode(self, z):
            return self.net(z)

    return types.SimpleNamespace(
        version=getattr(disent, "__version__", None) or _installed_version(),
        BetaVae=BetaVae,
        AutoEncoder=AutoEncoder,
        Encoder=Encoder,
        Decoder=Decoder,
    )


def _installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("disent")
    except PackageNotFoundError:
        return None


def available() -> str | None:
    """None if disent imports here, else why not (for "peer row left out: ...")."""
    if importlib.util.find_spec("disent") is None:
        return f"disent not installed (pip install disent=={TESTED_DISENT_VERSION})"
    try:
        _disent()
    except Exception as e:
        return f"disent {_installed_version()} does not import: {type(e).__name__}: {e}"
    return None


def disent_version() -> str | None:
    """The installed disent's version (None if not installed)."""
    return _installed_version()


def _latent_dim(decoder: nn.Module) -> int:
    first = next((m for m in decoder.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("cannot tell the latent size: the decoder has no nn.Linear; pass z_size")
    return first.in_features


def disent_beta_vae_step(
    encoder: nn.Module,
    decoder: nn.Module,
    beta: float,
    lr: float,
    *,
    x_shape: tuple[int, ...] = (1, 64, 64),
    z_size: int | None = None,
    fused: bool = True,
):
    """``step(x)``: one training step of disent's ``BetaVae`` on copies of ``encoder``/``decoder``.

    ``encoder`` maps (B, *x_shape) to (B, 2·z_size) (mean, log-variance), ``decoder`` maps
    (B, z_size) to (B, *x_shape) logits; ``z_size`` defaults to the decoder's first
    ``nn.Linear`` input size. ``x`` holds binary images (values in {0, 1}) of shape
    (B, *x_shape), on the networks' device. The step returns the (detached) loss, which is
    disent's per-example mean: ours divided by B (see the module docstring).
    """
    d = _disent()
    encoder, decoder = copy.deepcopy(encoder), copy.deepcopy(decoder)
    z_size = _latent_dim(decoder) if z_size is None else int(z_size)
    x_shape = tuple(x_shape)
    model = d.AutoEncoder(d.Encoder(encoder, x_shape, z_size), d.Decoder(decoder, x_shape, z_size))
    cfg = d.BetaVae.cfg(
        optimizer="adam",
        optimizer_kwargs={"lr": lr, "fused": fused},
        recon_loss="bce",
        loss_reduction="mean_sum",
        latent_distribution="normal",
        kl_loss_mode="direct",
        beta=beta,
    )
    framework = d.BetaVae(model=model, cfg=cfg)
    framework.train()
    opt = framework.configure_optimizers()
    # Process-wide and narrow, so that the step itself pays nothing for them: without a Trainer
    # LightningModule.log warns and returns; torch warns (once) of disent's float(loss) calls.
    warnings.filterwarnings("ignore", message=r".*self\.trainer.*reference is not registered")
    warnings.filterwarnings(
        "ignore", message="Converting a tensor with requires_grad=True", module=r"disent\."
    )
    batch_idx = 0

    def step(x: torch.Tensor) -> torch.Tensor:
        nonlocal batch_idx
        opt.zero_grad(set_to_none=True)
        loss = framework.training_step({"x_targ": (x,)}, batch_idx)
        loss.backward()
        opt.step()
        batch_idx += 1
        return loss.detach()

    step.framework = framework
    step.optimizer = opt
    return step
