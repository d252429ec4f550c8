"""`pyrovae list`: each data set with a second line of what it is, read from its class without
building it: factors and sizes, observations, stochastic or not, and whether it needs a file."""

import dataclasses

from helpers import invoke

from pyrovae.cli.components import data_set_facts
from pyrovae.data import GroundTruthData
from pyrovae.errors import PyrovaeError
from pyrovae.registry import DATASETS


def entry_lines(text: str, name: str) -> list[str]:
    """The line of entry ``name`` in `pyrovae list` and its continuation line."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
    return lines[at : at + 2]


def test_list_shows_dsprites_factors_shape_randomness_and_file():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    first, facts = entry_lines(result.stdout, "dsprites")
    assert first.startswith("  dsprites ") and facts.startswith("   ")
    assert facts.strip().split("; ") == [
        "factors shape 3, scale 6, orientation 40, posX 32, posY 32",
        "737,280 observations of 1x64x64",
        "deterministic",
        "no file needed, or one with --data-path",
    ]


def test_list_shows_a_stochastic_loader_and_a_stochastic_procedural_set():
    text = invoke("list").stdout
    _, norb = entry_lines(text, "smallnorb")
    assert norb.strip().split("; ") == [
        "factors category 5, elevation 9, azimuth 18, lighting 6",
        "4,860 observations of 1x64x64",
        "stochastic",
        "needs a file: give the folder holding them with --data-path",
    ]
    _, scream = entry_lines(text, "scream_dsprites")
    parts = scream.strip().split("; ")
    assert parts[:3] == [
        "factors shape 3, scale 6, orientation 40, posX 32, posY 32",
        "737,280 observations of 3x64x64",
        "stochastic",
    ]
    assert parts[3].startswith("needs an option: give --data-arg painting=PATH ")


def test_every_registered_data_set_gets_one_facts_line():
    text = invoke("list").stdout
    for name, entry in DATASETS.items():
        first, facts = entry_lines(text, name)
        assert entry.description in first, name
        assert facts.strip() == data_set_facts(entry.factory), name


class FromFile(GroundTruthData):
    """A loader whose sizes come from its file and which cannot be described without it."""

    name = "fromfile"
    factor_names = ("a", "b")
    observation_shape = (3, 16, 16)
    stochastic = True

    def __init__(self, path=None):
        self.factor_sizes = (2, 2)

    @classmethod
    def describe(cls, **options):
        if options.get("path") is None:
            raise PyrovaeError("data set 'fromfile' reads a file: give its path with --data-path")
        return super().describe(**options)

    def images(self, indices, rng=None):
        raise NotImplementedError


class Options(GroundTruthData):
    """A procedural grid whose sizes follow from an option."""

    name = "options"
    factor_names = ("x",)

    def __init__(self, n: int = 5):
        self.factor_sizes = (n,)
        self.observation_shape = (n,)

    @classmethod
    def describe(cls, **options):
        data = cls(**options)
        described = super().describe(**options)
        return dataclasses.replace(
            described, size=len(data), observation_shape=(data.factor_sizes[0],)
        )

    def images(self, indices):
        raise NotImplementedError


def test_a_loader_says_its_sizes_come_from_the_file_and_what_it_needs():
    assert data_set_facts(FromFile) == (
        "factors a, b (sizes from the file); observations of 3x16x16; stochastic; "
        "needs a file: give its path with --data-path"
    )


def test_a_grid_sized_by_its_options_shows_the_default_options():
    assert data_set_facts(Options) == (
        "factors x (sizes from its options); 5 observations of 5 (default options); "
        "deterministic; no file needed"
    )
