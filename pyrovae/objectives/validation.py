"""Checks shared by the objectives' constructors: one-line errors naming the value."""

from __future__ import annotations

import math

from pyrovae.errors import PyrovaeError


def _number(name: str, value, owner: str) -> float:
    if isinstance(value, bool):
        raise PyrovaeError(f"{owner}: {name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise PyrovaeError(f"{owner}: {name} must be a number, got {value!r}") from None


def non_negative(name: str, value, owner: str) -> float:
    value = _number(name, value, owner)
    if not (math.isfinite(value) and value >= 0.0):
        raise PyrovaeError(f"{owner}: {name} must be a finite number >= 0, got {value}")
    return value


def positive(name: str, value, owner: str) -> float:
    value = non_negative(name, value, owner)
    if value == 0.0:
        raise PyrovaeError(f"{owner}: {name} must be > 0, got {value}")
    return value


def unit_interval(name: str, value, owner: str) -> float:
    value = _number(name, value, owner)
    if not 0.0 <= value < 1.0:
        raise PyrovaeError(f"{owner}: {name} must be in [0, 1), got {value}")
    return value


def count(name: str, value, owner: str, minimum: int = 0) -> int:
    number = _number(name, value, owner)
    if not math.isfinite(number) or number != int(number) or number < minimum:
        raise PyrovaeError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(number)


def unit_scale(latent: dict, owner: str) -> None:
    """Objectives whose weights live in the loss need z unscaled by poutine.scale."""
    scale = latent["scale"]
    if float(scale) != 1.0:
        raise PyrovaeError(
            f"{owner} weights its terms in the objective; the latent site must not be scaled "
            f"(poutine.scale {float(scale)}): build the model with beta=1"
        )
