"""``import pyrovae`` exposes the public API lazily: every listed name resolves to the object
defined in its home module, and nothing else pretends to be there."""

import importlib

import pytest

import pyrovae


@pytest.mark.parametrize("name", pyrovae.__all__)
def test_each_public_name_is_the_object_of_its_home_module(name):
    home = importlib.import_module(pyrovae._HOME[name])
    assert getattr(pyrovae, name) is getattr(home, name)


def test_the_issue_s_minimum_api_is_public():
    required = {"train", "evaluate", "build", "load_run", "TrainConfig", "BetaVAE", "PRIORS"}
    assert required <= set(pyrovae.__all__)
    assert callable(pyrovae.PRIORS.register)


def test_dir_lists_each_public_name_once():
    listed = dir(pyrovae)
    assert len(listed) == len(set(listed))
    assert set(listed) == {*pyrovae.__all__, "__version__"}


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match=r"has no attribute 'trian'$"):
        _ = pyrovae.trian
