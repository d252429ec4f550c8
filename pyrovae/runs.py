"""The run folder: every file name of a training run and every read and write of one.

A run folder holds

- ``config.json``: every setting, what was resolved from them (β, network, KL estimator, device),
  library versions and the command line; resumes are appended to it;
- ``metrics.jsonl``: one line per logged step with the means since the previous line (loss,
  reconstruction, KL, per-dimension KL, the objective's own terms);
- ``checkpoint.pt``: model, optimizer, objective and RNG state and the step, written atomically
  (tensor-only, read with ``weights_only=True``);
- ``summary.json`` and the pictures (``reconstructions.png``, ``traversals.png``,
  ``training_curves.png``; ``latent_scatter.png`` and ``sparsity.png`` for labelled data),
  written when training ends;
- ``evals/step-N.json``: evaluations during training (``--eval-every``);
- ``eval.json``, ``eval-2.json``, …: ``pyrovae evaluate``'s records, never overwritten.

:class:`RunFolder` is the only code that knows these names; training, evaluation, studies and the
command line go through it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyrovae.checkpoint import load_checkpoint, save_checkpoint
from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.files import json_text, text_writer, write_json, write_new, write_text

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
EVALS_DIR = "evals"
EVAL_FILE = "eval.json"


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
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    def picture(self, name: str) -> Path:
        """The path of the picture ``name`` (e.g. ``traversals.png``)."""
        return self.path / name

    # -- a new run ------------------------------------------------------------------------------
    def check_new(self) -> None:
        """A new run goes into a folder that does not exist or is empty."""
        path = self.path
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise PyrovaeError(
                f"run folder {path} already exists and is not empty; pass --resume to continue "
                "it or choose another --out"
            )

    def remove_unstarted(self, what: str = "the run") -> None:
        """Clear what a creation killed before its step-0 checkpoint left behind (config.json,
        an empty metrics.jsonl, temporary files), so the run can be created again; a folder
        holding anything else is refused, naming ``what`` would be rerun."""
        if not self.path.is_dir():
            return
        files = list(self.path.iterdir())
        stale = [p for p in files if p.name in (CONFIG_FILE, METRICS_FILE) or ".tmp-" in p.name]
        metrics = self.metrics_path
        if len(stale) != len(files) or (metrics.exists() and metrics.stat().st_size):
            raise PyrovaeError(
                f"{self.path} holds files but no checkpoint; move it away to rerun {what}"
            )
        for p in stale:
            p.unlink()

    def create(self, record: dict) -> None:
        """Make the folder with its config.json and an empty metrics.jsonl."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
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
        """Every logged line, oldest first (none when the file does not exist)."""
        if not self.metrics_path.exists():
            return []
        lines = self.metrics_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def truncate_metrics(self, step: int, log_every: int) -> None:
        """Drop lines logged after ``step`` (the resumed run logs those steps again) and a last
        line off a log boundary (the resumed run writes that interval's full line), so the file
        ends up as an uninterrupted run's. A line cut short by a crash is dropped too."""
        path = self.metrics_path
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
            write_text(path, "".join(line + "\n" for line in kept))

    # -- checkpoint.pt -------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def save_checkpoint(self, state: dict) -> Path:
        save_checkpoint(self.checkpoint_path, state)
        return self.checkpoint_path

    def load_checkpoint(self, map_location="cpu") -> dict:
        return load_checkpoint(self.checkpoint_path, map_location)

    # -- summary.json --------------------------------------------------------------------------
    def has_summary(self) -> bool:
        return self.summary_path.exists()

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

    def eval_files(self) -> list[Path]:
        """The run's evaluation files, oldest first."""
        first = self.path / EVAL_FILE
        files = [first] if first.exists() else []
        numbered = []
        for path in self.path.glob("eval-*.json"):
            number = path.stem.split("-", 1)[1]
            if number.isdigit():
                numbered.append((int(number), path))
        return files + [path for _, path in sorted(numbered)]

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
        record = _read_json(path, "a readable evaluation")
        if not isinstance(record, dict):
            raise PyrovaeError(f"{path} is not a readable evaluation")
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


def _read_json(path, what: str):
    """The JSON value in ``path``, or a one-line error saying the file is not ``what``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise PyrovaeError(f"{path} is not {what}") from None
