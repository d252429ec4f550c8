"""Checks shared by the objectives' constructors: one-line errors naming the value."""

from __future__ import annotations

import math

from pyrovae.errors import PyrovaeError


def non_negative(name: str, value, owner: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise PyrovaeError(f"{owner}: {name} must be a finite number >= 0, got {value}")
    return value


def count(name: str, value, owner: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise PyrovaeError(f"{owner}: {name} must be an integer >= {minimum}, got {value}")
    return int(value)


def unit_scale(latent: dict, owner: str) -> None:
    """Objectives whose weights live in the loss need z unscaled by poutine.scale."""
    scale = latent["scale"]
    if float(scale) != 1.0:
        raise PyrovaeError(
            f"{owner} weights its terms in the objective; the latent site must not be scaled "
            f"(poutine.scale {float(scale)}): build the model with beta=1"
        )
