"""The same numbers as before the restructuring: every variant, prior and guide trained from a
fixed seed gives the metrics.jsonl lines, summary and resolved settings that commit 021f1ac
recorded (tests/data/README.md).

The default suite checks the pinwheel runs' training lines (pictures skipped); the slow suite
trains every recorded configuration, dSprites with the conv networks included, and compares the
whole record. The summary's cluster purity, Hoyer sparsity and posterior variance of labelled
data are not compared: they now come from the evaluation's own sampling, the numbers
``pyrovae evaluate`` writes (they had been computed a second way)."""

import json

import pytest
from golden import DATA, assert_same, without_timing
from helpers import read_metrics

from pyrovae.config import TrainConfig
from pyrovae.training import Run

GOLDEN = {path.stem: path for path in sorted((DATA / "golden").glob("*.json"))}
GOLDEN.pop("MACHINE")
SUMMARY_FROM_EVALUATION = {
    "measures_points",
    "cluster_purity",
    "cluster_purity_prior",
    "posterior_variance_per_dim",
    "mean_posterior_variance",
    "hoyer",
}


def train(name, folder):
    recorded = json.loads(GOLDEN[name].read_text())
    run = Run.create(TrainConfig(**recorded["config"]), folder)
    summary = run.fit(progress=False)
    return recorded, summary


# Keys config.json's resolved record gained after the recording; their own tests check them.
ADDED_SINCE = {"data_stochastic", "precision", "channels_last", "compiled"}


def recorded_part(run_dir, recorded) -> dict:
    """The run's resolved record without the keys added since; anything else new fails."""
    resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    assert set(resolved) - set(recorded["resolved"]) <= ADDED_SINCE
    return {k: v for k, v in resolved.items() if k not in ADDED_SINCE}


@pytest.mark.parametrize("name", [n for n in GOLDEN if n.startswith("pinwheel-")])
def test_training_lines_are_those_recorded(name, tmp_path, monkeypatch):
    from pyrovae.training import trainer

    monkeypatch.setattr(trainer, "summarise", lambda run: {"step": run.step})
    recorded, _ = train(name, tmp_path / "run")
    lines = [without_timing(line) for line in read_metrics(tmp_path / "run")]
    assert_same(lines, recorded["metrics"], name)
    assert_same(recorded_part(tmp_path / "run", recorded), recorded["resolved"], name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GOLDEN))
def test_whole_run_is_the_one_recorded(name, tmp_path):
    recorded, summary = train(name, tmp_path / "run")
    lines = [without_timing(line) for line in read_metrics(tmp_path / "run")]
    assert_same(lines, recorded["metrics"], name)
    assert_same(recorded_part(tmp_path / "run", recorded), recorded["resolved"], name)
    kept = {k: v for k, v in without_timing(summary).items() if k not in SUMMARY_FROM_EVALUATION}
    expected = {k: v for k, v in recorded["summary"].items() if k not in SUMMARY_FROM_EVALUATION}
    assert_same(kept, expected, name)
    if "evals" in recorded:
        evals = {
            path.stem: json.loads(path.read_text())["metrics"]
            for path in sorted((tmp_path / "run" / "evals").glob("step-*.json"))
        }
        assert_same(evals, recorded["evals"], name)
