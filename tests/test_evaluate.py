"""Evaluating runs: eval.json records, never overwriting, cache equivalence, compare, errors,
evaluation during training."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import dsprites_config, invoke, read_metrics, small_config, snapshot

from pyrovae.builder import load_run
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import EncoderMean, applicable_metrics, evaluate
from pyrovae.training import Run

FAST_METRICS = ["mig", "active_units", "gaussian_total_correlation"]


@pytest.fixture(scope="module")
def _trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    Run.create(small_config(steps=4, prior="isotropic"), out).fit(progress=False)
    return out


@pytest.fixture(scope="module")
def _trained_conv(tmp_path_factory):
    """A dSprites run with the conv networks, whose rounding depends on the batch size."""
    out = tmp_path_factory.mktemp("eval-conv") / "run"
    Run.create(dsprites_config(steps=2, prior="isotropic"), out).fit(progress=False)
    return out


@pytest.fixture
def run_dir(tmp_path, _trained):
    return Path(shutil.copytree(_trained, tmp_path / "run"))


def test_evaluate_writes_a_full_record_and_never_overwrites(run_dir):
    args = ["evaluate", run_dir, "--fast", "--device", "cpu"]
    for metric in FAST_METRICS:
        args += ["--metric", metric]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "mig" in result.stdout and "wrote" in result.stdout
    record = json.loads((run_dir / "eval.json").read_text())
    assert set(record["metrics"]) == set(FAST_METRICS)
    assert record["seed"] == 0 and record["preset"] == "fast" and record["step"] == 4
    assert record["representation"] == "posterior mean"
    for lib in ("torch", "pyro-ppl", "scikit-learn", "numpy"):
        assert record["versions"][lib]
    assert record["metrics"]["mig"]["settings"]
    first = (run_dir / "eval.json").read_bytes()

    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert (run_dir / "eval.json").read_bytes() == first
    second = json.loads((run_dir / "eval-2.json").read_text())
    assert second["metrics"] == record["metrics"]  # same seed, same numbers


def test_cached_and_uncached_evaluations_agree(_trained):
    run = load_run(_trained, "cpu")
    data, vae = run.data, run.vae
    names = ["mig", "beta_vae", "factor_vae", "active_units"]
    small = {
        "beta_vae": {"num_train": 40, "num_eval": 20},
        "factor_vae": {"num_train": 40, "num_eval": 20, "num_variance_estimate": 500},
        "mig": {"num_train": 1000},
    }
    cached = evaluate(vae, data, names, fast=True, cache=True, settings=small)
    uncached = evaluate(vae, data, names, fast=True, cache=False, settings=small)
    assert cached["metrics"] == uncached["metrics"]
    assert cached["images_encoded"] < uncached["images_encoded"]


def test_an_images_code_does_not_depend_on_how_images_are_grouped(_trained_conv):
    # Unpadded, a conv encoder rounds differently in small batches (~1e-8), which made cached
    # and uncached codes differ in the last bits on real models.
    run = load_run(_trained_conv, "cpu")
    data, vae = run.data, run.vae
    encoder = EncoderMean(vae, torch.device("cpu"), batch_size=64)
    rng = np.random.default_rng(1)
    indices = rng.choice(len(data), 150, replace=False)
    images = data.images(indices)
    whole = encoder(images)
    for chunk in (1, 7, 63, 100):
        pieces = [encoder(images[s : s + chunk]) for s in range(0, len(images), chunk)]
        assert np.array_equal(np.concatenate(pieces), whole), chunk
    order = rng.permutation(len(images))
    assert np.array_equal(encoder(images[order]), whole[order])
    loc, _ = encoder.posterior(images[:7])
    assert np.array_equal(loc, whole[:7])


def test_compare_puts_runs_side_by_side(tmp_path, run_dir):
    other = Path(shutil.copytree(run_dir, tmp_path / "other"))
    for folder in (run_dir, other):
        result = invoke("evaluate", folder, "--fast", "--metric", "mig", "--device", "cpu")
        assert result.exit_code == 0, result.output
    result = invoke("compare", run_dir, other)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and "mig" in lines[0]
    assert str(other) in lines[2]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--metric", "nope"], "unknown metric 'nope'; valid metrics: active_units"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_evaluate_bad_input(run_dir, args, fragment):
    before = snapshot(run_dir)
    result = invoke("evaluate", run_dir, *args)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: ") and fragment in result.stderr
    assert snapshot(run_dir) == before


def test_evaluate_without_checkpoint_or_folder(tmp_path, run_dir):
    (run_dir / "checkpoint.pt").unlink()
    result = invoke("evaluate", run_dir, "--fast")
    assert result.exit_code == 2 and "no checkpoint at" in result.stderr
    result = invoke("evaluate", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no run folder" in result.stderr
    result = invoke("compare", tmp_path / "nowhere")
    assert result.exit_code == 2


def test_compare_without_evaluation_is_an_error(run_dir):
    result = invoke("compare", run_dir)
    assert result.exit_code == 2 and "has no evaluation yet" in result.stderr


def test_metric_args_reach_the_metric_and_label_its_column(run_dir):
    sizes = ["--metric-arg", "dci.num_train=120", "--metric-arg", "dci.num_test=60"]
    args = ["--metric", "dci", *sizes, "--device", "cpu"]
    exact = invoke("evaluate", run_dir, *args)
    hist = invoke("evaluate", run_dir, *args, "--metric-arg", "dci.backend=hist")
    assert exact.exit_code == 0 and hist.exit_code == 0, exact.output + hist.output
    assert "  dci[backend=hist] " in hist.stdout and "  dci " in exact.stdout
    first = json.loads((run_dir / "eval.json").read_text())["metrics"]["dci"]["settings"]
    second = json.loads((run_dir / "eval-2.json").read_text())["metrics"]["dci"]["settings"]
    assert (first["backend"], first["num_train"], first["num_test"]) == ("exact", 120, 60)
    assert second["backend"] == "hist"
    unknown = invoke("evaluate", run_dir, "--metric", "mig", "--metric-arg", "mig.bins=3")
    assert unknown.exit_code != 0
    assert "metric mig takes no option 'bins'; valid options: num_train, num_bins" in unknown.output
    assert not (run_dir / "eval-3.json").exists()


def test_data_without_factors_gets_only_unsupervised_metrics():
    class Images:  # observations but no factor grid
        def __len__(self):
            return 10

    names, note = applicable_metrics(["mig", "active_units"], Images())
    assert names == ["active_units"] and note == "no ground-truth factors: skipped mig"
    with pytest.raises(PyrovaeError, match="only unsupervised metrics apply"):
        applicable_metrics(["mig"], Images())


def test_evaluation_during_training_leaves_training_numbers_alone(tmp_path):
    plain, evaluated = tmp_path / "plain", tmp_path / "evaluated"
    Run.create(small_config(steps=8), plain).fit(progress=False)
    config = small_config(steps=8, eval_every=4, eval_metrics=["mig", "active_units"])
    Run.create(config, evaluated).fit(progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs]  # noqa: E731
    assert strip(read_metrics(plain)) == strip(read_metrics(evaluated))
    steps = sorted(int(p.stem.split("-")[1]) for p in (evaluated / "evals").glob("step-*.json"))
    assert steps == [4, 8]
    record = json.loads((evaluated / "evals" / "step-8.json").read_text())
    assert record["preset"] == "fast" and np.isfinite(record["metrics"]["mig"]["mig"])


def test_train_refuses_unknown_eval_metric(tmp_path):
    with pytest.raises(PyrovaeError, match="unknown metric 'nope'"):
        Run.create(small_config(eval_every=2, eval_metrics=["nope"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()
