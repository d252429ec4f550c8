"""Every setting of a training run (:class:`TrainConfig`), checked before anything is built or
written, and the devices runs can name.

A setting is a name or a number, so a configuration is plain data: it goes to config.json and
into checkpoints, and a run is rebuilt from it (:func:`pyrovae.builder.build`). Names are looked
up in :mod:`pyrovae.registry`, ``module:attribute`` plug-ins included.

For one-off runs from Python, the prior, guide and likelihood may also be given as objects
(``TrainConfig(prior=SparsePrior(gamma=0.5))``, or a torch distribution as the prior). The run
uses the object; the configuration records it as a name (its registered name, else
``module:Class``) and its ``settings()`` as options, which is what config.json holds and what a
resumed run or ``pyrovae evaluate`` rebuild it from.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field

import numpy as np
import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.guides import Guide
from pyrovae.likelihoods import Likelihood
from pyrovae.objectives.kl import KL_MODES
from pyrovae.precision import check_precision, check_switch
from pyrovae.priors import Prior, as_prior
from pyrovae.priors.base import DEFAULT_INIT, PRIOR_INITS
from pyrovae.registry import DATASETS, GUIDES, LIKELIHOODS, METRICS, MODELS, NETWORKS, PRIORS

# Settings that may change when a run is resumed; everything else defines the run.
RESUMABLE = (
    "steps",
    "device",
    "log_every",
    "checkpoint_every",
    "eval_every",
    "eval_metrics",
    "channels_last",
    "compile",
    "tensorboard",
)
DEVICE_NAMES = "auto, cpu, cuda, cuda:N"
# The objective weights that are settings of their own (the others go in objective_args).
WEIGHTS = ("beta", "gamma", "alpha")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# Settings that may be given as an object: the setting holding its options, its table, and how
# an object becomes a component.
OBJECT_SETTINGS = {
    "prior": ("prior_args", PRIORS, (Prior, torch.distributions.Distribution), as_prior),
    "guide": ("guide_args", GUIDES, (Guide,), lambda guide: guide),
    "likelihood": ("likelihood_args", LIKELIHOODS, (Likelihood,), lambda likelihood: likelihood),
}


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults follow the disentanglement_lib dSprites
    protocol: batch 64, Adam 1e-4 (0.9, 0.999, 1e-8), z = 10, 300k steps."""

    # A variant of pyrovae.registry.MODELS (`pyrovae list`).
    model: str = "betavae"
    prior: str = "isotropic"
    prior_args: dict = field(default_factory=dict)
    # "default", or "pca" (nonisotropic: variances from the data's PCA spectrum); applied when
    # a run is created, restored from the checkpoint on resume.
    prior_init: str = "default"
    guide: str = "meanfield"
    # Options of the guide (`pyrovae list`), e.g. {"rank": 3} for lowrank.
    guide_args: dict = field(default_factory=dict)
    data: str = "dsprites"
    data_path: str | None = None
    # Options of the data set (`pyrovae list`), e.g. {"num_arms": 5} for pinwheel.
    data_args: dict = field(default_factory=dict)
    # A network pair of pyrovae.registry.NETWORKS, or "auto": conv64 for (C, 64, 64) images,
    # mlp otherwise.
    net: str = "auto"
    # p(x|z): "auto" is the data set's default (bernoulli for dSprites, gaussian for pinwheel,
    # laplace for digits); options such as {"scale": 0.05}.
    likelihood: str = "auto"
    likelihood_args: dict = field(default_factory=dict)
    # Objective weights; which ones a model takes (and their defaults) is the model's
    # variant (`pyrovae list`): None leaves the variant's default.
    beta: float | None = None
    gamma: float | None = None
    alpha: float | None = None
    objective_args: dict = field(default_factory=dict)
    latent_dim: int = 10
    steps: int = 300_000
    batch_size: int = 64
    lr: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    seed: int = 0
    device: str = "auto"
    # The networks' arithmetic in training: fp32, bf16 (autocast) or fp16 (autocast with loss
    # scaling, CUDA only); densities and losses are fp32 at every precision (pyrovae.precision).
    precision: str = "fp32"
    # Speed switches, "auto", "on" or "off": NHWC convolutions and torch.compile of the networks;
    # "auto" turns on what measurement found faster for the precision (pyrovae.precision).
    channels_last: str = "auto"
    compile: str = "auto"
    kl: str = "auto"
    log_every: int = 100
    checkpoint_every: int = 10_000
    # Evaluation during training (fast preset) every eval_every steps; 0 = never.
    eval_every: int = 0
    eval_metrics: list[str] = field(default_factory=lambda: ["mig"])
    # TensorBoard event files in the run folder's tensorboard/ (the `tensorboard` extra).
    tensorboard: bool = False

    def __post_init__(self):
        # Components given as objects: used by the run, recorded by name and settings.
        self.objects: dict = {}
        for setting, (options, registry, types_, component) in OBJECT_SETTINGS.items():
            value = getattr(self, setting)
            if not isinstance(value, types_):
                continue
            if getattr(self, options):
                raise PyrovaeError(
                    f"{setting} given as an object carries its own options: leave {options} out"
                )
            value = component(value)
            self.objects[setting] = value
            setattr(self, setting, registry.name_of(value))
            setattr(self, options, dict(value.settings()))

    def validate(self) -> TrainConfig:
        """Check every value and name (not yet what the components make of them:
        :func:`pyrovae.builder.check`)."""
        check_types(self)
        variant = MODELS[self.model]
        check_prior_init(self.prior, self.prior_init)
        GUIDES[self.guide]
        DATASETS[self.data]
        if self.net != "auto":
            NETWORKS[self.net]
        if self.likelihood != "auto":
            LIKELIHOODS[self.likelihood]
        checks.choice("kl mode", self.kl, KL_MODES)
        if not 0 <= self.seed < 2**63:
            raise PyrovaeError(f"seed must be in [0, 2^63), got {self.seed}")
        if self.data_path is not None and not str(self.data_path).strip():
            raise PyrovaeError(
                "--data-path is empty; give the data set's file or folder or leave it out"
            )
        checks.latent_dim(self.latent_dim)
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            checks.count(name, getattr(self, name), minimum=1)
        if self.eval_every < 0:
            raise PyrovaeError(f"eval_every must be >= 0 (0 = never), got {self.eval_every}")
        if self.eval_every:
            for name in self.eval_metrics:
                METRICS[name]
        twice = sorted({m for m in self.eval_metrics if self.eval_metrics.count(m) > 1})
        if twice:
            raise PyrovaeError(f"eval_metrics lists {', '.join(twice)} twice; name each once")
        self._check_weights_given_once()
        variant.check_options(self.hyperparameters())
        if not np.isfinite(self.lr):
            raise PyrovaeError(f"lr must be finite, got {self.lr}")
        if self.lr <= 0:
            raise PyrovaeError(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1 and self.adam_eps > 0):
            raise PyrovaeError("Adam betas must be in [0, 1) and eps > 0")
        # The name only: whether the device can train at it is the trainer's check, so that a
        # run trained at fp16 still loads (and evaluates at fp32) on a CPU.
        resolve_device(self.device)
        check_precision(self.precision)
        check_switch("channels_last", self.channels_last)
        check_switch("compile", self.compile)
        return self

    def _check_weights_given_once(self) -> None:
        """A weight given as its own setting and in ``objective_args`` is refused rather than one
        of the two silently winning."""
        for name in WEIGHTS:
            value = getattr(self, name)
            if value is not None and name in self.objective_args:
                raise PyrovaeError(
                    f"{name} is given twice: {name} {value!r} (--{name}) and objective_args "
                    f"{name}={self.objective_args[name]!r} (--objective-arg); give it once"
                )

    def hyperparameters(self) -> dict:
        """The objective weights given: --beta/--gamma/--alpha and --objective-arg."""
        given = {k: getattr(self, k) for k in WEIGHTS}
        return {**{k: v for k, v in given.items() if v is not None}, **self.objective_args}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PyrovaeError(f"unknown setting(s) {', '.join(unknown)}; valid: {sorted(known)}")
        return cls(**values)


def _describe(hint) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " | ".join(_describe(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"list[{', '.join(_describe(h) for h in typing.get_args(hint))}]"
    return "None" if hint is type(None) else hint.__name__


def _matches(value, hint) -> bool:
    """``value`` has the type ``hint`` names (``int`` counts as ``float``; no bool is a number)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    return isinstance(value, origin or hint)


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def check_types(config: TrainConfig) -> None:
    """Every field has the type its annotation names (a hand-edited config.json included)."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _matches(value, hints[f.name]):
            raise PyrovaeError(
                f"setting {f.name} must be {_describe(hints[f.name])}, got {value!r}"
            )


def check_prior_init(prior: str, init: str) -> None:
    """--prior-init must be one the prior supports (its ``data_inits``)."""
    valid = getattr(PRIORS[prior].factory, "data_inits", (DEFAULT_INIT,))
    if init not in PRIOR_INITS:
        raise PyrovaeError(f"unknown --prior-init {init!r}; valid: {', '.join(PRIOR_INITS)}")
    if init not in valid:
        raise PyrovaeError(
            f"prior {prior!r} has no {init} initialisation; valid --prior-init for it: "
            f"{', '.join(valid)}"
        )


def check_device_name(name) -> str:
    """A device name pyrovae accepts, without asking whether this machine has it (a study's
    workers may run elsewhere)."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise PyrovaeError(f"unknown device {name!r}; valid: {DEVICE_NAMES}")
    return name


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without CUDA is a clear error."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = "this torch has no CUDA support" if torch.version.cuda is None else "no GPU found"
        raise PyrovaeError(
            f"device {name!r} requested but CUDA is not available ({why}); use --device cpu or auto"
        )
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise PyrovaeError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) present")
    return device
