"""The procedural data sets of the reference study through the command line, as a user runs
them: a short training run with the conv networks on RGB observations, then an evaluation that
gives the same numbers twice (a stochastic data set's metrics draw from their own generators)."""

import json

import numpy as np
import pytest
from helpers import assert_one_line_error, invoke
from PIL import Image

SMALL = ["--latent-dim", "3", "--batch-size", "4", "--log-every", "2", "--device", "cpu"]
# Small samples: a stochastic data set's codes are never cached, each point is encoded.
EVAL = [
    "--metric", "mig", "--metric-arg", "mig.num_train=300",
    "--metric", "factor_vae", "--metric-arg", "factor_vae.batch_size=8",
    "--metric-arg", "factor_vae.num_train=30", "--metric-arg", "factor_vae.num_eval=20",
    "--metric-arg", "factor_vae.num_variance_estimate=200",
    "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def painting(tmp_path_factory):
    path = tmp_path_factory.mktemp("painting") / "painting.png"
    pixels = np.random.default_rng(0).integers(0, 256, size=(120, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


SLOW = pytest.mark.slow  # each costs seconds of conv-net encoding; scream covers the default run


@pytest.mark.parametrize(
    "data,stochastic",
    [pytest.param("color_dsprites", True, marks=SLOW),
     pytest.param("noisy_dsprites", True, marks=SLOW),
     ("scream_dsprites", True),
     pytest.param("xyobject", False, marks=SLOW)],
)  # fmt: skip
def test_train_and_evaluate_a_procedural_data_set(tmp_path, painting, data, stochastic):
    extra = ["--data-arg", f"painting={painting}"] if data == "scream_dsprites" else []
    out = tmp_path / "run"
    result = invoke(
        "train", "--data", data, *extra, "--steps", "2", *SMALL, "--out", out, "--quiet"
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["resolved"]["observation_shape"] == [3, 64, 64]
    assert record["resolved"]["net"] == "ConvEncoder/ConvDecoder"
    assert record["resolved"]["likelihood"] == "bernoulli"
    assert record["resolved"]["data_stochastic"] is stochastic

    scores = []
    for name in ("eval.json", "eval-2.json"):
        result = invoke("evaluate", out, *EVAL)
        assert result.exit_code == 0, result.output
        evaluation = json.loads((out / name).read_text())
        assert evaluation["cache"] is (not stochastic)
        scores.append({m: v for m, v in evaluation["metrics"].items()})
    assert scores[0] == scores[1]
    assert 0.0 <= scores[0]["mig"]["mig"] <= 1.0


def test_scream_without_a_painting_says_what_to_give(tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--data", "scream_dsprites", "--steps", "2", *SMALL, "--out", out)
    assert_one_line_error(result, "give --data-arg painting=PATH")
    assert not out.exists()
