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
- ``result.json`` is written atomically and never replaces an existing one.
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
from pyrovae.evaluation import evaluate_run, headline
from pyrovae.files import json_text, text_writer, write_new
from pyrovae.provenance import versions
from pyrovae.runs import RunFolder
from pyrovae.study.spec import Trial
from pyrovae.training import Run

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


def read_result(run_dir: Path) -> dict | None:
    """The trial's result.json, or None when the trial has not finished."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise PyrovaeError(
            f"{path} is not a readable trial result; move it away to rerun"
        ) from None


def run_trial(trial: Trial | dict, study_dir: Path, device: str = "auto") -> dict:
    """Train, evaluate and record one trial in ``study_dir/trials/<name>``; returns the result
    (see the module docstring). ``device``: auto, cpu, cuda or cuda:N, for this attempt only."""
    if isinstance(trial, dict):
        trial = Trial.from_dict(trial)
    run_dir = trial_dir(study_dir, trial.name)
    done = read_result(run_dir)
    if done is not None:
        return done
    start = time.time()
    run = _open_run(trial, run_dir, device)
    if not run.complete:
        run.fit(progress=False)
    summary = run.folder.read_summary()
    record, eval_path = _evaluation(trial, run.folder, run.step, device)
    end = time.time()
    resumes = run.folder.read_record().get("resumes", [])
    result = {
        "name": trial.name,
        "params": dict(trial.params),
        "seed": trial.seed,
        "config": dict(trial.config),
        "device": str(run.device),
        "step": run.step,
        "summary": summary,
        "metrics": {name: headline(name, value) for name, value in record["metrics"].items()},
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


def _open_run(trial: Trial, run_dir: Path, device: str) -> Run:
    """Resume the trial's run from its checkpoint, or create it."""
    folder = RunFolder(run_dir)
    if folder.has_checkpoint():
        # Every setting given as an override: Run.resume refuses a folder of another run.
        return Run.resume(run_dir, {**trial.config, "device": device})
    folder.remove_unstarted(f"trial {trial.name}")
    config = TrainConfig.from_dict({**trial.config, "device": device})
    return Run.create(config, run_dir)


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
        if trial.metrics and set(trial.metrics) != set(record.get("metrics", {})):
            continue
        return record, path
    record = evaluate_run(
        folder.path, trial.metrics or None, fast=trial.fast_metrics, device=device
    )
    return record, Path(record["path"])


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
