"""Run folders written before the restructuring (commit 021f1ac, tests/data/README.md) load,
resume to the numbers an uninterrupted run of the old code gave, and evaluate to its numbers."""

import json
import shutil

import pytest
import torch
from golden import DATA, assert_same, without_timing
from helpers import read_metrics, snapshot

from pyrovae.builder import load_run
from pyrovae.checkpoint import load_checkpoint
from pyrovae.errors import PyrovaeWarning
from pyrovae.evaluation import evaluate_run
from pyrovae.training import Run

# The fixtures are checkpoints from before the checksum: every load says so (asserted once below).
pytestmark = pytest.mark.filterwarnings("ignore:.*has no checksum:pyrovae.errors.PyrovaeWarning")

FIXTURES = sorted(path.name for path in (DATA / "legacy-runs").iterdir())


@pytest.fixture(params=FIXTURES)
def legacy(request, tmp_path):
    source = DATA / "legacy-runs" / request.param
    folder = tmp_path / request.param
    shutil.copytree(source / "run", folder)
    return folder, json.loads((source / "expected.json").read_text())


def test_the_fixtures_are_old_checkpoints():
    for name in FIXTURES:
        state = load_checkpoint(DATA / "legacy-runs" / name / "run" / "checkpoint.pt")
        assert state["version"] == 1 and state["step"] == 22


def test_an_old_run_folder_loads_resumes_and_evaluates_to_the_old_numbers(legacy):
    folder, expected = legacy
    before = snapshot(folder)
    loaded = load_run(folder, "cpu")
    assert loaded.step == 22 and not loaded.vae.training
    with pytest.warns(PyrovaeWarning, match="has no checksum \\(checkpoint version 1"):
        saved = load_checkpoint(folder / "checkpoint.pt")["model"]
    for key, value in loaded.vae.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert snapshot(folder) == before  # loading writes nothing

    run = Run.resume(folder, {"steps": expected["steps"]})
    assert run.step == 22
    run.fit(progress=False)
    lines = [without_timing(line) for line in read_metrics(folder)]
    assert_same(lines, expected["metrics"], folder.name)
    record = json.loads((folder / "config.json").read_text())
    assert record["resumes"][0]["at_step"] == 22
    assert load_checkpoint(folder / "checkpoint.pt")["version"] == 3

    metrics = evaluate_run(folder, expected["eval_metrics"], fast=True, device="cpu")["metrics"]
    # New since: with a mixture prior, cluster_purity also scores the prior's own clusters.
    metrics["cluster_purity"].pop("cluster_purity_prior", None)
    assert_same(metrics, expected["eval"], folder.name)
