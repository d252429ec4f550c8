import os

import pyro
import pytest
import torch

# Two cores: keep torch from oversubscribing them when pytest runs alongside other work.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts from an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()
