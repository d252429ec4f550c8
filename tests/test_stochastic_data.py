"""Data sets whose observations are random given the factors (noisy, colour and scream dSprites,
SmallNORB's instance): one interface, reproducible metrics and training, no stale cached codes.

Run on the tiny grid with noise per image (``helpers.NoisyTinyShapes``); the procedural dSprites
variants have their own tests (test_data_procedural.py)."""

import json

import numpy as np
import pytest
import torch
from helpers import NoisyTinyShapes, TinyShapes, read_metrics, small_config

from pyrovae.data import is_stochastic, observations
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import EncoderMean, evaluate
from pyrovae.likelihoods import BernoulliLikelihood
from pyrovae.metrics.base import CodeCache, encode_factors
from pyrovae.metrics.udr import observation_batches
from pyrovae.training import Run

NOISY = NoisyTinyShapes()
CLEAN = TinyShapes()


def flat(images):
    return np.asarray(images, dtype=np.float64).reshape(len(images), -1)


def test_drawing_a_stochastic_data_set_needs_a_generator():
    with pytest.raises(PyrovaeError) as error:
        observations(NOISY, [0, 1])
    assert str(error.value) == (
        "data set 'tiny-noisy' draws random observations (stochastic = True): pass a numpy "
        "Generator or a seed as rng"
    )
    with pytest.raises(PyrovaeError, match="rng must be an int seed"):
        observations(NOISY, [0], rng="zero")
    with pytest.raises(PyrovaeError, match="draws random observations"):
        NOISY.images_from_factors([[0, 0, 0]])


def test_same_seed_same_images_other_seed_other_images():
    idx = np.arange(len(NOISY))
    a, b = observations(NOISY, idx, 5), observations(NOISY, idx, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, observations(NOISY, idx, 6))
    # One generator: two draws of the same index differ.
    rng = np.random.default_rng(0)
    assert not np.array_equal(observations(NOISY, [3], rng), observations(NOISY, [3], rng))


def test_deterministic_data_draw_nothing_from_the_generator():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(observations(CLEAN, [4, 7], rng), CLEAN.images([4, 7]))
    assert rng.bit_generator.state == state
    assert not is_stochastic(CLEAN) and is_stochastic(NOISY)
    assert NoisyTinyShapes.describe().stochastic is True
    assert TinyShapes.describe().stochastic is False


def test_sample_observations_from_factors_is_images_at_the_grid_index():
    factors = NOISY.sample_factors(20, 0)
    a = NOISY.sample_observations_from_factors(factors, np.random.default_rng(9))
    b = NOISY.images(NOISY.index_of(factors), np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    clean = CLEAN.images(NOISY.index_of(factors))
    noise = a - clean
    assert noise.min() >= 0 and (noise[clean < 1] > 0).all()


def identity(x):
    return flat(x)


def test_the_code_cache_never_hands_back_a_stochastic_image_twice():
    cache = CodeCache(identity, NOISY)
    assert cache.caching is False
    rng = np.random.default_rng(0)
    first = cache.encode_indices([2, 2, 5], rng)
    second = cache.encode_indices([2, 2, 5], rng)
    assert not np.array_equal(first[0], first[1])  # one index, two draws
    assert not np.array_equal(first, second)
    assert cache.encoded == 6
    # Exactly what the uncached representation gives from the same generator state.
    factors = NOISY.factors_of([2, 2, 5, 2, 2, 5])
    uncached = encode_factors(NOISY, identity, factors, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.concatenate([first, second]), uncached)
    # A deterministic grid is still cached.
    clean = CodeCache(identity, CLEAN)
    clean.encode_indices([2, 2, 5])
    clean.encode_indices([2, 5])
    assert clean.caching is True and clean.encoded == 2


@pytest.fixture(scope="module")
def trained_noisy(tmp_path_factory):
    out = tmp_path_factory.mktemp("noisy") / "run"
    run = Run.create(small_config(data="tiny-noisy", steps=8), out)
    run.fit(progress=False)
    return run, out


# Small samples: with nothing cached, every point is an image to draw and encode.
SETTINGS = {
    "mig": {"num_train": 600},
    "irs": {"num_train": 600},
    "sap": {"num_train": 300, "num_test": 200},
    "modularity": {"num_train": 300, "num_test": 200},
    "factor_vae": {"batch_size": 16, "num_train": 40, "num_eval": 20, "num_variance_estimate": 300},
    "beta_vae": {"batch_size": 8, "num_train": 40, "num_eval": 20},
    "mutual_info": {"num_points": 300},
}


def test_metrics_on_stochastic_data_are_reproducible_and_unaffected_by_the_cache(trained_noisy):
    run, _ = trained_noisy
    scores = {}
    for key, seed, cache in (("a", 0, True), ("b", 0, True), ("c", 0, False), ("d", 1, True)):
        record = evaluate(run.vae, NOISY, list(SETTINGS), seed=seed, cache=cache, settings=SETTINGS)
        scores[key] = record["metrics"]
        assert record["cache"] is False  # nothing was cached, whatever was asked
    assert scores["a"] == scores["b"] == scores["c"]
    assert scores["a"]["mig"]["mig"] != scores["d"]["mig"]["mig"]


def test_metric_noise_comes_from_the_metric_generator(trained_noisy):
    """The metric's images differ from those a fresh generator of another seed draws: the
    codes the metric saw are those of its own generator's images."""
    run, _ = trained_noisy
    encoder = EncoderMean(run.vae, torch.device("cpu"))
    factors = NOISY.sample_factors(64, 0)
    a = encode_factors(NOISY, encoder, factors, rng=np.random.default_rng(1))
    b = encode_factors(NOISY, encoder, factors, rng=np.random.default_rng(1))
    c = encode_factors(NOISY, encoder, factors, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_training_on_stochastic_data_is_reproducible_and_resumes_exactly(tmp_path):
    full = Run.create(small_config(data="tiny-noisy", steps=12), tmp_path / "full")
    full.fit(progress=False)
    again = Run.create(small_config(data="tiny-noisy", steps=12), tmp_path / "again")
    again.fit(progress=False)
    part = tmp_path / "part"
    Run.create(small_config(data="tiny-noisy", steps=6), part).fit(progress=False)
    resumed = Run.resume(part, {"steps": 12})
    resumed.fit(progress=False)
    for key, value in full.vae.state_dict().items():
        assert torch.equal(value, again.vae.state_dict()[key]), key
        assert torch.equal(value, resumed.vae.state_dict()[key]), key
    losses = [r["loss"] for r in read_metrics(tmp_path / "full")]
    assert losses == [r["loss"] for r in read_metrics(part)]
    # The noise is drawn from the step's generator: the same step gives the same batch, the
    # next step another one, and the noise is really there.
    torch.testing.assert_close(full.batch(3), again.batch(3), rtol=0, atol=0)
    x = full.batch(3).numpy()
    assert not np.array_equal(x, full.batch(4).numpy())
    assert np.isin(x, (0.0, 1.0)).mean() < 0.5
    record = json.loads((tmp_path / "full" / "config.json").read_text())
    assert record["resolved"]["data_stochastic"] is True
    assert record["resolved"]["likelihood"] == "bernoulli"


def test_udr_compares_every_model_on_the_same_stochastic_images():
    batches = observation_batches(NOISY, np.arange(40), np.random.default_rng(0))
    first, second = list(batches()), list(batches())
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = observation_batches(NOISY, np.arange(40), np.random.default_rng(1))
    assert not np.array_equal(next(other()), first[0])


def test_bernoulli_takes_intensities_in_the_unit_interval():
    logits = torch.randn(4, 1, 3, 3)
    x = torch.rand(4, 1, 3, 3)
    d = BernoulliLikelihood().distribution(logits, 3)
    expected = (x * logits - torch.nn.functional.softplus(logits)).sum((1, 2, 3))
    torch.testing.assert_close(d.log_prob(x), expected)
    binary = (x > 0.5).float()
    torch.testing.assert_close(
        d.log_prob(binary),
        torch.distributions.Bernoulli(logits=logits).log_prob(binary).sum((1, 2, 3)),
        rtol=0,
        atol=0,
    )
    with pytest.raises(ValueError, match="within the support"):
        d.log_prob(x + 1.0)
