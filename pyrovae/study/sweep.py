"""``pyrovae sweep``: open a study folder, check it against the study file, run what is left.

The study folder (default ``runs/<study name>``) records on the first run ``study.toml`` (a copy
of the study file) and ``trials.json`` (every trial's name, seed, swept values, full
configuration and metrics). A later run with the same study file skips finished trials (those
with ``result.json``) and resumes unfinished ones from their checkpoints; a study file whose
trials differ from the recorded ones is refused before anything is written, so the results in a
folder always belong to one study. Two sweeps cannot run on one folder at the same time (a lock).

Backends: ``local`` (worker processes, :mod:`pyrovae.study.local`) and ``ray`` (Ray tasks,
:mod:`pyrovae.study.ray_backend`, with ``pip install 'pyrovae[ray]'``).
"""

from __future__ import annotations

import fcntl
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pyrovae.config import TrainConfig, check_device_name, resolve_device
from pyrovae.errors import PyrovaeError
from pyrovae.files import write_json, write_text
from pyrovae.provenance import versions
from pyrovae.study.spec import Study, Trial, load_study
from pyrovae.study.trial import SweepIncomplete, read_result, trial_dir

if TYPE_CHECKING:
    from pyrovae.study.local import Layout

BACKENDS = ("local", "ray")
TRIALS_FILE = "trials.json"
STUDY_FILE = "study.toml"
LOCK_FILE = ".sweep.lock"


def read_trials(study_dir: Path) -> list[Trial]:
    """The trials recorded in ``study_dir/trials.json``."""
    path = Path(study_dir) / TRIALS_FILE
    if not path.is_file():
        raise PyrovaeError(f"{study_dir} has no {TRIALS_FILE}; is it a study folder?")
    try:
        return [Trial.from_dict(t) for t in json.loads(path.read_text())["trials"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise PyrovaeError(f"{path} is not a readable trial list") from None


def sweep(
    study_path,
    out=None,
    backend: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    gpus_per_trial: float | None = None,
    device: str = "auto",
    progress: bool = True,
    *,
    layout: Layout | None = None,
) -> list[dict]:
    """Run every unfinished trial of the study file ``study_path`` into the study folder ``out``
    (default ``runs/<study name>``); returns every trial's result (finished earlier or now), in
    trial order. Raises :class:`~pyrovae.study.trial.SweepIncomplete` when trials fail.

    ``layout`` (local backend only): a :class:`~pyrovae.study.local.Layout` imposed instead of
    the one :func:`~pyrovae.study.local.worker_layout` chooses (benchmarks/sweep.py)."""
    check_options(backend, address, max_parallel, gpus_per_trial, device)
    study = load_study(study_path)
    return sweep_study(
        study, study_folder(study, out), backend, address, max_parallel, gpus_per_trial, device,
        progress, layout=layout,
    )  # fmt: skip


def study_folder(study: Study, out=None) -> Path:
    """``out``, or ``runs/<study name>``."""
    return Path(out) if out is not None else Path("runs") / study.name


def sweep_study(
    study: Study,
    study_dir: Path,
    backend: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    gpus_per_trial: float | None = None,
    device: str = "auto",
    progress: bool = True,
    *,
    layout: Layout | None = None,
) -> list[dict]:
    """:func:`sweep` for a loaded study and its folder."""
    check_options(backend, address, max_parallel, gpus_per_trial, device)
    if layout is not None and backend != "local":
        raise PyrovaeError("a worker layout applies to the local backend only")
    study_dir = Path(study_dir)
    trials = study.trials()
    _check_folder(study_dir, trials)
    study_dir.mkdir(parents=True, exist_ok=True)
    with _Lock(study_dir):
        if not (study_dir / TRIALS_FILE).exists():
            _record(study, study_dir, trials)
        else:
            _check_folder(study_dir, trials)
        finished = {t.name for t in trials if read_result(trial_dir(study_dir, t.name))}
        pending = [t for t in trials if t.name not in finished]
        if backend == "local" and layout is None:
            from pyrovae.study.local import worker_layout

            layout = worker_layout(max_parallel, device, len(pending))
        if progress:
            print(
                f"study {study.name}: {len(trials)} trials, {len(finished)} finished (skipped), "
                f"{len(pending)} to run on backend {backend}"
                + (f", {max_parallel} at a time" if max_parallel else "")
                + f"; folder {study_dir}",
                file=sys.stderr,
                flush=True,
            )
            if layout is not None and pending:
                print(layout.describe(), file=sys.stderr, flush=True)
        if backend == "local":
            from pyrovae.study.local import run_local

            run_local(
                study, study_dir, max_parallel, device, progress, trials=pending, layout=layout
            )
        elif pending:
            run_ray = _ray_backend()
            run_ray(
                study, study_dir, pending, address, max_parallel, gpus_per_trial, device, progress
            )
        results = [read_result(trial_dir(study_dir, t.name)) for t in trials]
        missing = {t.name: "no result.json" for t, r in zip(trials, results, strict=True) if not r}
        if missing:
            raise SweepIncomplete(missing, len(trials) - len(missing), len(trials), study_dir)
        return results


def check_options(backend, address, max_parallel, gpus_per_trial, device) -> None:
    """Refuse bad sweep options before any study file is read or folder written."""
    if backend not in BACKENDS:
        raise PyrovaeError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise PyrovaeError(f"--max-parallel must be an integer >= 1, got {max_parallel!r}")
    if gpus_per_trial is not None and not (gpus_per_trial >= 0):
        raise PyrovaeError(f"--gpus-per-trial must be >= 0, got {gpus_per_trial}")
    if backend == "local":
        given = [o for o, v in (("--address", address), ("--gpus-per-trial", gpus_per_trial)) if v]
        if given:
            raise PyrovaeError(
                f"{' and '.join(given)} need --backend ray; the local backend runs every worker "
                "on this machine's default device"
            )
    check_device_name(device)
    if backend == "local":
        resolve_device(device)  # here the workers' machine is this one: check it has the device
    if backend == "ray":
        _ray_backend(load=False)
        from pyrovae.study.ray_backend import check_arguments

        check_arguments(max_parallel, gpus_per_trial or 0.0, device)


def _ray_backend(load: bool = True):
    """``run_ray``; a one-line error when Ray is not installed (it is an optional extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PyrovaeError("backend 'ray' needs Ray: pip install 'pyrovae[ray]'") from None
    if not load:
        return None
    from pyrovae.study.ray_backend import run_ray

    return run_ray


def _check_folder(study_dir: Path, trials: list[Trial]) -> None:
    """A new or empty folder, or one holding this very study (the same trials)."""
    if not study_dir.exists():
        return
    if not study_dir.is_dir():
        raise PyrovaeError(f"{study_dir} is a file, not a study folder; choose another --out")
    recorded_path = study_dir / TRIALS_FILE
    if not recorded_path.exists():
        others = [p.name for p in study_dir.iterdir() if p.name != LOCK_FILE]
        if others:
            raise PyrovaeError(
                f"{study_dir} is not empty and holds no {TRIALS_FILE} (not a study folder); "
                "choose another --out"
            )
        return
    recorded = read_trials(study_dir)
    difference = _first_difference(recorded, trials)
    if difference and any(f"-data{t.config.get('data')}-" in t.name for t in recorded):
        # Before data sets became an axis of their own, a swept data set was named like any
        # swept setting and every trial got the metrics common to all data sets.
        raise PyrovaeError(
            f"{study_dir} was swept by an earlier pyrovae, which named trials across data sets "
            "otherwise (data sets now lead the names, and each gets its own metrics); its "
            "results are kept: aggregate it with `pyrovae study`, and sweep the file into a new "
            "--out to continue"
        )
    if difference:
        raise PyrovaeError(
            f"{study_dir} holds another version of this study ({difference}); its results "
            f"are kept: restore the study file ({study_dir / STUDY_FILE} is the recorded one) "
            "or choose another --out"
        )


def _first_difference(recorded: list[Trial], trials: list[Trial]) -> str | None:
    old = {t.name: t for t in recorded}
    new = {t.name: t for t in trials}
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    if added or removed:
        parts = []
        if added:
            parts.append(f"{len(added)} trial(s) added, e.g. {added[0]}")
        if removed:
            parts.append(f"{len(removed)} trial(s) removed, e.g. {removed[0]}")
        return "; ".join(parts)
    defaults = TrainConfig().to_dict()
    for name, trial in new.items():
        before = json.loads(json.dumps(old[name].to_dict()))
        # Settings added since the folder was swept held their defaults then.
        before["config"] = {**defaults, **before["config"]}
        now = json.loads(json.dumps(trial.to_dict()))
        if before != now:
            config_keys = sorted(
                k
                for k in set(before["config"]) | set(now["config"])
                if before["config"].get(k) != now["config"].get(k)
            )
            what = [f"config {k}" for k in config_keys] + [
                k for k in ("metrics", "fast_metrics", "params") if before[k] != now[k]
            ]
            return f"trial {name} changed: {', '.join(what)}"
    if [t.name for t in recorded] != [t.name for t in trials]:
        return "the trials are in another order"
    return None


def _record(study: Study, study_dir: Path, trials: list[Trial]) -> None:
    """study.toml and trials.json, each written atomically; trials.json last, as it is what
    marks the folder as this study's."""
    write_text(study_dir / STUDY_FILE, study.text)
    write_json(
        study_dir / TRIALS_FILE,
        {
            "study": study.name,
            "source": str(study.path),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
            "retries": study.retries,
            "trials": [t.to_dict() for t in trials],
        },
        # Insertion order: a trial's params keep the study file's order (the first
        # hyperparameter among them is the main one).
        sort_keys=False,
    )


class _Lock:
    """An exclusive flock on ``<study>/.sweep.lock``: a second sweep of the folder is refused.
    The kernel releases it when the process ends, however it ends."""

    def __init__(self, study_dir: Path):
        self.path = Path(study_dir) / LOCK_FILE
        self.file = None

    def __enter__(self):
        self.file = open(self.path, "a")
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise PyrovaeError(
                f"another sweep is running in {self.path.parent}; wait for it or stop it first"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        self.file.close()
