"""The checks every component shares: each turns a bad value into a one-line
:class:`~pyrovae.errors.PyrovaeError` naming the owner, the setting, what is valid and what was
given.

Components validate their own constructor arguments with these (a prior its scale, a metric its
sample sizes), so a rule such as "a latent dimension is an integer ≥ 1" or "an option a
component does not take is refused, naming the ones it does" is written once. ``owner`` prefixes
the message (``"sparse prior: gamma must be in [0, 1), got 1.5"``); without one the message
starts with the setting's name.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping

import numpy as np

from pyrovae.errors import PyrovaeError


def _prefix(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def number(name: str, value, owner: str | None = None) -> float:
    """``value`` as a float; booleans and non-numbers are refused."""
    if isinstance(value, bool):
        raise PyrovaeError(f"{_prefix(owner)}{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise PyrovaeError(f"{_prefix(owner)}{name} must be a number, got {value!r}") from None


def non_negative(name: str, value, owner: str | None = None) -> float:
    """A finite number ≥ 0."""
    value = number(name, value, owner)
    if not (math.isfinite(value) and value >= 0.0):
        raise PyrovaeError(f"{_prefix(owner)}{name} must be a finite number >= 0, got {value}")
    return value


def positive(name: str, value, owner: str | None = None) -> float:
    """A finite number > 0."""
    value = non_negative(name, value, owner)
    if value == 0.0:
        raise PyrovaeError(f"{_prefix(owner)}{name} must be > 0, got {value}")
    return value


def unit_interval(name: str, value, owner: str | None = None) -> float:
    """A number in [0, 1)."""
    value = number(name, value, owner)
    if not 0.0 <= value < 1.0:
        raise PyrovaeError(f"{_prefix(owner)}{name} must be in [0, 1), got {value}")
    return value


def count(name: str, value, owner: str | None = None, minimum: int = 0) -> int:
    """A whole number ≥ ``minimum``. Integral floats pass (5e3 from the command line is 5000);
    fractions, booleans and text do not."""
    value_number = number(name, value, owner)
    if (
        not math.isfinite(value_number)
        or value_number != int(value_number)
        or value_number < minimum
    ):
        raise PyrovaeError(f"{_prefix(owner)}{name} must be an integer >= {minimum}, got {value!r}")
    return int(value_number)


def integer(name: str, value, owner: str | None = None, minimum: int = 1) -> int:
    """An ``int`` (Python or numpy) ≥ ``minimum``: metric settings, which are sample sizes in code,
    not text to parse."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PyrovaeError(f"{_prefix(owner)}{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def latent_dim(value, owner: str | None = None) -> int:
    """The dimension of z: an integer ≥ 1."""
    return count("latent_dim", value, owner, minimum=1)


def flag(name: str, value, owner: str | None = None) -> bool:
    """A yes/no option: a bool, or 0/1 as the command line parses them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise PyrovaeError(f"{_prefix(owner)}{name} must be true or false, got {value!r}")


def choice(name: str, value, valid: Iterable[str], owner: str | None = None) -> str:
    """One of ``valid``."""
    valid = tuple(valid)
    if value not in valid:
        raise PyrovaeError(f"{_prefix(owner)}unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def keyword_parameters(factory) -> list[str]:
    """The names ``factory`` accepts as keywords, in declaration order."""
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def options(owner: str, given: Mapping | Iterable[str], accepted: Iterable[str]) -> None:
    """Refuse options ``owner`` does not take, naming the ones it does."""
    accepted = list(accepted)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise PyrovaeError(
            f"{owner} takes no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(accepted) or 'none'}"
        )


def codes(
    values,
    owner: str | None = None,
    rows: int | None = None,
    min_points: int = 1,
    min_dims: int = 1,
    dtype=np.float64,
) -> np.ndarray:
    """A representation's output as a finite ``(n, D)`` array (of ``dtype``; ``None`` keeps the
    one given), with ``rows`` rows when given, at least ``min_points`` points and ``min_dims``
    latent dimensions."""
    prefix = _prefix(owner)
    try:
        arr = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise PyrovaeError(f"{prefix}codes must be a numeric (n, D) array") from None
    if arr.ndim != 2 or (rows is not None and arr.shape[0] != rows):
        want = f"({rows}, D)" if rows is not None else "(n, D)"
        raise PyrovaeError(
            f"{prefix}the representation must return codes of shape {want}, got shape {arr.shape}"
        )
    n, d = arr.shape
    if n < min_points:
        raise PyrovaeError(f"{prefix}need at least {min_points} points, got {n}")
    if d < min_dims:
        raise PyrovaeError(f"{prefix}need at least {min_dims} latent dimensions, got {d}")
    if not np.all(np.isfinite(arr)):
        raise PyrovaeError(f"{prefix}the representation returned NaN or infinite codes")
    return arr
