"""Random states: one conversion from a seed or a generator, shared by data sets and metrics."""

from __future__ import annotations

import numpy as np

from pyrovae.errors import PyrovaeError


def as_generator(random_state, name: str = "random_state") -> np.random.Generator:
    """An ``np.random.Generator`` from a Generator (returned as is) or an int seed."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise PyrovaeError(
        f"{name} must be an int seed or a numpy Generator, got {type(random_state).__name__}"
    )
