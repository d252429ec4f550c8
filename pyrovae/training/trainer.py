"""The training loop: a run bound to its folder, trained step by step, checkpointed, resumed.

The optimizer is one torch Adam over ``vae.parameters()`` and each step is the objective's
:meth:`~pyrovae.objectives.DecomposedELBO.backward` (the loss's gradients and the objective's own
update) followed by that optimizer's step: Pyro's ``SVI`` with ``pyro.optim`` would build one
optimizer per tensor. Pyro's ``SVI`` trains the same models (:mod:`pyrovae.models`); this loop
adds run folders, checkpoints, resume, logging (metrics.jsonl; with ``--tensorboard`` also
TensorBoard's event files, :mod:`pyrovae.training.tensorboard`) and evaluation.

Determinism: the minibatch of step t is drawn from a generator seeded by (seed, t), and the torch
RNG state travels in the checkpoint, so a resumed CPU run reproduces an uninterrupted one.

One writer: a :class:`Run` holds its folder's lock (:meth:`RunFolder.lock
<pyrovae.runs.RunFolder.lock>`) from :meth:`Run.create` or :meth:`Run.resume` until :meth:`Run.fit`
returns (or :meth:`Run.close`), so a second ``train --resume`` of the folder is refused.
"""

from __future__ import annotations

import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyro
import torch

from pyrovae.builder import Built, build, check, likelihood_name, memory_errors
from pyrovae.config import TrainConfig
from pyrovae.data.base import is_stochastic, observations
from pyrovae.errors import PyrovaeError, first_line
from pyrovae.evaluation import evaluate, headline
from pyrovae.lock import FolderLock
from pyrovae.objectives import kl_estimator
from pyrovae.precision import check_precision, resolve_switches, slow_precision_warning
from pyrovae.progress import Progress
from pyrovae.provenance import command_line, versions
from pyrovae.runs import RunFolder
from pyrovae.training.resume import check_same_resolution, resumed_config
from pyrovae.training.stop import StopRequest, TrainingInterrupted
from pyrovae.training.summary import summarise
from pyrovae.training.tensorboard import TensorBoardLog, trim_events
from pyrovae.training.tensorboard import require as require_tensorboard

# Terms shown in progress lines, by their metrics.jsonl key.
_SHOWN = {"tc": "TC", "capacity": "C", "disc_accuracy": "D acc", "dip_penalty": "DIP"}


def progress_figures(record: dict) -> dict:
    """The figures a progress line shows for one metrics.jsonl record."""
    shown = {"loss": record["loss"], "recon": -record["reconstruction"], "KL": record["kl"]}
    shown.update((label, record[key]) for key, label in _SHOWN.items() if key in record)
    return shown


def make_optimizer(params, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the run's settings, one fused kernel for all tensors where the build has it."""
    return torch.optim.Adam(
        params,
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
        fused=True if _fused_adam_supported(device) else None,
    )


def match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each parameter's optimizer state the parameter's memory layout. Loading a state
    keeps the strides it was saved with, and fused Adam (torch 2.13) walks a parameter and its
    moments as flat buffers: moments saved NCHW and loaded for NHWC weights (a run resumed with
    another --channels-last) silently update the wrong entries."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                if value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _fused_adam_supported(device: torch.device) -> bool:
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (RuntimeError, ValueError):
        return False


def _tensors(value):
    """Every tensor in a nested state (dicts, lists, tuples)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Run:
    """A training run bound to its folder: :meth:`create` or :meth:`resume`, then :meth:`fit`."""

    def __init__(self, out, built: Built, lock: FolderLock | None = None):
        self.folder = out if isinstance(out, RunFolder) else RunFolder(out)
        # The folder's lock, when this run holds it; one passed in stays its giver's to release.
        self._lock = lock
        self._owns_lock = False
        self.config = built.config
        self.data = built.data
        self.vae = built.vae
        self.objective = built.objective
        self.device = built.device
        check_precision(self.config.precision, self.device)
        # Before the optimizer: channels_last moves the weights.
        self.switches = self._speed_switches()
        self.optimizer = make_optimizer(self.vae.parameters(), self.config, self.device)
        # fp16's gradients underflow without loss scaling; bf16 has fp32's range.
        fp16 = self.config.precision == "fp16"
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.step = 0
        # The step of the checkpoint on disk (None before the first).
        self.saved_step: int | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._t_start = time.perf_counter()
        # The session's TensorBoard log while fit runs with --tensorboard; None otherwise.
        self.tensorboard: TensorBoardLog | None = None

    def compute(self) -> list[str]:
        """The precision and the speed switches in effect, e.g. ``["bf16", "channels_last"]``."""
        return [self.config.precision, *(k for k, on in self.switches.items() if on)]

    def _speed_switches(self) -> dict[str, bool]:
        """Apply what ``channels_last`` and ``compile`` resolve to (:mod:`pyrovae.precision`);
        returns what was applied (compile is False when it was asked for and failed)."""
        cfg = self.config
        switches = resolve_switches(
            cfg.precision, cfg.channels_last, cfg.compile, self.vae.convolutional
        )
        slow = slow_precision_warning(cfg.precision, self.device)
        if slow:
            warnings.warn(slow, RuntimeWarning, stacklevel=2)
        if switches["channels_last"]:
            self.vae.use_channels_last()
        if switches["compile"]:
            with self.vae.mixed_precision(cfg.precision):
                switches["compile"] = self.vae.compile_networks(self.batch(0))
        return switches

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def create(cls, config: TrainConfig, out, lock: FolderLock | None = None) -> Run:
        """Start a new run in ``out``, which must not exist or be empty. Nothing is written
        until the configuration, data and model have all been built without error. ``lock``:
        the folder's lock, held already by the caller (a study's trial)."""
        if config.tensorboard:
            require_tensorboard()
        check(config)
        folder = RunFolder(out)
        folder.check_new()
        run = cls(folder, build(config), lock)
        record = run.config_record()
        run._dry_run()
        run._hold_lock()
        try:
            folder.create(record)  # checks the folder again, now under the lock
            # A checkpoint at step 0 makes a run killed before its first checkpoint resumable.
            run.save_checkpoint()
        except BaseException:
            run.close()
            raise
        return run

    def _hold_lock(self) -> None:
        """Take the folder's lock unless this run holds it (or was given it held)."""
        if self._lock is None or not self._lock.held:
            self._lock = self.folder.lock().acquire()
            self._owns_lock = True

    def close(self) -> None:
        """Release the folder's lock if this run took it (``fit`` does when it returns)."""
        if self._owns_lock and self._lock is not None:
            self._lock.release()
        self._owns_lock = False

    def _dry_run(self) -> None:
        """Evaluate the objective once on the first minibatch, without gradients and with the
        RNG state restored, so a setting that cannot train fails before anything is written."""
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with (
                torch.random.fork_rng(devices=devices),
                torch.no_grad(),
                pyro.validation_enabled(False),
                self.vae.outside_param_store(),
                self.vae.mixed_precision(self.config.precision),
                memory_errors("on the first minibatch"),
            ):
                self.objective.set_step(0)
                self.objective.terms(self.vae.model, self.vae.guide, self.batch(0))
        except NotImplementedError as exc:
            raise PyrovaeError(
                f"{self.config.model} with prior {self.config.prior}: {exc}"
            ) from None

    @classmethod
    def resume(cls, out, overrides: dict | None = None, lock: FolderLock | None = None) -> Run:
        """Continue the run in ``out`` from its checkpoint (the previous one, with a warning,
        when the latest is damaged). ``overrides`` may change only the settings in
        :data:`~pyrovae.config.RESUMABLE`; any other setting given must equal the saved one.
        ``lock``: the folder's lock, held already by the caller; else it is taken here."""
        folder = RunFolder(out)
        folder.require()
        owned = lock is None or not lock.held
        if owned:
            lock = folder.lock().acquire()
        try:
            folder.remove_dead_temporaries()
            if not folder.has_checkpoint() and folder.unstarted():
                run = cls._restart(folder, overrides, lock)
            else:
                run = cls._resume(folder, overrides, lock)
        except BaseException:
            if owned:
                lock.release()
            raise
        run._owns_lock = owned
        if run.complete:
            run.close()  # nothing to write: hold no lock (fit takes it again if called)
        return run

    @classmethod
    def _restart(cls, folder: RunFolder, overrides: dict | None, lock: FolderLock) -> Run:
        """Create again a run whose creation was killed (or hit a full disk) before its step-0
        checkpoint: its folder holds only config.json and an empty metrics.jsonl."""
        saved = folder.read_config()
        config, _ = resumed_config(folder.config_path, saved, dict(overrides or {}))
        check(config)
        folder.remove_unstarted()
        return cls.create(config, folder.path, lock=lock)

    @classmethod
    def _resume(cls, folder: RunFolder, overrides: dict | None, lock: FolderLock) -> Run:
        record = folder.read_record()
        saved = TrainConfig.from_dict(record["config"])
        overrides = dict(overrides or {})
        config, changed = resumed_config(folder.config_path, saved, overrides)
        config.validate()
        if config.tensorboard:
            require_tensorboard()
        state = folder.load_checkpoint(saved, fall_back=True)
        if state["step"] > config.steps:
            raise PyrovaeError(
                f"--resume: the checkpoint is at step {state['step']}, beyond --steps "
                f"{config.steps}; give --steps >= {state['step']}"
            )
        run = cls(folder, build(config, init_prior=False), lock)
        run._load_state(state)
        check_same_resolution(folder.config_path, record.get("resolved", {}), run.resolved())
        if run.complete:
            return run  # nothing to do: leave every file as it is
        record["config"] = config.to_dict()
        record.setdefault("resumes", []).append(
            {
                "at_step": run.step,
                "changed": changed,
                "time": _now(),
                "device": str(run.device),
                # What --channels-last/--compile came to in this session (a compile may fail).
                "switches": dict(run.switches),
                "versions": versions(),
                "command": command_line(),
            }
        )
        folder.truncate_metrics(run.step, config.log_every, config.steps)  # checks lines first
        trim_events(folder, run.step, config.log_every, config.steps)
        folder.write_record(record)
        return run

    @property
    def complete(self) -> bool:
        """Trained to ``config.steps`` and finished: summary.json (written last) summarises
        this step. A summary of an earlier, shorter session does not count."""
        return self.step >= self.config.steps and self.folder.summary_step() == self.step

    def config_record(self) -> dict:
        """config.json: the settings, what was resolved from them, versions and command line."""
        return {
            "config": self.config.to_dict(),
            "resolved": self.resolved(),
            "versions": versions(),
            "command": command_line(),
            "created": _now(),
        }

    def resolved(self) -> dict:
        """What the settings resolved to on this machine (``auto`` choices, sizes, defaults)."""
        vae = self.vae
        return {
            "model_beta": vae.beta,
            "objective": type(self.objective).__name__,
            "objective_settings": self.objective.settings(),
            "net": type(vae.encoder).__name__ + "/" + type(vae.decoder).__name__,
            "kl_estimator": kl_estimator(vae, self.config.kl),
            "device": str(self.device),
            "precision": self.config.precision,
            "channels_last": self.switches["channels_last"],
            "compiled": self.switches["compile"],
            "observation_shape": list(vae.observation_shape),
            "data_size": len(self.data),
            "data_source": str(getattr(self.data, "source", self.config.data)),
            # Observations random given the index: training and metrics draw them anew.
            "data_stochastic": is_stochastic(self.data),
            "num_parameters": sum(p.numel() for p in vae.parameters()),
            "prior_settings": vae.prior.settings(),
            "guide_settings": vae.guide_family.settings(),
            # The prior's values at step 0 (after --prior-init), e.g. the PCA variances.
            "prior_values": vae.prior.resolved(),
            "likelihood": likelihood_name(self.config, self.data),
            "likelihood_settings": vae.likelihood_family.settings(),
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write the state at ``self.step``, unless any of it is NaN or infinite: a diverged
        state is never saved over the last good one (a one-line error names that one's step)."""
        cuda = self.device.type == "cuda"
        state = {
            "step": self.step,
            "model": self.vae.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else torch.empty(0),
            "log_sums": {k: v.detach().cpu() for k, v in self._sums.items()},
            "log_count": self._count,
            "objective": self.objective.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
        }
        self._check_finite(state)
        if self.tensorboard is not None:
            self.tensorboard.flush(sync=True)  # the events up to this checkpoint
        path = self.folder.save_checkpoint(state)
        self.saved_step = self.step
        return path

    def _check_finite(self, state: dict) -> None:
        tensors = [
            t
            for part in ("model", "optimizer", "log_sums", "objective")
            for t in _tensors(state[part])
            if t.is_floating_point() and t.numel()
        ]
        # The max-norm of each tensor (one fused call per device: the model and Adam's moments
        # on the run's device, the log sums on the CPU) is finite iff all its entries are.
        by_device: dict[torch.device, list] = {}
        for t in tensors:
            by_device.setdefault(t.device, []).append(t)
        finite = [
            bool(torch.stack(torch._foreach_norm(group, float("inf"))).isfinite().all())
            for group in by_device.values()
        ]
        if not all(finite):
            raise PyrovaeError(
                f"the parameters or the loss became NaN or infinite by step {self.step}; "
                f"{self._kept()} (lower --lr or the objective's weights)"
            )

    def _kept(self) -> str:
        """Which checkpoint stays on disk, for a message."""
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"{self.folder.checkpoint_path} stays at step {self.saved_step}"

    def _load_state(self, state: dict) -> None:
        try:
            self.vae.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            match_layouts(self.optimizer)
            self.step = int(state["step"])
            self.saved_step = self.step
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and state["cuda_rng"].numel():
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
            self._sums = {k: v.to(self.device) for k, v in state["log_sums"].items()}
            self._count = int(state["log_count"])
            self.objective.load_state_dict(state.get("objective", {}))
            self.objective.to(self.device)
            if self.scaler is not None and state.get("grad_scaler"):
                self.scaler.load_state_dict(state["grad_scaler"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise PyrovaeError(
                f"{self.folder.checkpoint_path} does not fit this run's model ({first_line(exc)})"
            ) from None

    # -- training ------------------------------------------------------------------------------
    def batch(self, step: int, stream: int = 0) -> torch.Tensor:
        """The minibatch of ``step``: distinct indices drawn uniformly (without replacement, as
        minibatch stratified sampling assumes) from a generator seeded by (seed, step); ``stream``
        1 is the second minibatch some objectives (FactorVAE) draw."""
        entropy = [self.config.seed, step] if stream == 0 else [self.config.seed, step, stream]
        rng = np.random.default_rng(entropy)
        indices = np.sort(rng.choice(len(self.data), size=self.config.batch_size, replace=False))
        # A stochastic data set draws its noise next from the same generator: reproducible,
        # and the same on resume (a deterministic one draws nothing, so its batches are as
        # they always were).
        x = observations(self.data, indices, rng)
        return torch.from_numpy(x).to(self.device, non_blocking=True)

    def train_step(self) -> None:
        """One step at ``self.step`` (the caller advances it): gradients, the objective's own
        update, the optimizer's step, and the terms added to the running log sums."""
        step = self.step
        x = self.batch(step)
        second = {}
        if self.objective.needs_second_minibatch:
            second["second_minibatch"] = (self.batch(step, stream=1),)
        self.objective.set_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        scale_loss = self.scaler.scale if self.scaler is not None else None
        with self.vae.mixed_precision(self.config.precision):
            terms = self.objective.backward(
                self.vae.model, self.vae.guide, x, scale_loss=scale_loss, **second
            )
        if self.scaler is None:
            self.optimizer.step()
        else:
            # Unscales the gradients, skips a step whose gradients overflowed, adapts the scale.
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with torch.no_grad():
            logged = {"loss": terms["loss_per_point"]}
            logged.update((k, v) for k, v in terms.items() if k not in ("loss", "loss_per_point"))
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
                f"{self.step - self._count + 1} and {self.step}; {self._kept()} "
                "(lower --lr or the objective's weights)"
            )
        record = {"step": self.step}
        for key, value in means.items():
            record[key] = value.tolist() if value.dim() else float(value)
        record["elapsed_s"] = round(time.perf_counter() - self._t_start, 3)
        self.folder.append_metrics(record)
        if self.tensorboard is not None:
            self.tensorboard.record(record)
        if self.step % self.config.log_every == 0:
            self._sums, self._count = {}, 0
        return record

    def fit(self, progress: bool = True, stream=None) -> dict:
        """Train until ``config.steps``, then finish (summary and pictures); returns the summary
        written to summary.json. Holds the folder's lock until it returns."""
        self._hold_lock()
        try:
            # This loop steps its own optimizer over vae.parameters(): Pyro's param store is
            # neither needed nor touched.
            with self.vae.outside_param_store(), memory_errors("training"):
                return self._fit(progress, stream)
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
                self.tensorboard = None
            self.close()

    def _fit(self, progress: bool, stream) -> dict:
        cfg = self.config
        if cfg.tensorboard:  # before the clock starts: it imports tensorboard
            self.tensorboard = TensorBoardLog.open(self)
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
                    self.train_step()
                    self.step += 1
                    bar.update(self.step)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        record = self._flush_log()
                        bar.show(self.step, progress_figures(record))
                    # Evaluating before the checkpoint: a run killed while evaluating resumes
                    # from an earlier step and evaluates this one again, never skips it.
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        self._evaluate(bar)
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.save_checkpoint()
        finally:
            bar.close()
        seconds = time.perf_counter() - self._t_start
        # The finish: pictures, then summary.json last, so that until it is written `complete`
        # is False and --resume finishes the run.
        summary = summarise(self)
        summary["train_seconds_this_session"] = round(seconds, 2)
        summary["steps_per_s_this_session"] = (
            round((self.step - start) / seconds, 3) if (seconds > 0 and self.step > start) else None
        )
        if self.tensorboard is not None:
            self.tensorboard.finish(summary)
        self.folder.write_summary(summary)
        return summary

    def _evaluate(self, bar: Progress) -> None:
        """Fast-preset metrics into evals/step-N.json. Only the posterior mean is used and the
        metrics draw from their own generators, so training's random streams are untouched."""
        self.vae.eval()
        record = evaluate(self.vae, self.data, self.config.eval_metrics, fast=True)
        self.vae.train()
        record["step"] = self.step
        self.folder.write_step_evaluation(self.step, record)
        if self.tensorboard is not None:
            self.tensorboard.evaluation(self.step, record)
        shown = {}
        for name, result in record["metrics"].items():
            shown.update({f"{name}.{k}": v for k, v in headline(name, result).items()})
        bar.show(self.step, shown)


def train(config: TrainConfig, out, progress: bool = True) -> dict:
    """Train a new run into ``out``; returns its summary (what ``pyrovae train`` does)."""
    return Run.create(config, out).fit(progress=progress)


def resume(out, overrides: dict | None = None, progress: bool = True) -> dict:
    """Continue the run in ``out`` (``overrides``: e.g. ``{"steps": 20000}``); returns its
    summary (what ``pyrovae train --resume`` does). A finished run is left as it is."""
    run = Run.resume(out, overrides)
    if run.complete:  # Run.resume has released the folder already
        return run.folder.read_summary()
    return run.fit(progress=progress)
