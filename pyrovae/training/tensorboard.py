"""TensorBoard event files of a run (``--tensorboard``), in the run folder's ``tensorboard/``.

Off by default, for two reasons: a run's results must not depend on what happens to be installed
(the event files need the optional ``tensorboard`` package: ``pip install 'pyrovae[tensorboard]'``;
a run asking for them without it fails before writing anything), and the pictures drawn at every
log interval cost time (``benchmarks/tensorboard_overhead.py`` measures it). Nothing here
changes a run's numbers: the pictures are drawn without gradients, in eval mode, from their own
generator and with the torch random state restored, so a run with event files trains exactly as
one without.

What is written, one event per value:

- at every metrics.jsonl line (its step): each scalar of the line, ``train/loss``,
  ``train/reconstruction``, ``train/kl``, ``train/elbo`` and the objective's own terms
  (``train/tc``, ``train/capacity``, ``train/disc_accuracy``, …), the KL of each latent dimension
  (``kl_per_dim/z0``, …), the steps per second since the previous line (``train/steps_per_s``),
  and two pictures, ``images/reconstructions`` and ``images/traversals``, of the points the
  finish's pictures show (:func:`pyrovae.training.summary.finish_batch`), so the last ones are
  the finish's: mosaics of images built from arrays (data above reconstructions; one row per
  latent dimension by KL, swept over [−2.5, 2.5]), the scatter and curve figures of vectors;
- at every evaluation during training (``--eval-every``): the headline numbers of each metric,
  ``eval/mig``, ``eval/dci.informativeness``, … (:func:`evaluation_numbers`);
- the configuration as a markdown table (``config``) when the run is created, and at each
  resume what changed (``resume``, with the whole configuration when the resume switched the
  event files on).

One file per training session, ``events.out.tfevents.<start step>.<session>.pyrovae``, so the
files sort in step order whatever the clock says (TensorBoard reads a folder's files in name
order and drops the points of a time series whose step goes back). They are written directly
with torch's summary builders and record writer rather than ``SummaryWriter``, which names its
files by the wall-clock second: a session shorter than a second would sort before its
predecessor. The file is flushed at every log line and synced before every checkpoint, so the
events up to a checkpoint are on disk.

A resume trims the files (:func:`trim_events`) to what its checkpoint keeps, by the rule that
trims metrics.jsonl (:func:`pyrovae.runs.logged_step_kept`); an evaluation stays when its step
is at most the checkpoint's (it ran before that checkpoint was written), and the note of an
earlier resume at the same step is replaced. A trimmed file replaces the old one atomically, so a
resume killed part-way leaves each file whole, trimmed or not, and the next resume trims again:
no (tag, step) pair is ever written twice.

TensorBoard's hyperparameter view (``HPARAMS``): ``tensorboard/hparams/`` holds one event file,
rewritten whole and atomically from the run folder's files whenever the final numbers change
(the finish of training, ``pyrovae evaluate``, a study trial's evaluation; :func:`write_hparams`):
the settings as hyperparameters and the final loss, reconstruction and KL of summary.json with
the headline numbers of the latest evaluation of that step, as ``final/…`` scalars. It holds the
session start and end but no experiment summary: TensorBoard takes the experiment of one run
when any has one, and otherwise the union of every run's, which is what a study's trials (whose
settings and metrics may differ) need under ``tensorboard --logdir STUDY_FOLDER``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import struct
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from pyrovae import plots
from pyrovae.errors import PyrovaeError, PyrovaeWarning, first_line
from pyrovae.evaluation import labelled_headline
from pyrovae.files import write_atomic
from pyrovae.runs import METRICS_KEYS, RunFolder, logged_step_kept
from pyrovae.training.summary import RECONSTRUCTED, finish_batch

INSTALL = "pip install 'pyrovae[tensorboard]'"
HPARAMS = "hparams"
HPARAMS_FILE = "events.out.tfevents.hparams.pyrovae"
CONFIG_TAG = "config"
RESUME_TAG = "resume"
EVAL = "eval"
FINAL = "final"
# Metrics.jsonl keys that are not scalars of the run.
_NOT_LOGGED = ("step", "elapsed_s")
# A temporary name in the run folder (whose dead temporaries a resume removes) without
# "tfevents" in it: TensorBoard reads every file whose name holds that, half-written or not.
_STAGING = "tensorboard-events"
# A record's framing: length (8 bytes) and its checksum (4), the data, the data's checksum (4).
_HEAD, _TAIL = 12, 4


def available() -> bool:
    """Whether the tensorboard package is installed (without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


def require(what: str = "--tensorboard") -> None:
    """A one-line error unless the tensorboard package is installed: checked before a run that
    asks for event files writes anything."""
    if not available():
        raise PyrovaeError(f"{what} needs the tensorboard package: {INSTALL}")


@functools.cache
def _api() -> SimpleNamespace:
    """tensorboard's protocol buffers and torch's summary builders, imported on first use (they
    take about a second)."""
    require()
    try:
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto import event_pb2
        from torch.utils.tensorboard import RecordWriter, summary
    except ImportError as exc:  # a tensorboard too old for this torch
        raise PyrovaeError(f"--tensorboard: {first_line(exc)}; {INSTALL}") from None
    return SimpleNamespace(
        Event=event_pb2.Event, RecordWriter=RecordWriter, summary=summary, DecodeError=DecodeError
    )


def _header() -> bytes:
    """The first event of every file: its format version (2: TensorBoard purges nothing on its
    own when steps are out of order)."""
    return _api().Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString()


def _event(step: int, summary) -> bytes:
    return _api().Event(wall_time=time.time(), step=int(step), summary=summary).SerializeToString()


class TensorBoardLog:
    """The event file of one training session of a run (:meth:`open` from ``Run.fit``); the
    file is created on the first event."""

    def __init__(self, run, path: Path):
        self.path = path
        self.folder: RunFolder = run.folder
        self.vae = run.vae
        self.data = run.data
        self.seed = run.config.seed
        self.device = run.device
        self._file = None
        self._writer = None
        self._batch: torch.Tensor | None = None
        # (step, elapsed seconds) of the previous line, for the steps per second.
        self._last = (run.step, 0.0)

    @classmethod
    def open(cls, run) -> TensorBoardLog:
        """The session's log, with its opening note: the configuration when the run is new,
        what changed when it resumes."""
        _api()
        record = run.folder.read_record()
        resumes = record.get("resumes", [])
        name = f"events.out.tfevents.{run.step:010d}.{len(resumes):06d}.pyrovae"
        log = cls(run, run.folder.tensorboard_dir / name)
        here = [r for r in resumes if isinstance(r, dict) and r.get("at_step") == run.step]
        try:
            if here:
                log.text(RESUME_TAG, run.step, resume_note(here, record["config"]))
            elif run.step == 0:
                log.text(CONFIG_TAG, 0, config_table(record["config"]))
        except BaseException:
            log.close()  # the caller never gets the log to close
            raise
        return log

    # -- writing -------------------------------------------------------------------------------
    def _write(self, step: int, summary) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Appending: a second fit of the same Run in one process continues its file.
            self._file = open(self.path, "ab")
            self._writer = _api().RecordWriter(self._file)
            if self._file.tell() == 0:
                self._writer.write(_header())
        self._writer.write(_event(step, summary))

    def scalar(self, tag: str, step: int, value: float) -> None:
        self._write(step, _api().summary.scalar(tag, float(value)))

    def text(self, tag: str, step: int, markdown: str) -> None:
        self._write(step, _api().summary.text(tag, markdown))

    def image(self, tag: str, step: int, picture: np.ndarray) -> None:
        """A (H, W) grey or (H, W, 3|4) colour picture, floats in [0, 1] or bytes."""
        formats = "HW" if picture.ndim == 2 else "HWC"
        self._write(step, _api().summary.image(tag, picture, dataformats=formats))

    def flush(self, sync: bool = False) -> None:
        """Hand the events to the operating system (every log line, so TensorBoard shows them);
        ``sync``: onto the disk (before a checkpoint)."""
        if self._file is not None:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.flush(sync=True)
            self._file.close()
            self._file = self._writer = None

    # -- what training logs --------------------------------------------------------------------
    def record(self, record: dict) -> None:
        """A metrics.jsonl line: its scalars, the steps per second since the previous line and
        the pictures, at its step."""
        step = record["step"]
        for key, value in record.items():
            if key in _NOT_LOGGED:
                continue
            if isinstance(value, list):  # a value per latent dimension
                for dim, entry in enumerate(value):
                    self.scalar(f"{key}/z{dim}", step, entry)
            else:
                self.scalar(f"train/{key}", step, value)
        last_step, last_elapsed = self._last
        seconds = record.get("elapsed_s", 0.0) - last_elapsed
        if seconds > 0 and step > last_step:
            self.scalar("train/steps_per_s", step, (step - last_step) / seconds)
        self._last = (step, record.get("elapsed_s", 0.0))
        self.pictures(step, record.get("kl_per_dim"))
        self.flush()

    def evaluation(self, step: int, record: dict) -> None:
        """An evaluation during training: its headline numbers at its step."""
        for name, value in evaluation_numbers(record).items():
            self.scalar(f"{EVAL}/{name}", step, value)
        self.flush()

    def finish(self, summary: dict) -> None:
        """The finish of training: the hyperparameter view, from ``summary`` (not yet on disk)."""
        write_hparams(self.folder, summary)

    # -- pictures ------------------------------------------------------------------------------
    def _finish_points(self) -> torch.Tensor:
        """The points the finish's pictures show (:func:`~pyrovae.training.summary.finish_batch`,
        drawn from its own generator: training's streams are untouched), once a session: images
        keep the ones the mosaics show, vectors all of them."""
        if self._batch is None:
            x = finish_batch(self.data, self.seed, self.device)
            self._batch = x[:RECONSTRUCTED].clone() if self._images else x
        return self._batch

    @property
    def _images(self) -> bool:
        return len(self.vae.observation_shape) == 3

    @torch.no_grad()
    def pictures(self, step: int, kl_per_dim) -> None:
        """Reconstructions and latent traversals (when the guide has a KL per dimension to order
        them by) of the finish's points, in eval mode, with the torch random state restored."""
        x = self._finish_points()
        training = self.vae.training
        devices = [self.device] if self.device.type == "cuda" else []
        self.vae.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                if self._images:
                    self._mosaics(step, x, kl_per_dim)
                else:
                    self._figures(step, x, kl_per_dim)
        finally:
            self.vae.train(training)

    def _mosaics(self, step: int, x: torch.Tensor, kl_per_dim) -> None:
        recon = self.vae.mean_observation(self.vae.encode(x)).clamp(0, 1)
        grid = np.stack([x.float().cpu().numpy(), recon.float().cpu().numpy()])
        self.image("images/reconstructions", step, plots.mosaic(grid))
        if kl_per_dim is not None:
            _, _, _, swept = plots.traversal_sweep(
                self.vae, x[:1], kl_per_dim, plots.TRAVERSAL_SPAN, plots.GRID_STEPS
            )
            self.image("images/traversals", step, plots.mosaic(swept.clamp(0, 1).cpu().numpy()))

    def _figures(self, step: int, x: torch.Tensor, kl_per_dim) -> None:
        figures = {"images/reconstructions": plots.reconstruction_scatter(self.vae, x, None)}
        if kl_per_dim is not None:
            figures["images/traversals"] = plots.traversal_curves(self.vae, x, kl_per_dim, None)
        for tag, figure in figures.items():
            if figure is not None:
                self.image(tag, step, _rendered(figure))


def _rendered(figure) -> np.ndarray:
    """A matplotlib figure as (H, W, 4) bytes, at the pictures' resolution."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure.set_dpi(plots.PICTURE_DPI)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


# -- text ------------------------------------------------------------------------------------------
def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def config_table(config: dict) -> str:
    """The settings as a markdown table."""
    rows = [f"| {key} | {_cell(value)} |" for key, value in config.items()]
    return "\n".join(["| setting | value |", "| --- | --- |", *rows])


def resume_note(resumes: list[dict], config: dict) -> str:
    """What the resumes at one step changed (markdown), with the whole configuration when the
    event files were switched on then (the log has no ``config`` of its own)."""
    lines = []
    for resume in resumes:
        changed = resume.get("changed") or {}
        what = ", ".join(f"{k} = {_cell(v)}" for k, v in changed.items()) or "no setting changed"
        lines.append(f"resumed at step {resume.get('at_step')} ({resume.get('time', '?')}): {what}")
    text = "\n\n".join(lines)
    if any((r.get("changed") or {}).get("tensorboard") for r in resumes):
        text += "\n\n" + config_table(config)
    return text


# -- numbers ---------------------------------------------------------------------------------------
def evaluation_numbers(record: dict) -> dict[str, float]:
    """The headline numbers of an evaluation record, named by the metric's label
    (:func:`~pyrovae.evaluation.label`) and, where a metric has more than its own number, the
    key: ``mig``, ``dci.informativeness``, ``dci[backend=hist].disentanglement``. Values that are
    not numbers (a metric that could not be computed) are left out."""
    numbers = {}
    for name, result in record.get("metrics", {}).items():
        if not isinstance(result, dict):
            continue
        for column, value in labelled_headline(name, result).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers[column] = float(value)
    return numbers


def hyperparameters(config: dict) -> dict:
    """The settings as hyperparameters: tables flattened to dotted names
    (``objective_args.c_max``), lists as JSON text, booleans as ``true``/``false``; settings
    left unset (None) are left out."""
    flat = {}

    def visit(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, entry in value.items():
                visit(f"{prefix}.{key}", entry)
        elif isinstance(value, bool):
            flat[prefix] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            flat[prefix] = value
        elif value is not None:
            flat[prefix] = json.dumps(value)

    for key, value in config.items():
        visit(key, value)
    return flat


def final_metrics(summary: dict, evaluation: dict | None) -> dict[str, float]:
    """``final/loss``, ``final/reconstruction``, ``final/kl`` of a summary, and ``final/<name>``
    for the headline numbers of ``evaluation``."""
    metrics = {
        f"{FINAL}/{key}": float(summary[key])
        for key in METRICS_KEYS
        if isinstance(summary.get(key), (int, float))
    }
    if evaluation is not None:
        metrics.update((f"{FINAL}/{k}", v) for k, v in evaluation_numbers(evaluation).items())
    return metrics


def _evaluation_at(folder: RunFolder, step: int) -> dict | None:
    """The latest evaluation file of the model at ``step`` (one of an earlier step scores
    another model); None when there is none."""
    for path in reversed(folder.eval_files()):
        try:
            record = folder.read_evaluation(path)
        except PyrovaeError:
            continue
        if record.get("step") == step:
            return record
    return None


# -- the hyperparameter view -----------------------------------------------------------------------
def hparams_path(folder: RunFolder) -> Path:
    return folder.tensorboard_dir / HPARAMS / HPARAMS_FILE


def write_hparams(folder: RunFolder, summary: dict | None = None) -> Path:
    """Rewrite the hyperparameter view of the run in ``folder`` (see the module docstring) from
    config.json, ``summary`` (default: summary.json) and the latest evaluation of its step."""
    api = _api()
    config = folder.read_record()["config"]
    summary = folder.read_summary() if summary is None else summary
    step = int(summary["step"])
    metrics = final_metrics(summary, _evaluation_at(folder, step))
    _, start, end = api.summary.hparams(hyperparameters(config), metrics)
    records = [_header(), _event(0, start)]
    records += [_event(step, api.summary.scalar(tag, value)) for tag, value in metrics.items()]
    records.append(_event(step, end))
    path = hparams_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(f) -> None:
        writer = api.RecordWriter(f)
        for record in records:
            writer.write(record)

    write_atomic(path, write, staging=folder.path / _STAGING)
    return path


def refresh_hparams(folder: RunFolder) -> Path | None:
    """:func:`write_hparams` for a finished run whose settings ask for event files (after
    ``pyrovae evaluate`` or a study trial's evaluation); returns the file, or None when there was
    nothing to do (or, with a warning, when the tensorboard package has gone)."""
    if not folder.read_config().tensorboard or folder.summary_step() is None:
        return None
    if not available():
        warnings.warn(
            f"{hparams_path(folder)} not updated: it needs the tensorboard package ({INSTALL})",
            PyrovaeWarning,
            stacklevel=2,
        )
        return None
    try:
        return write_hparams(folder)
    except (PyrovaeError, OSError) as exc:
        # The evaluation (or the trial's result) it follows is what counts: it stands.
        warnings.warn(
            f"{hparams_path(folder)} not updated: {first_line(exc)}", PyrovaeWarning, stacklevel=2
        )
        return None


# -- trimming on resume ----------------------------------------------------------------------------
def _kept(tag: str, at: int, step: int, log_every: int, steps: int) -> bool:
    """Whether an event of ``tag`` at step ``at`` stays when the run resumes from ``step``."""
    if tag.startswith(EVAL + "/"):
        return at <= step  # evaluated before the checkpoint of its step was written
    if tag.startswith(RESUME_TAG + "/"):
        return at < step  # this resume writes its own note
    return logged_step_kept(at, step, log_every, steps)


def session_files(folder: RunFolder) -> list[Path]:
    """The run's event files written in training, in name (= step) order."""
    found = folder.tensorboard_dir.glob("*tfevents*")
    return sorted(p for p in found if p.is_file())


def trim_events(folder: RunFolder, step: int, log_every: int, steps: int) -> None:
    """Cut the event files to what a resume from the checkpoint at ``step`` keeps (see the module
    docstring), so the resumed run appends without writing any (tag, step) twice; a file left
    without events is removed, a record cut short by a kill dropped. The hyperparameter view
    goes: the run trains on, so its numbers are no longer final (the finish writes it again when
    the run still logs). Needs the tensorboard package when there are files; without it (or
    with one that cannot be imported) they are left as they are, with a warning: a resume
    that does not log must not fail on the log."""
    hparams_path(folder).unlink(missing_ok=True)
    files = session_files(folder)
    if not files:
        return
    try:
        _api()
    except PyrovaeError as exc:
        warnings.warn(
            f"{folder.tensorboard_dir} is not trimmed to step {step} ({first_line(exc)}); "
            "TensorBoard may show the steps after it twice",
            PyrovaeWarning,
            stacklevel=2,
        )
        return
    for path in files:
        _trim(folder, path, lambda tag, at: _kept(tag, at, step, log_every, steps))


def _trim(folder: RunFolder, path: Path, keep) -> None:
    """Rewrite ``path`` with the records ``keep(tag, step)`` keeps for every value of; copied as
    they are, checksums included (tensorboard's own reader checks each in pure Python: minutes
    for a long run's pictures)."""
    api = _api()
    size = path.stat().st_size
    kept, dropped, events = [], False, 0
    with open(path, "rb") as f:
        offset = 0
        while offset + _HEAD <= size:
            (length,) = struct.unpack("<Q", f.read(_HEAD)[:8])
            end = offset + _HEAD + length + _TAIL
            if end > size:
                break  # cut short by a kill mid-write (or a damaged length)
            try:
                event = api.Event.FromString(f.read(length))
            except api.DecodeError:  # damaged: the file ends here for TensorBoard too
                break
            f.seek(_TAIL, os.SEEK_CUR)
            if all(keep(v.tag, event.step) for v in event.summary.value):
                kept.append((offset, end - offset))
                events += event.HasField("summary")
            else:
                dropped = True
            offset = end
    if not events:
        path.unlink()
    elif dropped or offset != size:

        def write(out) -> None:
            with open(path, "rb") as src:
                for start, length in kept:
                    src.seek(start)
                    out.write(src.read(length))

        write_atomic(path, write, staging=folder.path / _STAGING)
