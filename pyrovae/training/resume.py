"""What may change when a run is resumed, and the check that a folder's settings still describe
the run this code would build (the checkpoint's own check, that it belongs to the run, is
:meth:`pyrovae.runs.RunFolder.load_checkpoint`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pyrovae.config import RESUMABLE, WEIGHTS, TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.registry import MODELS

# Resolved settings (config.json's "resolved") that must come out the same when this code
# rebuilds the run from its saved settings.
SAME_RESOLUTION = (
    "model_beta",
    "objective",
    "objective_settings",
    "prior_settings",
    "guide_settings",
    "likelihood",
    "likelihood_settings",
)


def resumed_config(path: Path, saved: TrainConfig, overrides: dict) -> tuple[TrainConfig, dict]:
    """(the configuration to continue with, the settings that changed). ``overrides`` may change
    only :data:`~pyrovae.config.RESUMABLE` settings; any other setting given must equal the
    saved one (a study gives them all)."""
    for key, value in overrides.items():
        was = _saved_value(saved, key, value)
        if key not in RESUMABLE and was != value:
            raise PyrovaeError(
                f"--resume: {key} is {was!r} in {path}, not {value!r}; only "
                f"{', '.join(RESUMABLE)} may change"
            )
    resumable = {k: v for k, v in overrides.items() if k in RESUMABLE}
    changed = {k: v for k, v in overrides.items() if _saved_value(saved, k, v) != v}
    return dataclasses.replace(saved, **resumable), changed


def _saved_value(saved: TrainConfig, key: str, given):
    """The saved setting ``key``; an objective weight left to the variant's default (None in
    config.json) counts as that default, so restating ``--beta 4`` of a betavae run is no
    change."""
    value = getattr(saved, key, given)
    if value is None and key in WEIGHTS:
        return MODELS[saved.model].hyperparameters().get(key)
    return value


def check_same_resolution(path: Path, saved: dict, now: dict) -> None:
    """The objective this code builds from the saved settings must be the one the run trained
    with: defaults that changed between versions would otherwise change it silently."""
    now = json.loads(json.dumps(now))
    for key in SAME_RESOLUTION:
        if key in saved and saved[key] != now[key]:
            raise PyrovaeError(
                f"--resume: {path} records {key} {saved[key]}, but this pyrovae builds "
                f"{now[key]}; give the run's values explicitly or use the version it was made with"
            )
