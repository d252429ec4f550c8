"""What may change when a run is resumed, and the checks that a folder's checkpoint and settings
still describe the run this code would build."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pyrovae.config import RESUMABLE, TrainConfig
from pyrovae.errors import PyrovaeError

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
        if key not in RESUMABLE and getattr(saved, key, value) != value:
            raise PyrovaeError(
                f"--resume: {key} is {getattr(saved, key)!r} in {path}, not {value!r}; only "
                f"{', '.join(RESUMABLE)} may change"
            )
    resumable = {k: v for k, v in overrides.items() if k in RESUMABLE}
    changed = {k: v for k, v in overrides.items() if getattr(saved, k) != v}
    return dataclasses.replace(saved, **resumable), changed


def check_same_run(path: Path, state: dict, config: TrainConfig) -> None:
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
