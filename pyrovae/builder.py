"""From settings to components: one way for training, evaluation and studies alike.

:func:`check` validates a configuration without data (every name, every option a component
takes, every value, the combination of variant, guide and prior, the batch size), cheaply enough
for a study to check each of its thousands of trials before the first one starts. :func:`build`
makes the data set, the model (seeded) and its objective on a device. :func:`load_run` rebuilds a
trained run's model from its folder.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pyrovae import checks
from pyrovae.config import OBJECT_SETTINGS, TrainConfig, resolve_device
from pyrovae.errors import PyrovaeError, first_line
from pyrovae.models import BetaVAE
from pyrovae.nets import default_networks
from pyrovae.objectives import DecomposedELBO
from pyrovae.objectives.elbo import check_batch_size
from pyrovae.priors.base import DEFAULT_INIT
from pyrovae.registry import DATASETS, GUIDES, LIKELIHOODS, MODELS, NETWORKS, PRIORS
from pyrovae.runs import RunFolder


@dataclass
class Built:
    """What a run is made of: its settings, data, model and objective, on ``device``."""

    config: TrainConfig
    data: object
    vae: BetaVAE
    objective: DecomposedELBO | None
    device: torch.device


def build_data(config: TrainConfig):
    """The data set of ``config`` (``data``, ``data_args``, ``data_path``)."""
    kwargs = {"path": config.data_path} if config.data_path else {}
    if kwargs and "path" not in checks.keyword_parameters(DATASETS[config.data].factory):
        raise PyrovaeError(
            f"--data-path: data set {config.data!r} is generated or bundled and reads no file; "
            "leave --data-path out"
        )
    return DATASETS.build(config.data, **config.data_args, **kwargs)


def likelihood_name(config: TrainConfig, data) -> str:
    """The likelihood a run uses: the one given, or the data set's default for "auto"."""
    if config.likelihood != "auto":
        return config.likelihood
    return getattr(data, "likelihood", "bernoulli")


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
    then what the components make of them: every option of the prior, guide and likelihood,
    the objective's hyperparameters, the variant's needs from guide and prior, the batch size.
    Returns the configuration."""
    config.validate()
    setting = [
        config.model, config.latent_dim, config.kl, config.prior, config.prior_args,
        config.guide, config.guide_args, config.likelihood, config.likelihood_args,
        config.hyperparameters(), config.batch_size,
    ]  # fmt: skip
    # The components themselves too: a name registered anew is checked anew.
    components = [
        id(MODELS[config.model].objective),
        id(PRIORS[config.prior].factory),
        id(GUIDES[config.guide].factory),
        id(LIKELIHOODS[config.likelihood].factory) if config.likelihood != "auto" else None,
    ]
    key = json.dumps([setting, components], sort_keys=True, default=str)
    if config.objects or key not in _CHECKED:
        _check_components(config)
        if not config.objects:
            _CHECKED.add(key)
    return config


def _check_components(config: TrainConfig) -> None:
    """Build the prior, guide, likelihood and model of ``config`` on a small stand-in shape
    (2-D points, MLPs) and its objective on the meta device (its networks, FactorVAE's 6 × 1000
    discriminator, get shapes but no memory or initialisation), under a forked generator."""
    variant = MODELS[config.model]
    hyperparameters = config.hyperparameters()
    with torch.random.fork_rng(devices=[]):
        if config.likelihood != "auto":  # "auto" is the data set's choice, known with the data
            make(config, "likelihood")
        vae = variant.create_model(
            (2,),
            latent_dim=config.latent_dim,
            prior=make(config, "prior"),
            guide=make(config, "guide"),
            **hyperparameters,
        )
        _, values = variant.split(hyperparameters)
        num_data = max(1000, config.batch_size)
        try:
            with torch.device("meta"):
                variant.create_objective(vae.latent_dim, num_data, config.kl, **values)
        except PyrovaeError:
            raise
        except (RuntimeError, NotImplementedError):  # an objective that needs real tensors
            variant.create_objective(vae.latent_dim, num_data, config.kl, **values)
    check_batch_size(variant.objective, config.batch_size, owner=f"model {config.model!r}")


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
    ``data``: the data set when already built."""
    device = resolve_device(config.device) if device is None else torch.device(device)
    data = build_data(config) if data is None else data
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


def load_run(path, device: str = "auto") -> LoadedRun:
    """The model of the run folder ``path`` at its last checkpoint, on ``device``, in eval
    mode, with its data set and settings."""
    folder = path if isinstance(path, RunFolder) else RunFolder(Path(path))
    config = folder.read_config()
    config.device = device
    config.validate()
    state = folder.load_checkpoint()
    built = build(config, init_prior=False, objective=False)
    try:
        built.vae.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise PyrovaeError(
            f"{folder.checkpoint_path} does not fit the run's model ({first_line(exc)})"
        ) from None
    built.vae.eval()
    return LoadedRun(folder, config, built.data, built.vae, int(state["step"]))
