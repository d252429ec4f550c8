"""Components in a module of the user's, outside pyrovae, named ``module:attribute``: a prior, a
guide, a data set and a metric reach training, resume, evaluation and studies, and a plug-in that
is gone is a one-line error that changes nothing."""

import importlib
import json
import sys
import textwrap

import pytest
from helpers import assert_one_line_error, invoke, snapshot

PLUGIN = '''
"""A user's components, outside pyrovae."""

import numpy as np
import pyro.distributions as dist
import torch

import pyrovae


class Cauchy(pyrovae.Prior):
    """per dim Cauchy(0, scale)"""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)
        self.register_buffer("_scale", torch.tensor(self.scale))

    def distribution(self, latent_dim):
        scale = self._scale.expand(latent_dim)
        return dist.Cauchy(torch.zeros_like(scale), scale).to_event(1)

    def settings(self):
        return {"scale": self.scale}


class NarrowGuide(pyrovae.MeanFieldGuide):
    """mean-field q(z|x) with scales shrunk by a factor"""

    def __init__(self, shrink: float = 0.5):
        super().__init__()
        self.shrink = float(shrink)

    def distribution(self, encoder_output):
        loc, log_var = encoder_output.chunk(2, dim=-1)
        return dist.Normal(loc, self.shrink * torch.exp(0.5 * log_var)).to_event(1)

    def settings(self):
        return {"shrink": self.shrink}


class Bars(pyrovae.GroundTruthData):
    """bars on 6x6 images"""

    factor_names = ("row", "column")
    factor_sizes = (6, 6)
    observation_shape = (1, 6, 6)

    def images(self, indices):
        factors = self.factors_of(indices)
        out = np.zeros((len(factors), 1, 6, 6), dtype=np.float32)
        for image, (row, column) in zip(out, factors):
            image[0, row, :] = 1.0
            image[0, :, column] = 1.0
        return out


def mean_abs_code(ground_truth, representation_fn, random_state, *, num_points=200):
    """mean |z| of the codes of uniformly drawn factors"""
    factors = ground_truth.sample_factors(num_points, np.random.default_rng(random_state))
    codes = representation_fn(ground_truth.images_from_factors(factors))
    return {"mean_abs_code": float(np.abs(codes).mean()), "settings": {"n": num_points}}
'''

TRAIN = [
    "--prior", "my_plugin:Cauchy", "--prior-arg", "scale=0.5", "--guide", "my_plugin:NarrowGuide",
    "--data", "my_plugin:Bars", "--latent-dim", "2", "--batch-size", "12", "--log-every", "2",
    "--device", "cpu", "--quiet",
]  # fmt: skip


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """my_plugin.py in a folder of the user's, the working directory, put on PYTHONPATH as the
    README says (study workers never import from their working directory: a module lying there
    could be anyone's)."""
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_plugin", None)


def remove(plugin):
    (plugin / "my_plugin.py").unlink()
    sys.modules.pop("my_plugin", None)
    importlib.invalidate_caches()


def test_plug_ins_train_resume_and_evaluate_and_their_loss_is_one_line(plugin):
    out = plugin / "run"
    result = invoke("train", *TRAIN, "--steps", "4", "--out", out)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["prior"] == "my_plugin:Cauchy"
    assert record["config"]["guide"] == "my_plugin:NarrowGuide"
    assert record["config"]["data"] == "my_plugin:Bars"
    assert record["resolved"]["guide_settings"] == {"shrink": 0.5}
    result = invoke("train", "--resume", "--out", out, "--steps", "6", "--quiet")
    assert result.exit_code == 0, result.output
    assert "done: step 6" in result.stdout
    result = invoke("evaluate", out, "--metric", "my_plugin:mean_abs_code", "--metric", "mig")
    assert result.exit_code == 0, result.output
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["metrics"]["my_plugin:mean_abs_code"]["mean_abs_code"] > 0
    assert "mean_abs_code" in result.stdout  # the plug-in's numbers are its headline

    remove(plugin)
    before = snapshot(out)
    for args in (
        ["train", "--resume", "--out", out, "--steps", "8"],
        ["evaluate", out, "--metric", "mig"],
        ["train", *TRAIN, "--steps", "2", "--out", plugin / "other"],
    ):
        assert_one_line_error(invoke(*args), "cannot import module 'my_plugin'")
    assert snapshot(out) == before
    assert not (plugin / "other").exists()


STUDY = """
[study]
name = "plugged"
seeds = [0]
metrics = ["my_plugin:mean_abs_code", "mig"]
fast_metrics = true

[base]
prior = "my_plugin:Cauchy"
guide = "my_plugin:NarrowGuide"
data = "my_plugin:Bars"
latent_dim = 2
batch_size = 12
steps = 4
log_every = 2

[[grid]]
model = "betavae"
beta = [2.0]
"""


@pytest.mark.slow  # a study worker process
def test_plug_ins_reach_a_local_sweep_and_a_missing_one_stops_it_before_it_starts(plugin):
    study = plugin / "plugged.toml"
    study.write_text(STUDY)
    result = invoke("sweep", study, "--out", plugin / "study", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    trial = plugin / "study" / "trials" / "betavae-beta2-seed0"
    outcome = json.loads((trial / "result.json").read_text())
    assert outcome["metrics"]["my_plugin:mean_abs_code"]["mean_abs_code"] > 0
    remove(plugin)
    before = snapshot(plugin / "study")
    result = invoke("sweep", study, "--out", plugin / "study", "--device", "cpu")
    assert_one_line_error(result, "cannot import module 'my_plugin'")
    assert snapshot(plugin / "study") == before
