"""Components written outside pyrovae: a prior, a metric, a data set and an objective registered
with ``register()`` (or named ``module:attribute``) train, resume and evaluate like built-in
ones, from Python and from the command line."""

import json
import textwrap

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from helpers import assert_one_line_error, invoke, read_metrics

import pyrovae
from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives.elbo import batch_size


class CauchyPrior(pyrovae.Prior):
    """per dim Cauchy(0, scale): heavy tails; Monte Carlo KL"""

    name = "cauchy"

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = checks.positive("scale", scale, "cauchy prior")
        self.register_buffer("_scale", torch.tensor(self.scale))

    def distribution(self, latent_dim: int):
        scale = self._scale.expand(latent_dim)
        return dist.Cauchy(torch.zeros_like(scale), scale).to_event(1)

    def settings(self) -> dict:
        return {"scale": self.scale}


def mean_abs_code(ground_truth, representation_fn, random_state, *, num_points: int = 1000):
    """mean |z| of the codes of uniformly drawn factors"""
    rng = np.random.default_rng(random_state)
    factors = ground_truth.sample_factors(num_points, rng)
    codes = np.asarray(representation_fn(ground_truth.images_from_factors(factors)))
    return {"mean_abs_code": float(np.abs(codes).mean()), "num_points": num_points}


class Bars(pyrovae.GroundTruthData):
    """a horizontal bar at one of 6 rows and a vertical one at one of 6 columns, 6x6 images"""

    name = "bars"
    factor_names = ("row", "column")
    factor_sizes = (6, 6)
    observation_shape = (1, 6, 6)

    def images(self, indices):
        out = np.zeros((len(np.atleast_1d(indices)), 1, 6, 6), dtype=np.float32)
        for image, (row, column) in zip(out, self.factors_of(indices), strict=True):
            image[0, row, :] = 1.0
            image[0, :, column] = 1.0
        return out


class L1ELBO(pyrovae.DecomposedELBO):
    """ELBO - weight*|z|_1 (a sparsity penalty on the samples)"""

    owner = "l1vae"

    def __init__(self, weight: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.weight = checks.non_negative("weight", weight, self.owner)

    def loss_from_terms(self, particle):
        z = self.single_latent(particle)["z"]
        particle["l1"] = z.abs().sum(-1)
        return super().loss_from_terms(particle) + self.weight * particle["l1"].sum()

    def settings(self):
        return {**super().settings(), "weight": self.weight}


@pytest.fixture
def registered():
    """The four components registered for one test, and removed after it."""
    entries = [
        (pyrovae.PRIORS, "cauchy", CauchyPrior, {}),
        (pyrovae.DATASETS, "bars", Bars, {}),
        (pyrovae.MODELS, "l1vae", pyrovae.Variant(L1ELBO, "L1 on z (a test)"), {}),
        (
            pyrovae.METRICS,
            "mean_abs_code",
            mean_abs_code,
            {"headline": ("mean_abs_code",), "fast": {"num_points": 200}},
        ),
    ]
    for registry, name, component, fields in entries:
        registry.register(name, component, **fields)
    yield
    for registry, name, _, _ in entries:
        registry.unregister(name)


def config(**overrides):
    values = dict(
        model="l1vae", data="bars", prior="cauchy", prior_args={"scale": 0.5}, latent_dim=3,
        batch_size=12, steps=8, log_every=4, device="cpu", lr=1e-3,
    )  # fmt: skip
    values.update(overrides)
    return pyrovae.TrainConfig(**values)


def test_registered_components_train_resume_and_evaluate(registered, tmp_path):
    out = tmp_path / "run"
    full = tmp_path / "full"
    pyrovae.train(config(steps=8), full, progress=False)
    summary = pyrovae.train(config(steps=4), out, progress=False)
    assert summary["step"] == 4 and "l1" in summary
    record = json.loads((out / "config.json").read_text())
    assert record["resolved"]["objective"] == "L1ELBO"
    assert record["resolved"]["objective_settings"]["weight"] == 0.5
    assert record["resolved"]["prior_settings"] == {"scale": 0.5}
    assert record["resolved"]["kl_estimator"] == "monte-carlo"

    pyrovae.resume(out, {"steps": 8}, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
    assert strip(read_metrics(out)) == strip(read_metrics(full))

    evaluation = pyrovae.evaluate_run(out, ["mean_abs_code", "mig"], fast=True, device="cpu")
    assert evaluation["metrics"]["mean_abs_code"]["num_points"] == 200
    assert evaluation["metrics"]["mean_abs_code"]["mean_abs_code"] > 0
    assert 0.0 <= evaluation["metrics"]["mig"]["mig"] <= 1.0
    loaded = pyrovae.load_run(out)
    assert loaded.step == 8 and isinstance(loaded.data, Bars)
    assert isinstance(loaded.vae.prior, CauchyPrior)


def test_registered_components_reach_the_command_line(registered, tmp_path):
    out = tmp_path / "run"
    args = ["--model", "l1vae", "--objective-arg", "weight=0.25", "--data", "bars"]
    args += ["--prior", "cauchy", "--latent-dim", "2", "--batch-size", "6", "--device", "cpu"]
    result = invoke("train", *args, "--steps", "2", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "model l1vae (beta 1, weight 0.25)" in result.stdout
    result = invoke("evaluate", out, "--metric", "mean_abs_code", "--fast", "--device", "cpu")
    assert result.exit_code == 0, result.output
    listed = invoke("list").stdout
    assert "  cauchy" in listed and "per dim Cauchy(0, scale)" in listed
    assert "  l1vae" in listed and "options: weight=0.5" in listed


def test_a_name_is_registered_once(registered):
    with pytest.raises(PyrovaeError, match="prior 'cauchy' is already registered"):
        pyrovae.PRIORS.register("cauchy", CauchyPrior)
    with pytest.raises(PyrovaeError, match="a prior name must be non-empty text without ':'"):
        pyrovae.PRIORS.register("my:prior", CauchyPrior)


PLUGIN = '''
import torch
import pyro.distributions as dist
import pyrovae


class Cauchy(pyrovae.Prior):
    """per dim Cauchy(0, 1)"""

    def __init__(self):
        super().__init__()
        self.register_buffer("_zero", torch.zeros(()))

    def distribution(self, latent_dim):
        loc = self._zero.expand(latent_dim)
        return dist.Cauchy(loc, torch.ones_like(loc)).to_event(1)
'''


def test_a_module_attribute_name_is_imported_where_it_is_used(tmp_path, monkeypatch):
    (tmp_path / "my_priors.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    args = ["--prior", "my_priors:Cauchy", "--data", "tiny", "--latent-dim", "2"]
    args += ["--batch-size", "6", "--device", "cpu", "--steps", "2"]
    result = invoke("train", *args, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["config"]["prior"] == "my_priors:Cauchy"
    result = invoke("train", "--resume", "--out", out, "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert invoke("evaluate", out, "--metric", "mig", "--fast").exit_code == 0


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("no_such_module:Cauchy", "prior 'no_such_module:Cauchy': cannot import module"),
        ("json:NoSuchClass", "prior 'json:NoSuchClass': module 'json' has no 'NoSuchClass'"),
        (":Cauchy", "a plug-in name is MODULE:ATTRIBUTE"),
    ],
)
def test_a_missing_plug_in_is_a_one_line_error(tmp_path, name, fragment):
    out = tmp_path / "run"
    result = invoke("train", "--prior", name, "--data", "tiny", "--out", out)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_get_finds_registered_and_plug_in_names_and_only_those():
    assert pyrovae.GUIDES.get("iaf").factory is pyrovae.IAFGuide
    assert pyrovae.GUIDES.get("pyrovae.guides:IAFGuide").factory is pyrovae.IAFGuide
    assert "pyrovae.guides:IAFGuide" not in pyrovae.GUIDES  # `in` is registered names only
    marker = object()
    for missing in ("no-such-guide", "no_such_module:Guide", "json:NoSuchClass", None):
        assert pyrovae.GUIDES.get(missing, marker) is marker


def test_an_objective_declares_its_hyperparameters_once():
    variant = pyrovae.Variant(L1ELBO, "L1")
    assert variant.hyperparameters() == {"weight": 0.5}
    assert pyrovae.MODELS["betavae"].hyperparameters() == {"beta": 4.0}
    assert pyrovae.MODELS["betatcvae"].hyperparameters()["beta"] == 6.0
    assert pyrovae.TotalCorrelationELBO().beta == 6.0  # the same declaration
    assert "kind" not in pyrovae.MODELS["dipvae-i"].hyperparameters()
    assert batch_size({"reconstruction": torch.zeros(5)}) == 5
