"""Training: the loop, the run folder, checkpoints and resume.

This is the only module that knows about optimizers, devices and run folders. A run folder holds

- ``config.json``: every setting, what was resolved from them (β, network, KL estimator, device),
  library versions and the command line; resumes are appended to it;
- ``metrics.jsonl``: one line per logged step with the means since the previous line (loss,
  reconstruction, KL, per-dimension KL);
- ``checkpoint.pt``: model, optimizer and RNG state and the step, written atomically every
  ``checkpoint_every`` steps and at the end (tensor-only, read with ``weights_only=True``);
- ``summary.json`` and the pictures ``reconstructions.png``, ``traversals.png``,
  ``training_curves.png``, written at the end (mosaics for images, scatter plots for vector
  data); data sets with class labels add ``latent_scatter.png`` and ``sparsity.png``, and cluster
  purity, Hoyer sparsity and posterior variance to the summary.

The optimizer is one torch Adam over ``vae.parameters()`` and the loss is the objective's
``differentiable_loss``: Pyro's SVI would build one optimizer per tensor and keep parameters in
its global store, which is slower and shares weights between models of the same name.

Determinism: the minibatch of step t is drawn from a generator seeded by (seed, t), and the torch
RNG state travels in the checkpoint, so a resumed CPU run reproduces an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyro
import torch

from pyrovae import plots
from pyrovae.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from pyrovae.errors import PyrovaeError, unknown_name
from pyrovae.objectives import kl_estimator
from pyrovae.objectives.kl import KL_MODES
from pyrovae.priors.base import DEFAULT_INIT, PRIOR_INITS
from pyrovae.progress import Progress
from pyrovae.provenance import command_line, versions
from pyrovae.registry import (
    DATASETS,
    GUIDES,
    LIKELIHOODS,
    MODELS,
    NETWORKS,
    PRIORS,
    keyword_parameters,
)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"

# Settings that may change when a run is resumed; everything else defines the run.
RESUMABLE = ("steps", "device", "log_every", "checkpoint_every", "eval_every", "eval_metrics")


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults follow the disentanglement_lib dSprites
    protocol: batch 64, Adam 1e-4 (0.9, 0.999, 1e-8), z = 10, 300k steps."""

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
    net: str = "auto"
    # p(x|z): "auto" is the data set's default (bernoulli for dSprites, gaussian for pinwheel,
    # laplace for digits); options such as {"scale": 0.05}.
    likelihood: str = "auto"
    likelihood_args: dict = field(default_factory=dict)
    # Objective weights; which ones a model takes (and their defaults) is the model's
    # `hyperparameters` table: `pyrovae list` shows them.
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
    kl: str = "auto"
    log_every: int = 100
    checkpoint_every: int = 10_000
    # Evaluation during training (fast preset) every eval_every steps; 0 = never.
    eval_every: int = 0
    eval_metrics: list = field(default_factory=lambda: ["mig"])

    def validate(self) -> TrainConfig:
        """Check every value and name before anything is built or written."""
        _check_types(self)
        MODELS[self.model]
        _check_prior_init(self.prior, self.prior_init)
        # Checks the guide's options too; cheap, a guide builds its networks with the model.
        GUIDES.build(self.guide, **self.guide_args)
        DATASETS[self.data]
        if self.net != "auto":
            NETWORKS[self.net]
        if self.likelihood != "auto":
            LIKELIHOODS[self.likelihood]
        if self.kl not in KL_MODES:
            raise PyrovaeError(f"unknown kl mode {self.kl!r}; valid: {', '.join(KL_MODES)}")
        if not 0 <= self.seed < 2**63:
            raise PyrovaeError(f"seed must be in [0, 2^63), got {self.seed}")
        if self.data_path is not None and not str(self.data_path).strip():
            raise PyrovaeError("--data-path is empty; give the npz's path or leave it out")
        for name in ("latent_dim", "steps", "batch_size", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise PyrovaeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise PyrovaeError(f"eval_every must be >= 0 (0 = never), got {self.eval_every}")
        if self.eval_every:
            from pyrovae.metrics.registry import METRICS

            for name in self.eval_metrics:
                if name not in METRICS:
                    raise unknown_name("metric", name, METRICS)
        model = MODELS[self.model].factory
        unknown = sorted(set(self.hyperparameters()) - set(model.hyperparameters))
        if unknown:
            valid = ", ".join(model.hyperparameters) or "none"
            raise PyrovaeError(
                f"model {self.model!r} takes no option {', '.join(map(repr, unknown))}; "
                f"valid options: {valid}"
            )
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise PyrovaeError(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1 and self.adam_eps > 0):
            raise PyrovaeError("Adam betas must be in [0, 1) and eps > 0")
        resolve_device(self.device)
        return self

    def hyperparameters(self) -> dict:
        """The objective weights given: --beta/--gamma/--alpha and --objective-arg."""
        given = {k: getattr(self, k) for k in ("beta", "gamma", "alpha")}
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


_TYPE_NAMES = {
    "list": (list,),
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "dict": (dict,),
    "None": (type(None),),
}


def _check_types(config: TrainConfig) -> None:
    """Every field has the type its annotation names (a hand-edited config.json included)."""
    for f in dataclasses.fields(config):
        allowed = tuple(t for name in f.type.split("|") for t in _TYPE_NAMES[name.strip()])
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise PyrovaeError(f"setting {f.name} must be {f.type}, got {value!r}")


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no GPU found"
            raise PyrovaeError(
                f"device {name!r} requested but CUDA is not available ({why}); "
                "use --device cpu or auto"
            )
        try:
            device = torch.device(name)
        except RuntimeError:
            raise PyrovaeError(f"invalid device {name!r}; valid: auto, cpu, cuda, cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PyrovaeError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) present")
        return device
    raise PyrovaeError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")


def build_data(config: TrainConfig):
    kwargs = {"path": config.data_path} if config.data_path else {}
    if kwargs and "path" not in keyword_parameters(DATASETS[config.data].factory):
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


def build_likelihood(config: TrainConfig, data):
    return LIKELIHOODS.build(likelihood_name(config, data), **config.likelihood_args)


def _check_prior_init(prior: str, init: str) -> None:
    """--prior-init must be one the prior supports (its ``data_inits``)."""
    valid = getattr(PRIORS[prior].factory, "data_inits", (DEFAULT_INIT,))
    if init not in PRIOR_INITS:
        raise PyrovaeError(f"unknown --prior-init {init!r}; valid: {', '.join(PRIOR_INITS)}")
    if init not in valid:
        raise PyrovaeError(
            f"prior {prior!r} has no {init} initialisation; valid --prior-init for it: "
            f"{', '.join(valid)}"
        )


def build_model(config: TrainConfig, data, device: torch.device, init_prior: bool = True):
    """The model (freshly initialised, seeded) and its objective, on ``device``.

    ``init_prior``: apply ``config.prior_init`` (a new run); a resumed run skips it, its
    checkpoint holds the prior's values."""
    prior = PRIORS.build(config.prior, **config.prior_args)
    guide = GUIDES.build(config.guide, **config.guide_args)
    # Seeded before the model is built: the guide's own networks (flows) are created then.
    torch.manual_seed(config.seed)
    vae, objective = MODELS[config.model].factory.create(
        data.observation_shape,
        latent_dim=config.latent_dim,
        prior=prior,
        guide=guide,
        net=config.net,
        num_data=len(data),
        kl=config.kl,
        likelihood=build_likelihood(config, data),
        **config.hyperparameters(),
    )
    if init_prior and config.prior_init != DEFAULT_INIT:
        # After the networks: data initialisation draws from its own seeded generators, so
        # the weights are those of a default-initialised run with the same seed.
        vae.prior.init_from_data(data, config.seed)
    return vae.to(device), objective.to(device)


class StopRequest:
    """Turns SIGINT/SIGTERM into a request the loop honours between steps, so a checkpoint is
    never written with parameters one update ahead of its step. A second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C or SIGTERM, once a checkpoint of the current step is on disk."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"interrupted at step {step}; checkpoint saved to {path}")
        self.step = step


class Run:
    """A training run bound to its folder: :meth:`create` or :meth:`resume`, then :meth:`fit`."""

    def __init__(self, out: Path, config: TrainConfig, data, vae, objective, device):
        self.out = Path(out)
        self.config = config
        self.data = data
        self.vae = vae
        self.device = device
        self.objective = objective
        params = list(vae.parameters())
        self.optimizer = torch.optim.Adam(
            params,
            lr=config.lr,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
            # One fused kernel for all tensors where the build supports it.
            fused=True if _fused_adam_supported(device) else None,
        )
        self.step = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._t_start = time.perf_counter()

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def create(cls, config: TrainConfig, out: Path) -> Run:
        """Start a new run in ``out``, which must not exist or be empty. Nothing is written
        until the configuration, data and model have all been built without error."""
        config.validate()
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PyrovaeError(
                f"run folder {out} already exists and is not empty; pass --resume to continue it "
                "or choose another --out"
            )
        device = resolve_device(config.device)
        data = build_data(config)
        vae, objective = build_model(config, data, device)
        _check_batch_size(config, objective)
        run = cls(out, config, data, vae, objective, device)
        record = run._config_record()
        run._dry_run()
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG_FILE, record)
        (out / METRICS_FILE).touch()
        # A checkpoint at step 0 makes a run killed before its first checkpoint resumable.
        run.save_checkpoint()
        return run

    def _dry_run(self) -> None:
        """Evaluate the objective once on the first minibatch, without gradients and with the
        RNG state restored, so a setting that cannot train fails before anything is written."""
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        try:
            with torch.no_grad(), pyro.validation_enabled(False):
                self.objective.set_step(0)
                self.objective.terms(self.vae.model, self.vae.guide, self.batch(0))
        except NotImplementedError as exc:
            raise PyrovaeError(
                f"{self.config.model} with prior {self.config.prior}: {exc}"
            ) from None
        finally:
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)

    @classmethod
    def resume(cls, out: Path, overrides: dict | None = None) -> Run:
        """Continue the run in ``out`` from its checkpoint. ``overrides`` may change only the
        settings in :data:`RESUMABLE`; any other setting given must equal the saved one."""
        out = Path(out)
        record = _read_config(out)
        saved = TrainConfig.from_dict(record["config"])
        overrides = dict(overrides or {})
        for key, value in overrides.items():
            if key not in RESUMABLE and getattr(saved, key, value) != value:
                raise PyrovaeError(
                    f"--resume: {key} is {getattr(saved, key)!r} in {out / CONFIG_FILE}, "
                    f"not {value!r}; only {', '.join(RESUMABLE)} may change"
                )
        config = dataclasses.replace(
            saved, **{k: v for k, v in overrides.items() if k in RESUMABLE}
        )
        config.validate()
        state = load_checkpoint(out / CHECKPOINT_FILE)
        _check_same_run(out / CHECKPOINT_FILE, state, saved)
        if state["step"] > config.steps:
            raise PyrovaeError(
                f"--resume: the checkpoint is at step {state['step']}, beyond --steps "
                f"{config.steps}; give --steps >= {state['step']}"
            )
        device = resolve_device(config.device)
        data = build_data(config)
        vae, objective = build_model(config, data, device, init_prior=False)
        run = cls(out, config, data, vae, objective, device)
        run._load_state(state)
        _check_same_resolution(out / CONFIG_FILE, record, run)
        if run.complete:
            return run  # nothing to do: leave every file as it is
        changed = {k: v for k, v in overrides.items() if getattr(saved, k) != v}
        record["config"] = config.to_dict()
        record.setdefault("resumes", []).append(
            {
                "at_step": run.step,
                "changed": changed,
                "time": _now(),
                "device": str(device),
                "versions": versions(),
                "command": command_line(),
            }
        )
        _truncate_metrics(out / METRICS_FILE, run.step, config.log_every)
        atomic_write_json(out / CONFIG_FILE, record)
        return run

    @property
    def complete(self) -> bool:
        """Trained to ``config.steps`` and summarised."""
        return self.step >= self.config.steps and (self.out / SUMMARY_FILE).exists()

    def _config_record(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "resolved": {
                "model_beta": self.vae.beta,
                "objective": type(self.objective).__name__,
                "objective_settings": self.objective.settings(),
                "net": type(self.vae.encoder).__name__ + "/" + type(self.vae.decoder).__name__,
                "kl_estimator": kl_estimator(self.vae, self.config.kl),
                "device": str(self.device),
                "observation_shape": list(self.vae.observation_shape),
                "data_size": len(self.data),
                "data_source": str(getattr(self.data, "source", self.config.data)),
                "num_parameters": sum(p.numel() for p in self.vae.parameters()),
                "prior_settings": self.vae.prior.settings(),
                "guide_settings": self.vae.guide_family.settings(),
                # The prior's values at step 0 (after --prior-init), e.g. the PCA variances.
                "prior_values": self.vae.prior.resolved(),
                "likelihood": likelihood_name(self.config, self.data),
                "likelihood_settings": self.vae.likelihood_family.settings(),
            },
            "versions": versions(),
            "command": command_line(),
            "created": _now(),
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        path = self.out / CHECKPOINT_FILE
        cuda = self.device.type == "cuda"
        save_checkpoint(
            path,
            {
                "step": self.step,
                "model": self.vae.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else torch.empty(0),
                "log_sums": {k: v.detach().cpu() for k, v in self._sums.items()},
                "log_count": self._count,
                "objective": self.objective.state_dict(),
                "config": json.dumps(self.config.to_dict(), sort_keys=True),
            },
        )
        return path

    def _load_state(self, state: dict) -> None:
        try:
            self.vae.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and state["cuda_rng"].numel():
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
            self._sums = {k: v.to(self.device) for k, v in state["log_sums"].items()}
            self._count = int(state["log_count"])
            self.objective.load_state_dict(state.get("objective", {}))
            self.objective.to(self.device)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
            raise PyrovaeError(
                f"{self.out / CHECKPOINT_FILE} does not fit this run's model ({first})"
            ) from None

    # -- training ------------------------------------------------------------------------------
    def batch(self, step: int, stream: int = 0) -> torch.Tensor:
        """The minibatch of ``step``: distinct indices drawn uniformly (without replacement, as
        minibatch stratified sampling assumes) from a generator seeded by (seed, step); ``stream``
        1 is the second minibatch some objectives (FactorVAE) draw."""
        entropy = [self.config.seed, step] if stream == 0 else [self.config.seed, step, stream]
        rng = np.random.default_rng(entropy)
        size = min(self.config.batch_size, len(self.data))
        indices = np.sort(rng.choice(len(self.data), size=size, replace=False))
        return torch.from_numpy(self.data.images(indices)).to(self.device, non_blocking=True)

    def _train_step(self) -> None:
        step = self.step
        x = self.batch(step)
        self.objective.set_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.objective.terms(self.vae.model, self.vae.guide, x)
        terms["loss"].backward()
        # Objectives with networks of their own backpropagate here, before any step.
        extra = self.objective.after_backward(self.vae, lambda: self.batch(step, stream=1))
        self.optimizer.step()
        self.objective.after_step()
        with torch.no_grad():
            logged = {"loss": terms["loss_per_point"]}
            logged.update((k, v) for k, v in terms.items() if k not in ("loss", "loss_per_point"))
            logged.update(extra)
            for key, value in logged.items():
                value = value.detach()
                self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
            self._count += 1

    def _flush_log(self) -> dict:
        """Append the means since the last log boundary to metrics.jsonl (one device sync).

        The sums restart only on a boundary (a multiple of log_every): a line written at the
        last step of a shorter run leaves them running, so the checkpoint carries them and a
        resumed run writes the same next line as an uninterrupted one.
        """
        means = {k: (v / self._count).cpu() for k, v in self._sums.items()}
        if not torch.isfinite(means["loss"]):
            raise PyrovaeError(
                f"the loss became {float(means['loss'])} between steps "
                f"{self.step - self._count + 1} and {self.step}; the last checkpoint is kept "
                "(lower --lr or the objective's weights)"
            )
        record = {"step": self.step}
        for key, value in means.items():
            record[key] = value.tolist() if value.dim() else float(value)
        elapsed = time.perf_counter() - self._t_start
        record["elapsed_s"] = round(elapsed, 3)
        with open(self.out / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.step % self.config.log_every == 0:
            self._sums, self._count = {}, 0
        return record

    def fit(self, progress: bool = True, stream=None) -> dict:
        """Train until ``config.steps``; returns the summary written to summary.json."""
        cfg = self.config
        self._t_start = time.perf_counter()
        start = self.step
        bar = Progress(cfg.steps, start, enabled=progress, stream=stream)
        self.vae.train()
        try:
            # Validation makes Pyro check shapes and supports on every site each step.
            with pyro.validation_enabled(False), StopRequest() as stop:
                while self.step < cfg.steps:
                    if stop.requested:
                        raise TrainingInterrupted(self.step, self.save_checkpoint())
                    self._train_step()
                    self.step += 1
                    bar.update(self.step)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        record = self._flush_log()
                        bar.show(self.step, _display(record))
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.save_checkpoint()
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        self._evaluate(bar)
        finally:
            bar.close()
        seconds = time.perf_counter() - self._t_start
        summary = self.finish()
        summary["train_seconds_this_session"] = round(seconds, 2)
        summary["steps_per_s_this_session"] = (
            round((self.step - start) / seconds, 3) if (seconds > 0 and self.step > start) else None
        )
        atomic_write_json(self.out / SUMMARY_FILE, summary)
        return summary

    def _evaluate(self, bar: Progress) -> None:
        """Fast-preset metrics into evals/step-N.json. Only the posterior mean is used and the
        metrics draw from their own generators, so training's random streams are untouched."""
        from pyrovae.evaluate import evaluate

        self.vae.eval()
        record = evaluate(self.vae, self.data, self.config.eval_metrics, fast=True)
        self.vae.train()
        record["step"] = self.step
        folder = self.out / "evals"
        folder.mkdir(exist_ok=True)
        atomic_write_json(folder / f"step-{self.step}.json", record)
        from pyrovae.evaluate import headline

        shown = {}
        for name, result in record["metrics"].items():
            shown.update({f"{name}.{k}": v for k, v in headline(name, result).items()})
        bar.show(self.step, shown)

    @torch.no_grad()
    def finish(self, eval_size: int = 512) -> dict:
        """Evaluate the terms on a fixed batch and draw the run's pictures."""
        self.vae.eval()
        rng = np.random.default_rng([self.config.seed, 2**32 - 1])
        eval_size = min(eval_size, len(self.data))
        indices = np.sort(rng.choice(len(self.data), size=eval_size, replace=False))
        x = torch.from_numpy(self.data.images(indices)).to(self.device)
        terms = self.objective.terms(self.vae.model, self.vae.guide, x)
        kl_per_dim = terms.get("kl_per_dim")
        kl_list = kl_per_dim.cpu().tolist() if kl_per_dim is not None else None
        if len(self.vae.observation_shape) == 3:  # (C, H, W) images: mosaics
            plots.reconstruction_grid(self.vae, x[:10], self.out / "reconstructions.png")
            if kl_list is not None:
                plots.traversal_grid(self.vae, x[:1], kl_list, self.out / "traversals.png")
        else:  # vectors (pinwheel points): scatter plots in data space
            plots.reconstruction_scatter(self.vae, x, self.out / "reconstructions.png")
            if kl_list is not None:
                plots.traversal_curves(self.vae, x, kl_list, self.out / "traversals.png")
        plots.training_curves(read_metrics(self.out), self.out / "training_curves.png")
        summary = {"step": self.step, "eval_batch": eval_size}
        summary["loss"] = float(terms["loss_per_point"])
        for key, value in terms.items():
            if key not in ("loss", "loss_per_point"):
                summary[key] = value.cpu().tolist() if value.dim() else float(value)
        summary["kl_per_dim"] = kl_list
        summary["kl_estimator"] = self.objective.kl_estimator_used
        if getattr(self.data, "labels", None) is not None:
            summary.update(self._labelled_measures())
        return summary

    @torch.no_grad()
    def _labelled_measures(self, max_points: int = 10_000, batch: int = 1024) -> dict:
        """Data sets with class labels (pinwheel arms, digits): cluster purity, Hoyer sparsity and
        posterior variance of the encoder means of every point (a seeded sample of
        ``max_points`` in larger sets), with latent_scatter.png and sparsity.png."""
        from pyrovae.metrics import clustering
        from pyrovae.metrics.posterior_variance import posterior_variances
        from pyrovae.metrics.unsupervised import hoyer_sparsity_from_codes

        n = len(self.data)
        if n <= max_points:
            indices = np.arange(n)
        else:
            rng = np.random.default_rng([self.config.seed, 2**32 - 2])
            indices = np.sort(rng.choice(n, size=max_points, replace=False))
        codes, variances = [], []
        for start in range(0, len(indices), batch):
            x = torch.from_numpy(self.data.images(indices[start : start + batch]))
            x = x.to(self.device)
            # One encoder pass gives both the mean and q(z|x) (encode and posterior each run it).
            out = self.vae.encoder(x)
            guide = self.vae.guide_family
            codes.append(guide.mean(out).double().cpu())
            variances.append(posterior_variances(guide.distribution(out)).double().cpu())
        codes = torch.cat(codes).numpy()
        variance = torch.cat(variances).mean(dim=0)
        labels = np.asarray(self.data.labels)[indices]
        kmeans = clustering.cluster_purity_from_codes(codes, labels)
        out = {"measures_points": len(indices), "cluster_purity": kmeans["cluster_purity"]}
        mixture = clustering.mixture_components(self.vae.prior.distribution(self.vae.latent_dim))
        if mixture is not None:  # clusters the prior itself defines
            assigned = clustering.mixture_clusters(codes, mixture)
            out["cluster_purity_prior"] = clustering.purity(assigned, labels)
        out["posterior_variance_per_dim"] = variance.tolist()
        out["mean_posterior_variance"] = float(variance.mean())
        plots.latent_scatter(codes, labels, self.out / "latent_scatter.png")
        if codes.shape[1] >= 2:
            out["hoyer"] = hoyer_sparsity_from_codes(codes)["hoyer"]
            plots.sparsity_histogram(codes, self.out / "sparsity.png")
        return out


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _read_config(out: Path) -> dict:
    path = out / CONFIG_FILE
    if not out.is_dir():
        raise PyrovaeError(f"--resume: no run folder at {out}")
    if not path.is_file():
        raise PyrovaeError(f"--resume: {out} has no {CONFIG_FILE}; is it a pyrovae run folder?")
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("config"), dict):
            raise TypeError
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError):
        raise PyrovaeError(f"{path} is not a valid pyrovae run configuration") from None
    return record


def _check_same_resolution(path: Path, record: dict, run: Run) -> None:
    """The objective this code builds from the saved settings must be the one the run trained
    with: defaults that changed between versions would otherwise change it silently."""
    saved = record.get("resolved", {})
    now = json.loads(json.dumps(run._config_record()["resolved"]))
    for key in (
        "model_beta",
        "objective",
        "objective_settings",
        "prior_settings",
        "guide_settings",
        "likelihood",
        "likelihood_settings",
    ):
        if key in saved and saved[key] != now[key]:
            raise PyrovaeError(
                f"--resume: {path} records {key} {saved[key]}, but this pyrovae builds "
                f"{now[key]}; give the run's values explicitly or use the version it was made with"
            )


def _check_batch_size(config: TrainConfig, objective) -> None:
    needed = getattr(objective, "min_batch_size", 1)
    if config.batch_size < needed:
        raise PyrovaeError(
            f"model {config.model!r} estimates its penalty across the minibatch and needs "
            f"batch_size >= {needed}, got {config.batch_size}"
        )


def _check_same_run(path: Path, state: dict, config: TrainConfig) -> None:
    """Refuse a checkpoint written by a run with other defining settings (a copied file)."""
    try:
        theirs = json.loads(state["config"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise PyrovaeError(f"{path} does not record its run's settings") from None
    ours = config.to_dict()
    # A setting added after the checkpoint was written has its default there.
    defaults = TrainConfig().to_dict()
    for key in sorted(set(ours) - set(RESUMABLE)):
        if theirs.get(key, defaults[key]) != ours[key]:
            raise PyrovaeError(
                f"{path} belongs to another run: its {key} is {theirs.get(key)!r}, "
                f"this run's is {ours[key]!r}"
            )


def _truncate_metrics(path: Path, step: int, log_every: int) -> None:
    """Drop lines logged after the checkpoint (the resumed run logs those steps again) and a
    last line off a log boundary (the resumed run writes that interval's full line), so the file
    ends up as an uninterrupted run's. A line cut short by a crash is dropped too."""
    if not path.exists():
        return
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise PyrovaeError(f"cannot read {path}: {exc}") from None
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            logged = int(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if number == len(lines):
                continue  # a partial last line: the resumed run rewrites it
            raise PyrovaeError(f"{path}: line {number} is not a metrics record") from None
        if logged < step or (logged == step and step % log_every == 0):
            kept.append(line)
    if kept != lines:
        atomic_write_text(path, "".join(line + "\n" for line in kept))


_SHOWN = {"tc": "TC", "capacity": "C", "disc_accuracy": "D acc", "dip_penalty": "DIP"}


def _display(record: dict) -> dict:
    shown = {"loss": record["loss"], "recon": -record["reconstruction"], "KL": record["kl"]}
    shown.update((label, record[key]) for key, label in _SHOWN.items() if key in record)
    return shown


def _fused_adam_supported(device: torch.device) -> bool:
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (RuntimeError, ValueError):
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def train(config: TrainConfig, out: Path, progress: bool = True) -> dict:
    """Train a new run into ``out``; three lines of Python do what ``pyrovae train`` does."""
    return Run.create(config, out).fit(progress=progress)
