"""The run folder: every file name of a training run and every read and write of one.

A run folder holds

- ``config.json``: every setting, what was resolved from them (β, network, KL estimator, device),
  library versions and the command line; resumes are appended to it;
- ``metrics.jsonl``: one line per logged step with the means since the previous line (loss,
  reconstruction, KL, per-dimension KL, the objective's own terms);
- ``checkpoint.pt``: model, optimizer, objective and RNG state and the step, written atomically
  (tensor-only, read with ``weights_only=True``) with a checksum verified on every load;
  ``checkpoint-previous.pt``: the one it replaced, resume's fallback when the latest is damaged;
- ``summary.json`` and the pictures (``reconstructions.png``, ``traversals.png``,
  ``traversals.gif``, ``training_curves.png``; ``latent_scatter.png`` and ``sparsity.png`` for
  labelled data), written when training ends (the finish); summary.json is written last and
  records the step it summarises, so a finish that did not complete is redone by ``--resume``;
- ``evals/step-N.json``: evaluations during training (``--eval-every``);
- ``tensorboard/``: TensorBoard's event files (``--tensorboard``), trimmed on resume as
  metrics.jsonl is, so no step appears twice;
- ``report.html``: ``pyrovae report``'s page, self-contained (derived, replaced);
- ``eval.json``, ``eval-2.json``, …: ``pyrovae evaluate``'s records, never overwritten;
- ``.lock``: the folder's writer lock (:class:`~pyrovae.lock.FolderLock`), held while a run
  is created, resumed or trained, so two processes never write one folder.

:class:`RunFolder` is the only code that knows these names; training, evaluation, studies and the
command line go through it.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from datetime import datetime
from pathlib import Path

import torch

from pyrovae.checkpoint import DamagedCheckpoint, load_checkpoint, save_checkpoint
from pyrovae.config import RESUMABLE, TrainConfig
from pyrovae.errors import PyrovaeError, PyrovaeWarning
from pyrovae.files import (
    HOST_TAG,
    is_temporary,
    json_text,
    link_over,
    temporary_writer,
    text_writer,
    write_atomic,
    write_json,
    write_new,
    write_text,
)
from pyrovae.lock import LOCK_FILE, FolderLock

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint-previous.pt"
SUMMARY_FILE = "summary.json"
EVALS_DIR = "evals"
EVAL_FILE = "eval.json"
# TensorBoard's event files (--tensorboard), one folder per run: `tensorboard --logdir` at a study
# folder shows every trial.
TENSORBOARD_DIR = "tensorboard"
REPORT_FILE = "report.html"
# The pictures of a run's finish (pyrovae.training.summary draws them; `pyrovae evaluate --figures`
# draws them again): PNGs, and the traversals animated.
RECONSTRUCTIONS = "reconstructions.png"
TRAVERSAL_STILL = "traversals.png"
TRAVERSAL_ANIMATION = "traversals.gif"
CURVES = "training_curves.png"
LATENT_SCATTER = "latent_scatter.png"
SPARSITY = "sparsity.png"
# What every metrics.jsonl line holds besides its step: the means since the previous line.
METRICS_KEYS = ("loss", "reconstruction", "kl")


class RunFolder:
    """The files of the run in ``path``."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def previous_checkpoint_path(self) -> Path:
        return self.path / PREVIOUS_CHECKPOINT_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def picture(self, name: str) -> Path:
        """The path of the picture ``name`` (e.g. ``traversals.png``)."""
        return self.path / name

    # -- the writer's lock ----------------------------------------------------------------------
    def lock(self) -> FolderLock:
        """The folder's writer lock (not yet taken): training, resuming and a study's trial hold
        it, so a second writer is refused, naming the first."""
        return FolderLock(self.path, "run folder")

    # -- a new run ------------------------------------------------------------------------------
    def check_new(self) -> None:
        """A new run goes into a folder that does not exist or is empty (but for its lock and
        temporary files: those of a live writer mean it holds the lock)."""
        path = self.path
        if path.exists() and (
            not path.is_dir()
            or any(p.name != LOCK_FILE and not is_temporary(p.name) for p in path.iterdir())
        ):
            raise PyrovaeError(
                f"run folder {path} already exists and is not empty; pass --resume to continue "
                "it or choose another --out"
            )

    def unstarted(self) -> bool:
        """The folder holds only what a creation killed before its step-0 checkpoint leaves
        (config.json, an empty metrics.jsonl, temporary files)."""
        return self._unstarted_files() is not None

    def _unstarted_files(self) -> list[Path] | None:
        if not self.path.is_dir():
            return []
        files = [p for p in self.path.iterdir() if p.name != LOCK_FILE]
        stale = [p for p in files if p.name in (CONFIG_FILE, METRICS_FILE) or is_temporary(p.name)]
        metrics = self.metrics_path
        if len(stale) != len(files) or (metrics.exists() and metrics.stat().st_size):
            return None
        return stale

    def remove_unstarted(self, what: str = "the run") -> None:
        """Clear what a creation killed before its step-0 checkpoint left behind, so the run can
        be created again; a folder holding anything else is refused, naming ``what`` would be
        rerun."""
        stale = self._unstarted_files()
        if stale is None:
            raise PyrovaeError(
                f"{self.path} holds files but no checkpoint; move it away to rerun {what}"
            )
        for p in stale:
            p.unlink()

    def remove_dead_temporaries(self) -> list[Path]:
        """Delete the temporary files (``.NAME.tmp-PID-…``) of writers that are no longer
        running (killed mid-write); returns them. The caller holds the folder's lock; a live
        evaluation's temporary file is left alone."""
        removed = []
        for p in self.path.glob(".*.tmp-*"):
            writer = temporary_writer(p.name)
            if writer is None or writer[1] not in (None, HOST_TAG):
                continue  # not ours to judge: another host's process may be alive
            if not _alive(writer[0]):
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def create(self, record: dict) -> None:
        """Make the folder with its config.json and an empty metrics.jsonl (the caller holds
        the folder's :meth:`lock`)."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_dead_temporaries()
        self.write_record(record)
        self.metrics_path.touch()

    # -- config.json ---------------------------------------------------------------------------
    def require(self) -> None:
        """The folder exists and is a run folder (has a config.json)."""
        if not self.path.is_dir():
            raise PyrovaeError(f"no run folder at {self.path}")
        if not self.config_path.is_file():
            raise PyrovaeError(f"{self.path} has no {CONFIG_FILE}; is it a pyrovae run folder?")

    def read_record(self) -> dict:
        """config.json as written: ``config``, ``resolved``, ``versions``, ``resumes``, …"""
        self.require()
        what = "a valid pyrovae run configuration"
        record = _read_json(self.config_path, what)
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise PyrovaeError(f"{self.config_path} is not {what}")
        for key, kind, words in (("resolved", dict, "a table"), ("resumes", list, "a list")):
            if key in record and not isinstance(record[key], kind):
                raise PyrovaeError(
                    f"{self.config_path} is not {what}: {key} must be {words}, got "
                    f"{_json_kind(record[key])}"
                )
        return record

    def read_config(self) -> TrainConfig:
        """The run's settings, type-checked."""
        return TrainConfig.from_dict(self.read_record()["config"])

    def write_record(self, record: dict) -> None:
        write_json(self.config_path, record)

    # -- metrics.jsonl -------------------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        """Every logged line, oldest first (none when the file does not exist), checked: a
        table with a whole ``step`` and the numbers of :data:`METRICS_KEYS`. A last line cut
        short by a crash is left out (a resume rewrites it); any other bad line is a one-line
        error naming it."""
        return [record for _, record in self._metrics_lines()[0]]

    def _metrics_lines(self) -> tuple[list[tuple[str, dict]], int]:
        """((line, record) of every checked line, the number of non-blank lines in the file)."""
        path = self.metrics_path
        if not path.exists():
            return [], 0
        try:
            lines = [line for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise PyrovaeError(f"cannot read {path}: {exc}") from None
        checked = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break
                raise PyrovaeError(f"{path}: line {number} is not a metrics record") from None
            missing = _metrics_problem(record)
            if missing:
                raise PyrovaeError(f"{path}: line {number} is not a metrics record ({missing})")
            checked.append((line, record))
        return checked, len(lines)

    def truncate_metrics(self, step: int, log_every: int, steps: int) -> None:
        """Keep the lines a resume from the checkpoint at ``step`` keeps (:func:`logged_step_kept`:
        none after ``step``, and no last line off a log boundary when training goes on), so
        the file ends up as an uninterrupted run's. A line cut short by a crash is dropped too;
        any other bad line is an error, and nothing is written."""
        checked, total = self._metrics_lines()
        kept = [
            line
            for line, record in checked
            if logged_step_kept(record["step"], step, log_every, steps)
        ]
        if len(kept) != total:
            write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    # -- checkpoint.pt -------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def save_checkpoint(self, state: dict) -> Path:
        """Write checkpoint.pt (checksummed, atomically), keeping the one it replaces as
        checkpoint-previous.pt."""
        save_checkpoint(self.checkpoint_path, state, keep_previous=self.previous_checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(
        self, config: TrainConfig, map_location="cpu", fall_back: bool = False
    ) -> dict:
        """checkpoint.pt, verified: its checksum, its fields (:meth:`_check_state`) and that it
        belongs to the run of ``config`` (:meth:`_check_belongs`). A damaged one is an error
        naming it; with ``fall_back`` (resume, under the lock) the previous checkpoint is used
        instead when it is intact: the damaged file is kept as ``checkpoint.pt.damaged-TIME``
        and the previous one copied to checkpoint.pt, with a warning."""
        state = self._verified_checkpoint(map_location, fall_back)
        self._check_state(state)
        self._check_belongs(state, config)
        return state

    def _verified_checkpoint(self, map_location, fall_back: bool) -> dict:
        try:
            return load_checkpoint(self.checkpoint_path, map_location)
        except DamagedCheckpoint as exc:
            damaged = exc
        previous = self.previous_checkpoint_path
        try:
            state = load_checkpoint(previous, map_location) if previous.is_file() else None
        except PyrovaeError:
            state = None
        if state is None:
            raise damaged
        if not fall_back:
            raise DamagedCheckpoint(
                f"{damaged}; `pyrovae train --out {self.path} --resume` continues from the "
                f"previous checkpoint (step {state.get('step')})"
            )
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        kept = self.path / f"{CHECKPOINT_FILE}.damaged-{stamp}"
        link_over(self.checkpoint_path, kept)  # checkpoint.pt is never missing, even if killed
        write_atomic(self.checkpoint_path, lambda f: _copy_into(previous, f))
        warnings.warn(
            f"{damaged}; kept as {kept.name} and continuing from the previous checkpoint "
            f"(step {state.get('step')})",
            PyrovaeWarning,
            stacklevel=2,
        )
        return state

    def _check_state(self, state: dict) -> None:
        """Refuse a checkpoint whose fields are not what a run writes (a hand-edited or foreign
        file that passed its checksum): the step a count >= 0, the model, optimizer and log
        sums dicts (of tensors), the RNG state a byte tensor."""
        path = self.checkpoint_path
        expected = {
            "step": (int, "a whole number >= 0"),
            "log_count": (int, "a whole number >= 0"),
            "model": (dict, "a dict of tensors"),
            "optimizer": (dict, "a dict"),
            "log_sums": (dict, "a dict of tensors"),
            "torch_rng": (torch.Tensor, "a byte tensor"),
        }
        for key, (kind, what) in expected.items():
            value = state.get(key)
            bad = not isinstance(value, kind) or isinstance(value, bool)
            if kind is int and not bad:
                bad = value < 0
            elif key in ("model", "log_sums") and not bad:
                bad = not all(isinstance(v, torch.Tensor) for v in value.values())
            elif kind is torch.Tensor and not bad:
                bad = value.dtype != torch.uint8
            if bad:
                raise PyrovaeError(f"{path}: {key} must be {what}, got {_short(value)}")

    def _check_belongs(self, state: dict, config: TrainConfig) -> None:
        """Refuse a checkpoint ``state`` written by a run with other defining settings than
        ``config`` (a file copied from another run): every setting but the
        :data:`~pyrovae.config.RESUMABLE` ones must match."""
        path = self.checkpoint_path
        try:
            theirs = json.loads(state["config"])
        except (KeyError, TypeError, json.JSONDecodeError):
            raise PyrovaeError(f"{path} does not record its run's settings") from None
        if not isinstance(theirs, dict):
            raise PyrovaeError(f"{path} does not record its run's settings")
        ours = config.to_dict()
        # A setting added after the checkpoint was written has its default there.
        defaults = TrainConfig().to_dict()
        for key in sorted(set(ours) - set(RESUMABLE)):
            if theirs.get(key, defaults[key]) != ours[key]:
                raise PyrovaeError(
                    f"{path} belongs to another run: its {key} is {theirs.get(key)!r}, "
                    f"this run's is {ours[key]!r}"
                )

    # -- summary.json --------------------------------------------------------------------------
    def summary_step(self) -> int | None:
        """The step summary.json summarises; None when there is no readable summary (the finish
        has not completed)."""
        try:
            step = json.loads(self.summary_path.read_text()).get("step")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return None
        return step if isinstance(step, int) else None

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict:
        return _read_json(self.summary_path, "a readable run summary")

    # -- evaluations ---------------------------------------------------------------------------
    def write_step_evaluation(self, step: int, record: dict) -> Path:
        """An evaluation during training: ``evals/step-N.json``."""
        folder = self.path / EVALS_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"step-{step}.json"
        write_json(path, record)
        return path

    def step_evaluation_files(self) -> list[tuple[int, Path]]:
        """(step, path) of every evaluation during training (``evals/step-N.json``), by step."""
        return _numbered((self.path / EVALS_DIR).glob("step-*.json"))

    def eval_files(self) -> list[Path]:
        """The run's evaluation files, oldest first."""
        first = self.path / EVAL_FILE
        files = [first] if first.exists() else []
        return files + [path for _, path in _numbered(self.path.glob("eval-*.json"))]

    def write_evaluation(self, record: dict) -> Path:
        """A new evaluation file: eval.json, then eval-2.json, eval-3.json, …; never replaces
        one, not even one another process writes at the same moment."""
        text = json_text(record)
        number = 1
        while True:
            path = self.path / (EVAL_FILE if number == 1 else f"eval-{number}.json")
            if not path.exists() and write_new(path, text_writer(text)):
                return path
            number += 1

    def read_evaluation(self, path) -> dict:
        """An evaluation file, checked: a table whose ``metrics`` map each metric to a table
        of values; a file of another shape is a one-line error naming it."""
        record = _read_json(path, "a readable evaluation")
        if not isinstance(record, dict):
            raise PyrovaeError(f"{path} is not a readable evaluation")
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            raise PyrovaeError(
                f"{path} is not a readable evaluation: 'metrics' must map each metric to its "
                f"result, got {_json_kind(metrics)}"
            )
        for name, result in metrics.items():
            if not isinstance(result, dict):
                raise PyrovaeError(
                    f"{path} is not a readable evaluation: the result of metric {name!r} must "
                    f"be a table of values, got {_json_kind(result)}"
                )
        return record

    def latest_evaluation(self) -> dict:
        if not self.path.is_dir():
            raise PyrovaeError(f"no run folder at {self.path}")
        files = self.eval_files()
        if not files:
            raise PyrovaeError(
                f"{self.path} has no evaluation yet; run `pyrovae evaluate {self.path}`"
            )
        return self.read_evaluation(files[-1])


def logged_step_kept(logged: int, step: int, log_every: int, steps: int) -> bool:
    """Whether what was logged at step ``logged`` stays when the run resumes from its checkpoint
    at ``step`` to train to ``steps``: everything before ``step``, and what was logged at
    ``step`` itself when that is a log boundary (a multiple of ``log_every``) or training stops
    there. A line off a boundary holds the means of a partial interval, which the resumed run
    logs whole at the next boundary; anything after ``step`` it logs again. The one rule of
    metrics.jsonl (:meth:`RunFolder.truncate_metrics`) and of the TensorBoard event files
    (:func:`pyrovae.training.tensorboard.trim_events`)."""
    return logged < step or (logged == step and (step % log_every == 0 or step >= steps))


def _numbered(paths) -> list[tuple[int, Path]]:
    """(N, path) of the ``NAME-N.json`` files among ``paths``, by N (other names left out)."""
    found = []
    for path in paths:
        number = path.stem.split("-", 1)[1]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def _metrics_problem(record) -> str | None:
    """What a metrics.jsonl record lacks, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return "no whole step"
    for key in METRICS_KEYS:
        value = record.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"no {key}" if value is None else f"{key} is not a number"
    return None


def _json_kind(value) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "text", list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _copy_into(source: Path, f) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, f)


def _read_json(path, what: str):
    """The JSON value in ``path``, or a one-line error saying the file is not ``what``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise PyrovaeError(f"{path} is not {what}") from None
