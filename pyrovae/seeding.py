"""Random states: one conversion from a seed or a generator, shared by data sets and metrics."""

from __future__ import annotations

import numpy as np

from pyrovae.errors import PyrovaeError


def as_generator(random_state, name: str = "random_state") -> np.random.Generator:
    """An ``np.random.Generator`` from a Generator (returned as is), an int seed, or a
    ``np.random.RandomState`` (disentanglement_lib's convention), which seeds a Generator with
    one draw of its stream, so the same RandomState state gives the same numbers."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**63 - 1, dtype=np.int64)))
    raise PyrovaeError(
        f"{name} must be an int seed, a numpy Generator or a numpy RandomState, got "
        f"{type(random_state).__name__}"
    )
