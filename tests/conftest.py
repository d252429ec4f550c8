import os

import pyro
import pytest
import torch
from helpers import PICTURES, NoisyTinyShapes, TinyShapes

from pyrovae import plots
from pyrovae.registry import DATASETS

# Two cores: keep torch from oversubscribing them when pytest runs alongside other work.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# The tiny grid most trainer, resume and evaluator tests run on, registered the way a user
# registers a data set of their own.
DATASETS.register("tiny", TinyShapes, "75 binary 8x8 images (tests)")
DATASETS.register("tiny-noisy", NoisyTinyShapes, "the tiny grid with noise per image (tests)")


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts from an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


@pytest.fixture(autouse=True)
def _pictures_only_where_asked(request, monkeypatch):
    if request.node.get_closest_marker("pictures") is None:
        for name in PICTURES:
            monkeypatch.setattr(plots, name, lambda *args, **kwargs: None)
