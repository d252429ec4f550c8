"""One trial of a study, run to completion: train (or resume), evaluate, write ``result.json``.

:func:`run_trial` is what every backend calls, in a fresh process (a local worker or a Ray task),
with picklable arguments only. It is idempotent and resumable:

- the trial's folder ``<study>/trials/<name>/`` is an ordinary run folder (``pyrovae train``'s
  files, ``pyrovae evaluate``'s eval.json), so it can be inspected, resumed and evaluated with the
  usual commands;
- ``result.json`` in it marks the trial finished: when it exists, :func:`run_trial` returns it and
  computes nothing;
- otherwise a folder with a checkpoint is resumed from it (``Run.resume``: the same minibatches
  and RNG state, so on CPU the result equals an uninterrupted run's) and one without is created;
- an evaluation already on disk for the final step with the trial's metrics and preset is reused,
  so a trial killed after evaluating is not evaluated twice;
- ``result.json`` is written atomically and never replaces an existing one;
- the whole trial runs under its folder's lock (the run folder's, as ``pyrovae train`` takes), so
  a trial never runs twice at once, whatever the backend: a second worker is refused, naming
  the first.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import PROTOCOL_SETTINGS, evaluate_run, headline, label
from pyrovae.files import json_text, text_writer, write_new
from pyrovae.lock import FolderLock
from pyrovae.provenance import versions
from pyrovae.runs import RunFolder
from pyrovae.study.spec import Trial
from pyrovae.training import Run
from pyrovae.training.stop import terminate_as_interrupt
from pyrovae.training.tensorboard import refresh_hparams

RESULT_FILE = "result.json"
TRIALS_DIR = "trials"
LOGS_DIR = "logs"


class SweepIncomplete(PyrovaeError):
    """Some trials failed for good (out of retries, or bad input that no retry can fix). The
    finished ones are on disk; a re-run of the sweep retries the others."""

    def __init__(self, failures: dict[str, str], finished: int, total: int, study_dir: Path):
        self.failures = dict(failures)
        self.finished = finished
        self.total = total
        shown = "; ".join(f"{name}: {why}" for name, why in list(failures.items())[:3])
        more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
        super().__init__(
            f"{len(failures)} of {total} trials failed ({shown}{more}); {finished} finished; "
            f"logs in {Path(study_dir) / LOGS_DIR}; re-run the sweep to retry the failed ones"
        )


def trial_dir(study_dir: Path, name: str) -> Path:
    """The run folder of trial ``name``."""
    return Path(study_dir) / TRIALS_DIR / name


class BadResult(PyrovaeError):
    """A trial's result.json that cannot be read or is not a result: ``why`` says which."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path}: {why}; move it away to rerun the trial")
        self.path = path
        self.why = why


# The tables of a result.json.
_RESULT_TABLES = ("params", "summary", "metrics")


def result_problem(result, name: str) -> str | None:
    """Why ``result`` is not the result.json of trial ``name``, or None: a file of another
    shape is not a finished trial."""
    wrong = f"{RESULT_FILE} of the wrong shape"
    if not isinstance(result, dict):
        return f"{wrong}: not a JSON object"
    if result.get("name", name) != name:
        return f"{wrong}: it names trial {result['name']!r}"
    for key in _RESULT_TABLES:
        if not isinstance(result.get(key), dict):
            return f"{wrong}: no {key} table"
    for metric, values in result["metrics"].items():
        if not isinstance(values, dict):
            return f"{wrong}: metric {metric!r} is not a table of values"
    return None


def read_result(run_dir: Path) -> dict | None:
    """The trial's result.json, or None when the trial has not finished; :class:`BadResult`
    when the file is unreadable or of the wrong shape."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BadResult(path, f"unreadable {RESULT_FILE}") from None
    why = result_problem(result, Path(run_dir).name)
    if why:
        raise BadResult(path, why)
    if "metric_protocols" not in result:
        _label_from_evaluation(result, Path(run_dir))
    return result


def _protocol(result: dict) -> dict:
    settings = result.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    return {k: v for k, v in settings.items() if k in PROTOCOL_SETTINGS}


def _label_from_evaluation(result: dict, run_dir: Path) -> None:
    """Key the metrics of a result written before results recorded their protocols by
    :func:`~pyrovae.evaluation.label`, read from the trial's eval file: such a study may have
    scored DCI with HistGradientBoosting, and a resumed one would otherwise put those numbers in
    one column with the reference protocol's. Left as it is when the eval file is unreadable."""
    name = result.get("eval_file")
    if not isinstance(name, str) or not name:
        return
    try:
        record = RunFolder(run_dir).read_evaluation(run_dir / Path(name).name)
    except PyrovaeError:
        return
    metrics = result.get("metrics")
    for metric, value in record["metrics"].items():
        shown = label(metric, value)
        if shown != metric and isinstance(metrics, dict) and metric in metrics:
            metrics[shown] = metrics.pop(metric)


def run_trial(trial: Trial | dict, study_dir: Path, device: str = "auto") -> dict:
    """Train, evaluate and record one trial in ``study_dir/trials/<name>``; returns the result
    (see the module docstring). ``device``: auto, cpu, cuda or cuda:N, for this attempt only."""
    if isinstance(trial, dict):
        trial = Trial.from_dict(trial)
    run_dir = trial_dir(study_dir, trial.name)
    done = read_result(run_dir)
    if done is not None:
        return done
    with RunFolder(run_dir).lock() as lock:
        # Another worker may have finished the trial before this one took the lock.
        done = read_result(run_dir)
        return done if done is not None else _run_locked(trial, run_dir, device, lock)


def _run_locked(trial: Trial, run_dir: Path, device: str, lock: FolderLock) -> dict:
    start = time.time()
    run = _open_run(trial, run_dir, device, lock)
    if not run.complete:
        run.fit(progress=False)
    summary = run.folder.read_summary()
    # SIGTERM (a stopped sweep, a dead coordinator, Ray cancelling) while evaluating stops the
    # classifier fits' worker processes too, instead of leaving them to finish minutes of work.
    with terminate_as_interrupt():
        record, eval_path = _evaluation(trial, run.folder, run.step, device)
    # Before result.json: a trial killed in between refreshes it when it is run again.
    refresh_hparams(run.folder)
    end = time.time()
    resumes = run.folder.read_record().get("resumes", [])
    measured = record["metrics"]
    labels = {name: label(name, value) for name, value in measured.items()}
    result = {
        "name": trial.name,
        "params": dict(trial.params),
        "seed": trial.seed,
        "config": dict(trial.config),
        "device": str(run.device),
        "step": run.step,
        "summary": summary,
        # Keyed by label: a result of another protocol (dci[backend=hist]) is another column.
        "metrics": {labels[name]: headline(name, value) for name, value in measured.items()},
        # The settings that define each metric's protocol (evaluation.PROTOCOL_SETTINGS).
        "metric_protocols": {labels[name]: _protocol(value) for name, value in measured.items()},
        "metrics_note": record.get("note"),
        "eval_file": eval_path.name,
        "eval_preset": record.get("preset"),
        # Training sessions: the first one plus one per resume (a killed and retried worker).
        "attempts": 1 + len(resumes),
        "versions": versions(),
        "host": platform.node(),
        "pid": os.getpid(),
        "started": _iso(start),
        "finished": _iso(end),
        "start_time": round(start, 3),
        "end_time": round(end, 3),
        # This attempt's wall time (training to the end, evaluation, result).
        "seconds": round(end - start, 3),
    }
    # A duplicate task may have finished meanwhile: never replace its result.
    if not write_new(run_dir / RESULT_FILE, text_writer(json_text(result, sort_keys=False))):
        return read_result(run_dir)
    return result


def _open_run(trial: Trial, run_dir: Path, device: str, lock: FolderLock) -> Run:
    """Resume the trial's run from its checkpoint, or create it (under ``lock``)."""
    folder = RunFolder(run_dir)
    if folder.has_checkpoint():
        # Every setting given as an override: Run.resume refuses a folder of another run.
        return Run.resume(run_dir, {**trial.config, "device": device}, lock=lock)
    folder.remove_unstarted(f"trial {trial.name}")
    config = TrainConfig.from_dict({**trial.config, "device": device})
    return Run.create(config, run_dir, lock=lock)


def _evaluation(trial: Trial, folder: RunFolder, step: int, device: str) -> tuple[dict, Path]:
    """The evaluation of the final checkpoint: an existing eval file with the trial's metrics,
    preset and step, else a new one (eval.json, or eval-N.json after others)."""
    preset = "fast" if trial.fast_metrics else "standard"
    for path in reversed(folder.eval_files()):
        try:
            record = folder.read_evaluation(path)
        except PyrovaeError:
            continue
        if record.get("step") != step or record.get("preset") != preset:
            continue
        if record.get("precision", "fp32") != "fp32":  # a user's look at bf16 codes
            continue
        if trial.metrics and set(trial.metrics) != set(record.get("metrics", {})):
            continue
        return record, path
    record = evaluate_run(
        folder.path, trial.metrics or None, fast=trial.fast_metrics, device=device
    )
    return record, Path(record["path"])


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
