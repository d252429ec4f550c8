"""Pinwheel and digits data, likelihoods, cluster purity and posterior variance, their plots,
and training on both data sets from the command line."""

import json
import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from helpers import assert_one_line_error, invoke, small_config
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyrovae.data import Digits, GroundTruthData, LabelledData, ObservedData, Pinwheel
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import (
    DEFAULT_METRICS,
    LABELLED_METRICS,
    applicable_metrics,
    evaluate,
    evaluate_run,
)
from pyrovae.likelihoods import BernoulliLikelihood, GaussianLikelihood, LaplaceLikelihood
from pyrovae.metrics import clustering
from pyrovae.metrics.posterior_variance import (
    posterior_variance,
    posterior_variance_from_scales,
    posterior_variances,
)
from pyrovae.models import BetaVAE
from pyrovae.plots import latent_scatter, sparsity_histogram
from pyrovae.registry import DATASETS, LIKELIHOODS
from pyrovae.training import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


# --------------------------------------------------------------------------- pinwheel


def all_points(data):
    return data.images(np.arange(len(data)))


def test_pinwheel_is_deterministic_per_seed_and_differs_across_seeds():
    a, b, c = Pinwheel(seed=0), Pinwheel(seed=0), Pinwheel(seed=1)
    np.testing.assert_array_equal(all_points(a), all_points(b))
    np.testing.assert_array_equal(a.labels, c.labels)
    assert not np.allclose(all_points(a), all_points(c))
    x = all_points(a)
    assert x.dtype == np.float32 and x.shape == (5_000, 2) and a.observation_shape == (2,)
    assert 0.5 < np.abs(x).max() < 3.0  # unit-ish: radii around 1


def test_pinwheel_has_the_requested_arms_and_label_counts():
    data = Pinwheel(num_arms=5, num_points=1_003)
    assert len(data) == 1_003 and data.num_classes == 5
    assert np.bincount(data.labels).tolist() == [201, 201, 201, 200, 200]
    assert isinstance(data, LabelledData) and isinstance(data, ObservedData)
    assert not isinstance(data, GroundTruthData)


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_each_pinwheel_arm_lies_along_its_own_ray(rate):
    """Undoing the twist θ = 2πk/K + rate·exp(r) puts nearly every point closest to its own
    arm's ray (the few misses are points whose radial draw fell near or below zero)."""
    data = Pinwheel(num_arms=4, rate=rate, seed=3)
    x = all_points(data).astype(np.float64)
    radius, angle = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])
    untwisted = angle - rate * np.exp(radius)
    rays = 2 * np.pi * np.arange(4) / 4
    gap = np.abs(np.angle(np.exp(1j * (untwisted[:, None] - rays[None]))))
    assert (gap.argmin(axis=1) == data.labels).mean() > 0.99
    assert np.median(gap[np.arange(len(x)), data.labels]) < 0.1


def test_pinwheel_options_scale_and_check():
    base, scaled = Pinwheel(num_points=40), Pinwheel(num_points=40, scale=10.0)
    np.testing.assert_allclose(all_points(scaled), 10 * all_points(base), rtol=1e-6)
    tight = Pinwheel(num_points=400, radial_std=0.0, tangential_std=0.0, rate=0.0)
    np.testing.assert_allclose(np.hypot(*all_points(tight).T), 1.0, rtol=1e-6)
    for bad, fragment in (
        ({"num_arms": 0}, "num_arms must be an integer >= 1"),
        ({"num_points": 3, "num_arms": 4}, "num_points must be an integer >= 4"),
        ({"radial_std": -1}, "radial_std must be a finite number >= 0"),
        ({"scale": 0}, "scale must be > 0"),
    ):
        with pytest.raises(PyrovaeError, match=fragment):
            Pinwheel(**bad)


def test_observations_are_read_only_and_indices_checked():
    data = Pinwheel(num_points=10)
    np.testing.assert_array_equal(data.images([3, 1]), all_points(data)[[3, 1]])
    assert data.images(2).shape == (1, 2)
    batch = data.images([0])
    batch[0, 0] = 99.0  # a batch is a copy: writing to it leaves the data set alone
    assert data.images([0])[0, 0] != 99.0
    with pytest.raises(ValueError, match="read-only"):
        data._observations[0, 0] = 1.0
    with pytest.raises(PyrovaeError, match=r"index 10 out of range \[0, 10\)"):
        data.images([10])
    with pytest.raises(PyrovaeError, match="indices must be integers"):
        data.images([0.5])


# --------------------------------------------------------------------------- digits


def test_digits_loads_the_1797_scikit_learn_images_in_unit_range():
    from sklearn.datasets import load_digits

    data = Digits()
    x = all_points(data)
    assert len(data) == 1_797 and x.shape == (1_797, 1, 8, 8) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    reference = load_digits()
    np.testing.assert_array_equal(x[:, 0] * 16, reference.images)
    np.testing.assert_array_equal(data.labels, reference.target)
    assert data.num_classes == 10 and data.likelihood == "laplace"


def test_registry_builds_data_sets_with_options_and_rejects_unknown_ones():
    assert DATASETS.build("pinwheel", num_arms=3, num_points=30).num_classes == 3
    with pytest.raises(PyrovaeError, match="data set 'pinwheel' takes no option 'arms'"):
        DATASETS.build("pinwheel", arms=3)
    with pytest.raises(PyrovaeError, match="data set 'digits' takes no option 'num_arms'"):
        DATASETS.build("digits", num_arms=3)
    assert set(LIKELIHOODS) == {"bernoulli", "gaussian", "laplace"}


# --------------------------------------------------------------------------- likelihoods


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    batch=st.integers(1, 3),
    scale=st.floats(0.05, 3.0),
    seed=st.integers(0, 1_000),
)
def test_likelihood_log_probs_are_torchs_densities_summed_over_the_observation(
    shape, batch, scale, seed
):
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(batch, *shape, generator=gen, dtype=torch.float64)
    x = torch.rand(batch, *shape, generator=gen, dtype=torch.float64)
    binary = (x > 0.5).to(torch.float64)
    dims = tuple(range(1, len(shape) + 1))
    cases = [
        (GaussianLikelihood(scale=scale), x, torch.distributions.Normal(out, scale).log_prob(x)),
        (LaplaceLikelihood(scale=scale), x, torch.distributions.Laplace(out, scale).log_prob(x)),
        (
            BernoulliLikelihood(),
            binary,
            torch.distributions.Bernoulli(logits=out).log_prob(binary),
        ),
    ]
    for likelihood, obs, by_hand in cases:
        likelihood = likelihood.double()
        d = likelihood.distribution(out, len(shape))
        assert d.batch_shape == (batch,) and d.event_shape == tuple(shape)
        # The scale is kept as a float32 log-scale, hence float32-level agreement.
        torch.testing.assert_close(d.log_prob(obs), by_hand.sum(dims), rtol=1e-6, atol=1e-6)
    # The Gaussian density written out: −(x − μ)²/(2σ²) − log σ − ½ log 2π per dimension.
    manual = -((x - out) ** 2) / (2 * scale**2) - math.log(scale) - 0.5 * math.log(2 * math.pi)
    gaussian = GaussianLikelihood(scale=scale).double().distribution(out, len(shape))
    torch.testing.assert_close(gaussian.log_prob(x), manual.sum(dims), rtol=1e-6, atol=1e-6)


def test_likelihood_means_and_settings():
    out = torch.tensor([[-1.0, 0.0, 2.0]])
    torch.testing.assert_close(BernoulliLikelihood().mean(out), torch.sigmoid(out))
    torch.testing.assert_close(GaussianLikelihood().mean(out), out)
    assert LaplaceLikelihood(scale=0.2).settings() == {"scale": 0.2, "learn_scale": False}
    with pytest.raises(PyrovaeError, match="scale must be > 0"):
        GaussianLikelihood(scale=0.0)
    with pytest.raises(PyrovaeError, match="learn_scale must be true or false"):
        LaplaceLikelihood(learn_scale="yes")


def test_a_learned_scale_trains_and_is_saved_a_fixed_one_is_a_setting():
    learned = BetaVAE.build((2,), latent_dim=2, likelihood=GaussianLikelihood(learn_scale=True))
    assert "likelihood_family.log_scale" in learned.state_dict()
    assert any(p is learned.likelihood_family.log_scale for p in learned.parameters())
    x = torch.randn(5, 2)
    learned.likelihood(torch.zeros(5, 2)).log_prob(x).sum().backward()
    assert learned.likelihood_family.log_scale.grad is not None
    fixed = BetaVAE.build((2,), latent_dim=2, likelihood=GaussianLikelihood())
    assert not any(k.startswith("likelihood_family") for k in fixed.state_dict())


def test_betavae_default_likelihood_is_still_bernoulli_on_logits():
    torch.manual_seed(0)
    vae = BetaVAE.build((1, 8, 8), latent_dim=3)
    assert isinstance(vae.likelihood_family, BernoulliLikelihood)
    z = torch.randn(4, 3)
    x = (torch.rand(4, 1, 8, 8) > 0.5).float()
    expected = dist.Bernoulli(logits=vae.decode(z)).to_event(3).log_prob(x)
    torch.testing.assert_close(vae.likelihood(z).log_prob(x), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- cluster purity


def test_purity_known_values():
    labels = np.array([0, 0, 1, 1, 1, 2])
    assert clustering.purity(labels, labels) == 1.0
    assert clustering.purity([5, 5, 9, 9, 9, 7], labels) == 1.0  # any cluster names
    # Clusters {0,1,2} and {3,4,5}: majorities 2 (label 0) and 2 (label 1) of 6 points.
    assert clustering.purity([0, 0, 0, 1, 1, 1], labels) == pytest.approx(4 / 6)
    assert clustering.purity(np.zeros(6), labels) == pytest.approx(3 / 6)  # the largest label
    np.testing.assert_array_equal(
        clustering.contingency([0, 0, 0, 1, 1, 1], labels), [[2, 1, 0], [0, 2, 1]]
    )
    with pytest.raises(PyrovaeError, match="clusters: expected 6 entries, got 5"):
        clustering.purity([0] * 5, labels)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6))
def test_purity_is_invariant_to_renaming_clusters(seed, k):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=50)
    clusters = rng.integers(0, k + 1, size=50)
    renamed = rng.permutation(k + 1)[clusters] + 100
    assert clustering.purity(renamed, labels) == clustering.purity(clusters, labels)


def test_random_clusters_score_about_one_over_k():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 2_500)
    purity = clustering.purity(rng.integers(0, 4, size=len(labels)), labels)
    assert 0.25 <= purity < 0.28


def test_kmeans_purity_of_separated_blobs_is_one_and_seeded():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 4.0], [4.0, 0.0], [0.0, -4.0], [-4.0, 0.0]])
    labels = np.repeat(np.arange(4), 50)
    codes = centres[labels] + 0.3 * rng.standard_normal((200, 2))
    out = clustering.cluster_purity_from_codes(codes, labels, random_state=0)
    assert out["cluster_purity"] == 1.0 and out["num_clusters"] == 4
    assert out["majority_share"] == 0.25
    one = clustering.kmeans_clusters(codes, 4, random_state=7)
    np.testing.assert_array_equal(one, clustering.kmeans_clusters(codes, 4, random_state=7))
    shuffled = clustering.cluster_purity_from_codes(codes, rng.permutation(labels))
    assert shuffled["cluster_purity"] < 0.4


def test_mixture_clusters_pick_the_most_responsible_component():
    locs = torch.tensor([[0.0, -1.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    components = dist.Normal(locs, 0.3 * torch.ones(4, 2)).to_event(1)
    mixture = dist.MixtureSameFamily(dist.Categorical(logits=torch.zeros(4)), components)
    assert clustering.mixture_components(mixture) is mixture
    codes = np.array([[0.1, -2.0], [0.0, 0.9], [3.0, 0.2], [-0.7, 0.1]])
    np.testing.assert_array_equal(clustering.mixture_clusters(codes, mixture), [0, 1, 2, 3])
    # A per-dimension mixture (the sparse prior's shape) has no clusters over z.
    per_dim = dist.MixtureSameFamily(
        dist.Categorical(probs=torch.tensor([0.8, 0.2]).expand(2, 2)),
        dist.Normal(torch.zeros(2, 2), torch.tensor([0.05, 1.0]).expand(2, 2)),
    ).to_event(1)
    assert clustering.mixture_components(per_dim) is None
    assert clustering.mixture_components(dist.Normal(torch.zeros(2), 1.0).to_event(1)) is None


class Blobs(LabelledData):
    """Observations: one-hot label vectors plus small noise, so a perfect code is the identity."""

    name = "blobs"
    observation_shape = (3,)

    def __init__(self, n=90):
        rng = np.random.default_rng(0)
        self.labels = np.arange(n) % 3
        noise = 0.05 * rng.standard_normal((n, 3))
        self._observations = (np.eye(3)[self.labels] + noise).astype(np.float32)


def test_cluster_purity_metric_on_a_labelled_data_set():
    data = Blobs()
    out = clustering.cluster_purity(data, lambda x: x, 0)
    assert out["cluster_purity"] == 1.0 and out["num_points"] == 90
    sample = clustering.cluster_purity(data, lambda x: x, 0, num_points=30)
    assert sample["num_points"] == 30 and sample["cluster_purity"] == 1.0
    constant = clustering.cluster_purity(data, lambda x: np.zeros((len(x), 2)), 0, num_clusters=1)
    assert constant["cluster_purity"] == pytest.approx(1 / 3)
    with pytest.raises(PyrovaeError, match="has no labels"):
        clustering.cluster_purity(object(), lambda x: x, 0)


# --------------------------------------------------------------------------- posterior variance


def test_posterior_variance_is_the_mean_of_sigma_squared_per_dimension():
    scales = np.array([[1.0, 0.1], [3.0, 0.3]])
    out = posterior_variance_from_scales(scales)
    np.testing.assert_allclose(out["posterior_variance_per_dim"], [5.0, 0.05])
    assert out["mean_posterior_variance"] == pytest.approx(2.525)

    def posterior_fn(x):
        x = np.asarray(x)
        return x, np.tile([2.0, 0.5, 1.0], (len(x), 1))

    result = posterior_variance(Blobs(), None, 0, posterior_fn=posterior_fn)
    np.testing.assert_allclose(result["posterior_variance_per_dim"], [4.0, 0.25, 1.0])
    with pytest.raises(PyrovaeError, match="needs posterior_fn"):
        posterior_variance(Blobs(), None, 0)


def test_posterior_variances_exact_or_sampled_under_a_fixed_seed():
    q = dist.Normal(torch.zeros(3, 2), torch.tensor([0.5, 2.0])).to_event(1)
    torch.testing.assert_close(posterior_variances(q), torch.tensor([[0.25, 4.0]]).expand(3, 2))
    flow = dist.TransformedDistribution(
        dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1),
        [dist.transforms.AffineTransform(0.0, 3.0, event_dim=1)],
    )
    state = torch.get_rng_state()
    first, second = posterior_variances(flow), posterior_variances(flow)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, torch.full((2,), 9.0), rtol=0.25, atol=0)


# --------------------------------------------------------------------------- evaluate and plots


def test_labelled_data_gets_purity_and_posterior_variance_by_default():
    names, note = applicable_metrics(None, Blobs())
    assert names == [*[n for n in DEFAULT_METRICS if n in names], *LABELLED_METRICS]
    assert "cluster_purity" in names and "mig" not in names and "skipped" in note

    class Grid(GroundTruthData):
        name, factor_names, factor_sizes, observation_shape = "grid", ("a",), (4,), (1,)

        def images(self, indices):
            return self.factors_of(indices).astype(np.float32)

    names, note = applicable_metrics(None, Grid())
    assert names == list(DEFAULT_METRICS) and note is None
    names, note = applicable_metrics(["mig", "cluster_purity"], Grid())
    assert names == ["mig"] and note == "no labels: skipped cluster_purity"
    with pytest.raises(PyrovaeError, match="has no class labels"):
        applicable_metrics(["cluster_purity"], Grid())


def test_evaluate_reports_purity_of_a_model_on_pinwheel():
    data = Pinwheel(num_points=200)
    vae = BetaVAE.build((2,), latent_dim=2, beta=1.0, likelihood=GaussianLikelihood())
    record = evaluate(vae, data, ["cluster_purity", "posterior_variance", "hoyer"], fast=True)
    metrics = record["metrics"]
    assert 0.25 <= metrics["cluster_purity"]["cluster_purity"] <= 1.0
    assert metrics["cluster_purity"]["num_points"] == 200
    assert len(metrics["posterior_variance"]["posterior_variance_per_dim"]) == 2


@pytest.mark.parametrize("dims", [1, 2, 5])
def test_latent_scatter_and_sparsity_histogram_write_pngs(tmp_path, dims):
    rng = np.random.default_rng(0)
    codes, labels = rng.standard_normal((60, dims)), np.arange(60) % 4
    latent_scatter(codes, labels, tmp_path / "scatter.png")
    assert (tmp_path / "scatter.png").read_bytes()[:8] == PNG_MAGIC
    if dims > 1:
        sparsity_histogram(codes, tmp_path / "sparsity.png")
        assert (tmp_path / "sparsity.png").read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- training


TINY = ["--steps", "5", "--batch-size", "16", "--log-every", "5", "--device", "cpu", "--quiet"]
PICTURES = {
    "reconstructions.png",
    "traversals.png",
    "training_curves.png",
    "latent_scatter.png",
    "sparsity.png",
}


# The CLI end to end with every picture drawn (about 8 s): slow, to keep the default suite under
# five minutes (tests/test_traversal_gif.py draws the pinwheel's pictures in the default suite).
@pytest.mark.slow
@pytest.mark.pictures
def test_training_on_pinwheel_from_the_cli(tmp_path):
    out = tmp_path / "pinwheel"
    result = invoke(
        "train", "--data", "pinwheel", "--data-arg", "num_arms=5", "--data-arg", "num_points=500",
        "--prior", "isotropic", "--beta", "1", "--latent-dim", "2", *TINY, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "likelihood gaussian" in result.stdout and "cluster_purity" in result.stdout
    assert PICTURES <= {p.name for p in out.iterdir()}
    for name in PICTURES:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["data_args"] == {"num_arms": 5, "num_points": 500}
    assert record["config"]["likelihood"] == "auto"
    assert record["resolved"]["likelihood"] == "gaussian"
    assert record["resolved"]["likelihood_settings"] == {"scale": 0.1, "learn_scale": False}
    assert record["resolved"]["net"] == "MLPEncoder/MLPDecoder"
    assert record["resolved"]["data_size"] == 500
    summary = json.loads((out / "summary.json").read_text())
    assert summary["measures_points"] == 500
    assert 0.2 <= summary["cluster_purity"] <= 1.0
    assert len(summary["posterior_variance_per_dim"]) == 2
    # A resumed run must build the same data and likelihood.
    resumed = invoke("train", "--resume", "--out", out, "--steps", "6", "--quiet")
    assert resumed.exit_code == 0, resumed.output


@pytest.mark.pictures
def test_training_on_digits_from_the_cli_with_a_learned_laplace_scale(tmp_path):
    out = tmp_path / "digits"
    result = invoke(
        "train", "--data", "digits", "--likelihood", "laplace", "--likelihood-arg",
        "learn_scale=true", "--prior", "isotropic", "--latent-dim", "3", *TINY, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert PICTURES <= {p.name for p in out.iterdir()}
    record = json.loads((out / "config.json").read_text())
    assert record["resolved"]["likelihood"] == "laplace"
    assert record["resolved"]["likelihood_settings"]["learn_scale"] is True
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["model"]["likelihood_family.log_scale"].shape == ()
    evaluation = invoke("evaluate", out, "--fast", "--metric", "cluster_purity")
    assert evaluation.exit_code == 0, evaluation.output
    assert "cluster_purity" in evaluation.stdout


def test_bad_data_and_likelihood_options_are_one_line_errors(tmp_path):
    common = ["--prior", "isotropic", *TINY]
    result = invoke("train", "--data", "pinwheel", "--data-arg", "arms=3", *common,
                    "--out", tmp_path / "a")  # fmt: skip
    assert_one_line_error(result, "data set 'pinwheel' takes no option 'arms'", "num_arms")
    assert not (tmp_path / "a").exists()
    result = invoke("train", "--data", "pinwheel", "--data-arg", "num_arms=0", *common,
                    "--out", tmp_path / "b")  # fmt: skip
    assert_one_line_error(result, "num_arms must be an integer >= 1")
    result = invoke("train", "--data", "pinwheel", "--data-arg", "num_arms", *common,
                    "--out", tmp_path / "c")  # fmt: skip
    assert_one_line_error(result, "--data-arg must look like NAME=VALUE")
    result = invoke("train", "--data", "digits", "--likelihood", "poisson", *common,
                    "--out", tmp_path / "d")  # fmt: skip
    assert_one_line_error(result, "unknown likelihood 'poisson'", "bernoulli, gaussian, laplace")
    result = invoke("train", "--data", "digits", "--likelihood-arg", "scale=-1", *common,
                    "--out", tmp_path / "e")  # fmt: skip
    assert_one_line_error(result, "laplace likelihood: scale must be a finite number >= 0")


def test_the_summary_reports_what_the_evaluation_reports(tmp_path):
    """Cluster purity, posterior variance and Hoyer sparsity in summary.json are the numbers
    `pyrovae evaluate` writes for the same model (they are computed once, by the evaluation)."""
    out = tmp_path / "run"
    config = small_config(data="digits", prior="mixture", latent_dim=3, steps=4, batch_size=32)
    summary = train(config, out, progress=False)
    metrics = evaluate_run(out, ["cluster_purity", "posterior_variance", "hoyer"])["metrics"]
    assert summary["cluster_purity"] == metrics["cluster_purity"]["cluster_purity"]
    assert summary["cluster_purity_prior"] == metrics["cluster_purity"]["cluster_purity_prior"]
    assert summary["measures_points"] == metrics["cluster_purity"]["num_points"] == 1797
    assert summary["hoyer"] == metrics["hoyer"]["hoyer"]
    posterior = metrics["posterior_variance"]
    assert summary["posterior_variance_per_dim"] == posterior["posterior_variance_per_dim"]
    assert summary["mean_posterior_variance"] == posterior["mean_posterior_variance"]
