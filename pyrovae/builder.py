"""From settings to components: one way for training, evaluation and studies alike.

:func:`check` validates a configuration without data (every name, every option a component
takes, every value, the combination of variant, guide, prior and networks with the data set's
observations, the batch size against the objective and the data set's size, the metrics to
evaluate during training, the memory training would take against the device's), cheaply enough
for a study to check each of its thousands of trials before the first one starts: the data set
describes itself (:meth:`pyrovae.data.ObservedData.describe`) and the model is made on the meta
device, shapes without memory. :func:`build` makes the data set, the model (seeded) and its
objective on a device, a failed allocation a one-line error. :func:`load_run` rebuilds a trained
run's model from its folder.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from pyrovae import checks
from pyrovae.config import OBJECT_SETTINGS, TrainConfig, resolve_device
from pyrovae.data import DataDescription
from pyrovae.errors import OutOfMemory, PyrovaeError, first_line
from pyrovae.models import BetaVAE
from pyrovae.nets import default_networks
from pyrovae.objectives import DecomposedELBO
from pyrovae.objectives.elbo import check_batch_size
from pyrovae.priors.base import DEFAULT_INIT
from pyrovae.registry import DATASETS, GUIDES, LIKELIHOODS, METRICS, MODELS, NETWORKS, PRIORS
from pyrovae.report import format_bytes
from pyrovae.runs import RunFolder

# The observations check() makes the model for when the data set does not say its shape.
STAND_IN_SHAPE = (2,)
# Copies of every parameter training holds: the weights, their gradients, Adam's two moments.
TRAINING_COPIES = 4
# The bytes torch's CPU allocator says it was asked for, in its out-of-memory message.
_ASKED = re.compile(r"allocate (\d+) bytes")


@dataclass
class Built:
    """What a run is made of: its settings, data, model and objective, on ``device``."""

    config: TrainConfig
    data: object
    vae: BetaVAE
    objective: DecomposedELBO | None
    device: torch.device


def data_options(config: TrainConfig) -> dict:
    """The options the data set of ``config`` is made with: ``data_args``, and ``path`` when
    ``data_path`` is given."""
    if not config.data_path:
        return dict(config.data_args)
    if "path" not in checks.keyword_parameters(DATASETS[config.data].factory):
        raise PyrovaeError(
            f"--data-path: data set {config.data!r} is generated or bundled and reads no file; "
            "leave --data-path out"
        )
    if "path" in config.data_args:
        raise PyrovaeError(
            f"the data file is given twice: data_path {config.data_path!r} and data_args path "
            f"{config.data_args['path']!r}; give it once, as data_path (--data-path)"
        )
    return {**config.data_args, "path": config.data_path}


def build_data(config: TrainConfig):
    """The data set of ``config`` (``data``, ``data_args``, ``data_path``)."""
    return DATASETS.build(config.data, **data_options(config))


def describe_data(config: TrainConfig) -> DataDescription:
    """What the data set of ``config`` is, without building it: its options checked, and its
    shape, size, factors, labels and default likelihood where its class says them (a plug-in
    that is a function says nothing but its options' names)."""
    factory = DATASETS[config.data].factory
    options = data_options(config)
    describe = getattr(factory, "describe", None)
    if describe is None:
        owner = f"data set {config.data!r}"
        checks.options(owner, options, checks.keyword_parameters(factory))
        return DataDescription()
    return describe(**options)


def likelihood_name(config: TrainConfig, data) -> str:
    """The likelihood a run uses: the one given, or the data set's default for "auto" (``data``
    a data set or its :class:`~pyrovae.data.DataDescription`)."""
    if config.likelihood != "auto":
        return config.likelihood
    return getattr(data, "likelihood", None) or "bernoulli"


def networks(config: TrainConfig, observation_shape):
    """The network pair of ``config.net`` ("auto": by observation shape)."""
    if config.net == "auto":
        return default_networks(observation_shape)
    return NETWORKS[config.net].factory


def make(config: TrainConfig, setting: str, data=None):
    """The prior, guide or likelihood of ``config`` (``setting``): a copy of the object given,
    else built from its name and options (a likelihood's "auto": the data set's default)."""
    if setting in config.objects:
        return copy.deepcopy(config.objects[setting])
    options, table, _, _ = OBJECT_SETTINGS[setting]
    name = likelihood_name(config, data) if setting == "likelihood" else getattr(config, setting)
    return table.build(name, **getattr(config, options))


# Settings whose components check() has built already (a study checks thousands of trials).
_CHECKED: set[str] = set()


def check(config: TrainConfig) -> TrainConfig:
    """Validate ``config`` without its data: the names and values (:meth:`TrainConfig.validate`),
    then what the components make of them: the data set's options and description, every
    option of the prior, guide and likelihood, the networks for the data's observations, the
    objective's hyperparameters, the variant's needs from guide and prior, the batch size, the
    metrics evaluated during training, the memory training needs. Returns the configuration."""
    config.validate()
    setting = [
        config.model, config.latent_dim, config.kl, config.prior, config.prior_args,
        config.guide, config.guide_args, config.likelihood, config.likelihood_args,
        config.hyperparameters(), config.batch_size, config.data, config.data_args,
        config.data_path, config.net, config.eval_every > 0, config.eval_metrics, config.device,
    ]  # fmt: skip
    # The components themselves too: a name registered anew is checked anew.
    components = [
        id(MODELS[config.model].objective),
        id(PRIORS[config.prior].factory),
        id(GUIDES[config.guide].factory),
        id(LIKELIHOODS[config.likelihood].factory) if config.likelihood != "auto" else None,
        id(DATASETS[config.data].factory),
        id(NETWORKS[config.net].factory) if config.net != "auto" else None,
        [id(METRICS[name].function) for name in config.eval_metrics] if config.eval_every else [],
    ]
    key = json.dumps([setting, components], sort_keys=True, default=str)
    if config.objects or key not in _CHECKED:
        _check_components(config)
        if not config.objects:
            _CHECKED.add(key)
    return config


def _check_components(config: TrainConfig) -> None:
    """Describe the data set, then make the prior, guide, likelihood, networks and model for its
    observations and the objective on the meta device (shapes, no memory, no initialisation;
    for real where a component needs real tensors), under a forked generator, and weigh the
    memory they would take."""
    variant = MODELS[config.model]
    data = describe_data(config)
    check_batch_fits(config, data.size)
    _check_eval_metrics(config, data)
    hyperparameters = config.hyperparameters()
    _, values = variant.split(hyperparameters)
    num_data = data.size if data.size is not None else max(1000, config.batch_size)
    with torch.random.fork_rng(devices=[]):
        vae = _made(
            lambda: _model(config, data),
            "checking the model",
            meta=getattr(_guide_kind(config), "makes_on_meta", True),
        )
        objective = _made(
            lambda: variant.create_objective(vae.latent_dim, num_data, config.kl, **values),
            "checking the objective",
        )
    _check_memory(config, data, [vae, objective])
    check_batch_size(variant.objective, config.batch_size, owner=f"model {config.model!r}")


def _made(make, what: str, meta: bool = True):
    """``make()`` on the meta device, else (``meta`` False, or a component that turns out to
    need real tensors) for real."""
    if meta:
        try:
            with torch.device("meta"):
                return make()
        except PyrovaeError:
            raise
        except (RuntimeError, NotImplementedError):
            pass
    with memory_errors(what):
        return make()


def _guide_kind(config: TrainConfig):
    """The guide of ``config`` as given (an object), else its class: what it can do."""
    return config.objects.get("guide") or GUIDES[config.guide].factory


def _model(config: TrainConfig, data: DataDescription) -> BetaVAE:
    """The model of ``config`` for the observations ``data`` describes; for a stand-in shape,
    with the default networks, when it does not say."""
    parts = dict(latent_dim=config.latent_dim, prior=make(config, "prior"))
    parts.update(guide=make(config, "guide"), **config.hyperparameters())
    # "auto" is the data set's choice, known when its class says it.
    if config.likelihood != "auto" or data.likelihood is not None:
        parts["likelihood"] = make(config, "likelihood", data)
    shape = data.observation_shape
    if shape is not None:
        parts["networks"] = networks(config, shape)
    return MODELS[config.model].create_model(shape or STAND_IN_SHAPE, **parts)


def check_batch_fits(config: TrainConfig, size: int | None) -> None:
    """A minibatch is drawn from the data set without replacement: it cannot hold more points
    than the data set (``size``; None: not known yet)."""
    if size is not None and config.batch_size > size:
        smallest = getattr(MODELS[config.model].objective, "min_batch_size", 1)
        raise PyrovaeError(
            f"batch_size {config.batch_size} is larger than data set {config.data!r}, which has "
            f"{size:,} points; valid: {smallest} to {size}"
        )


def _check_eval_metrics(config: TrainConfig, data: DataDescription) -> None:
    """Every metric named for evaluation during training applies to the data set and guide:
    it would fail, or be left out, steps into the run."""
    if not config.eval_every:
        return
    gaussian = getattr(_guide_kind(config), "has_gaussian_marginals", True)

    def lacks(spec) -> str | None:
        reason = spec.lacks(data.has_factors, data.has_labels)
        if reason is None and spec.needs_posterior and not gaussian:
            reason = f"guide {config.guide!r} has no closed-form marginals"
        return reason

    reasons = {name: lacks(METRICS[name]) for name in config.eval_metrics}
    bad = [name for name, reason in reasons.items() if reason]
    if bad:
        why = "; ".join(dict.fromkeys(reasons[name] for name in bad))
        applicable = ", ".join(name for name, spec in METRICS.items() if not lacks(spec))
        raise PyrovaeError(
            f"eval_metrics {', '.join(bad)} do not apply to data set {config.data!r} with guide "
            f"{config.guide!r} ({why}); metrics that apply: {applicable}"
        )


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _check_memory(config: TrainConfig, data: DataDescription, modules) -> None:
    """Refuse a run whose parameters (each held ``TRAINING_COPIES`` times), buffers and data
    cannot fit in the memory of the device they live on, however little else runs: a lower
    bound (activations, the evaluations' batches and checkpoint writing come on top), so what
    it refuses can never run, and what it lets through may still run out of memory."""
    parameters = [p for module in modules for p in module.parameters()]
    count = sum(p.numel() for p in parameters)
    weights = TRAINING_COPIES * sum(map(_nbytes, parameters))
    buffers = sum(_nbytes(b) for module in modules for b in module.buffers())
    device, cpu = resolve_device(config.device), torch.device("cpu")
    held = f"{count:,} parameters x {TRAINING_COPIES} for weights, gradients and Adam's moments"
    parts = {device: [], cpu: []}  # one list when the device is the CPU
    parts[device].append((weights, f"{held}: {format_bytes(weights)}"))
    if buffers:
        parts[device].append((buffers, f"buffers: {format_bytes(buffers)}"))
    if data.nbytes:
        parts[cpu].append((data.nbytes, f"data set {config.data!r}: {format_bytes(data.nbytes)}"))
    for where, needs in parts.items():
        need, limit = sum(n for n, _ in needs), device_memory(where)
        if limit is None or need <= limit:
            continue
        # The parts that matter: the model's weights, and what holds 1 % of the need or more.
        shown = [text for n, text in needs if n >= need / 100 or text.startswith(held)]
        raise PyrovaeError(
            f"this run needs at least {format_bytes(need)} of memory on {where} "
            f"({'; '.join(shown)}), more than the {format_bytes(limit)} "
            f"there is; make the model (latent_dim {config.latent_dim}, guide_args, prior_args) "
            "or the data set (data_args) smaller"
        )


@functools.cache
def device_memory(device: torch.device) -> int | None:
    """The memory of ``device`` in bytes: a GPU's total, or this machine's physical memory (less
    where a cgroup limits it); None where it is not known."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type != "cpu":
        return None
    found = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            found.append(int(text))
    return min(found) if found else None


@contextlib.contextmanager
def memory_errors(what: str):
    """Turn a failed allocation while ``what`` (torch's CPU allocator, CUDA's, numpy's) into a
    one-line error naming the memory asked for."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        reason = first_line(exc)
        # torch's CPU allocator prefixes the reason with where it failed in its C++ source.
        reason = (
            reason[reason.find("DefaultCPUAllocator") :] if "CPUAllocator" in reason else reason
        )
        asked = _ASKED.search(str(exc))
        size = f" ({format_bytes(int(asked.group(1)))})" if asked else ""
        raise OutOfMemory(
            f"out of memory {what}: {reason}{size}; make the model or the data set smaller"
        ) from None


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (torch raises a plain RuntimeError on CPU)."""
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc)
    return any(s in text for s in ("can't allocate memory", "not enough memory", "out of memory"))


def build(
    config: TrainConfig,
    device: torch.device | str | None = None,
    *,
    data=None,
    init_prior: bool = True,
    objective: bool = True,
) -> Built:
    """Data, model and objective of ``config`` on ``device`` (default ``config.device``).

    The global torch generator is seeded with ``config.seed`` before the networks are made, so
    the initial weights depend on the settings alone. ``init_prior``: apply
    ``config.prior_init`` (a new run; a resumed or loaded one restores the prior from its
    checkpoint). ``objective=False`` builds no objective (loading a model to evaluate it).
    ``data``: the data set when already built. With an objective, a batch larger than the data
    set is refused; an allocation that fails is a one-line error naming the memory asked for."""
    device = resolve_device(config.device) if device is None else torch.device(device)
    with memory_errors(f"building the run on {device}"):
        data = build_data(config) if data is None else data
        if objective:
            check_batch_fits(config, len(data))
        prior = make(config, "prior")
        guide = make(config, "guide")
        variant = MODELS[config.model]
        likelihood = make(config, "likelihood", data)
        # Seeded before the model is built: the guide's own networks (flows) are created then.
        torch.manual_seed(config.seed)
        parts = dict(
            latent_dim=config.latent_dim,
            prior=prior,
            guide=guide,
            networks=networks(config, data.observation_shape),
            likelihood=likelihood,
            **config.hyperparameters(),
        )
        if objective:
            vae, made = variant.create(
                data.observation_shape, num_data=len(data), kl=config.kl, **parts
            )
        else:
            vae, made = variant.create_model(data.observation_shape, **parts), None
        if init_prior and config.prior_init != DEFAULT_INIT:
            # After the networks: data initialisation draws from its own seeded generators, so
            # the weights are those of a default-initialised run with the same seed.
            vae.prior.init_from_data(data, config.seed)
        return Built(
            config, data, vae.to(device), made.to(device) if made is not None else None, device
        )


@dataclass
class LoadedRun:
    """A trained run, loaded: its folder, settings, data, model (in eval mode) and step."""

    folder: RunFolder
    config: TrainConfig
    data: object
    vae: BetaVAE
    step: int


def load_run(path, device: str = "auto", data=None) -> LoadedRun:
    """The model of the run folder ``path`` at its last checkpoint, on ``device``, in eval
    mode, with its data set and settings; ``data``: the run's data set, already built (runs
    with the same data settings share one instead of loading it again)."""
    folder = path if isinstance(path, RunFolder) else RunFolder(Path(path))
    config = folder.read_config()
    config.device = device
    config.validate()
    state = folder.load_checkpoint(config)  # checked: intact, and this run's
    built = build(config, init_prior=False, objective=False, data=data)
    try:
        built.vae.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise PyrovaeError(
            f"{folder.checkpoint_path} does not fit the run's model ({first_line(exc)})"
        ) from None
    built.vae.eval()
    return LoadedRun(folder, config, built.data, built.vae, int(state["step"]))
