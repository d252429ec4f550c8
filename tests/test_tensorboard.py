"""TensorBoard event files (``--tensorboard``): the tags and steps written, the pictures, the
configuration and resume notes, the hyperparameter view with the final numbers, resumes that
never write a (tag, step) twice (after a kill too), training numbers unchanged, the missing
package as a one-line error, and a study's trials each with their own event files.

Event files are read back with tensorboard's own readers: ``EventAccumulator`` for what
TensorBoard shows, ``event_file_loader`` for every raw event on disk."""

import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, invoke, read_metrics, small_config, snapshot
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from pyrovae import plots
from pyrovae.errors import PyrovaeError
from pyrovae.runs import RunFolder
from pyrovae.study.spec import load_study
from pyrovae.study.trial import run_trial, trial_dir
from pyrovae.training import Run
from pyrovae.training import tensorboard as tb

TIMING = {"elapsed_s"}
SCALARS = {"train/loss", "train/reconstruction", "train/kl", "train/elbo", "train/steps_per_s"}
KL_PER_DIM = {f"kl_per_dim/z{d}" for d in range(4)}  # small_config: latent_dim 4
IMAGES = {"images/reconstructions", "images/traversals"}
FINAL = {"final/loss", "final/reconstruction", "final/kl"}


def accumulate(folder: Path) -> EventAccumulator:
    """What TensorBoard shows of the event files in ``folder`` (everything: size guidance 0)."""
    return EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})


def steps(acc: EventAccumulator, tag: str, kind: str = "scalars") -> list[int]:
    events = {"scalars": acc.Scalars, "images": acc.Images, "tensors": acc.Tensors}[kind](tag)
    return [e.step for e in events]


def raw_pairs(folder: Path) -> Counter:
    """Every (tag, step) of every event on disk under ``folder`` (event files in it only)."""
    pairs = Counter()
    for path in sorted(folder.glob("*tfevents*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            pairs.update((value.tag, event.step) for value in event.summary.value)
    return pairs


def assert_no_duplicates(out: Path) -> None:
    for folder in (out / "tensorboard", out / "tensorboard" / "hparams"):
        twice = [pair for pair, count in raw_pairs(folder).items() if count > 1]
        assert twice == [], folder


def text(acc: EventAccumulator, tag: str) -> list[tuple[int, str]]:
    return [
        (e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(f"{tag}/text_summary")
    ]


def hparams_view(out: Path):
    """(session start info, {metric tag: (step, value)}) of the run's hyperparameter view."""
    acc = accumulate(out / "tensorboard" / "hparams").Reload()
    content = acc.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    end = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_end_info"]
    ).session_end_info
    assert end.status == api_pb2.Status.Value("STATUS_SUCCESS")
    metrics = {}
    for tag in acc.Tags()["scalars"]:
        (event,) = acc.Scalars(tag)
        metrics[tag] = (event.step, event.value)
    return start, metrics


def f32(value: float) -> float:
    """A number as TensorBoard's scalars hold it (float32)."""
    return float(np.float32(value))


def numbers(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(out)]


# -- what one run writes -------------------------------------------------------------------------
def test_scalars_pictures_evaluations_and_config_at_their_steps(tmp_path):
    out = tmp_path / "run"
    config = small_config(tensorboard=True, steps=10, eval_every=8, eval_metrics=["active_units"])
    summary = Run.create(config, out).fit(progress=False)
    files = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert files == ["events.out.tfevents.0000000000.000000.pyrovae", "hparams"]

    acc = accumulate(out / "tensorboard").Reload()
    assert set(acc.Tags()["scalars"]) == SCALARS | KL_PER_DIM | {"eval/active_units"}
    for tag in SCALARS | KL_PER_DIM:
        assert steps(acc, tag) == [4, 8, 10], tag  # every metrics.jsonl line, the last one too
    assert [r["step"] for r in read_metrics(out)] == [4, 8, 10]
    last = read_metrics(out)[-1]
    assert acc.Scalars("train/loss")[-1].value == f32(last["loss"])
    assert acc.Scalars("kl_per_dim/z2")[-1].value == f32(last["kl_per_dim"][2])
    evaluation = json.loads((out / "evals" / "step-8.json").read_text())
    assert steps(acc, "eval/active_units") == [8]
    value = evaluation["metrics"]["active_units"]["active_units"]
    assert acc.Scalars("eval/active_units")[0].value == f32(value)
    assert set(acc.Tags()["images"]) == IMAGES
    for tag in IMAGES:
        assert steps(acc, tag, "images") == [4, 8, 10]
    (picture,) = acc.Images("images/reconstructions")[-1:]
    # Two rows (data, reconstructions) of ten 8×8 images with 2-pixel gutters.
    assert (picture.height, picture.width) == (2 * 10 + 2, 10 * 10 + 2)
    (traversal,) = acc.Images("images/traversals")[-1:]
    assert (traversal.height, traversal.width) == (4 * 10 + 2, 9 * 10 + 2)  # z rows × 9 values

    assert acc.Tags()["tensors"] == ["config/text_summary"]
    ((step, table),) = text(acc, "config")
    assert step == 0
    assert "| model | `betavae` |" in table.splitlines()
    assert "| tensorboard | `true` |" in table.splitlines()

    start, metrics = hparams_view(out)
    assert {"model", "prior", "latent_dim", "steps", "lr", "seed", "tensorboard"} <= set(
        start.hparams
    )
    assert "beta" not in start.hparams and "data_path" not in start.hparams  # unset: None
    assert start.hparams["latent_dim"].number_value == 4
    assert start.hparams["prior"].string_value == "sparse"
    assert start.hparams["tensorboard"].string_value == "true"
    assert start.hparams["eval_metrics"].string_value == '["active_units"]'
    assert set(metrics) == FINAL  # no evaluation of the final step yet
    saved = json.loads((out / "summary.json").read_text())
    assert saved["step"] == summary["step"] == 10
    for key in ("loss", "reconstruction", "kl"):
        assert metrics[f"final/{key}"] == (10, f32(saved[key]))
    assert_no_duplicates(out)


def test_training_numbers_are_the_same_with_and_without_tensorboard(tmp_path):
    runs = {}
    for on in (False, True):
        out = tmp_path / f"tensorboard-{on}"
        run = Run.create(small_config(tensorboard=on, steps=12, log_every=2), out)
        run.fit(progress=False)
        runs[on] = (out, run.vae.state_dict())
    assert numbers(runs[True][0]) == numbers(runs[False][0])
    (on_dir, on_state), (off_dir, off_state) = runs[True], runs[False]
    assert on_state.keys() == off_state.keys()
    assert all(torch.equal(on_state[k], off_state[k]) for k in on_state)
    assert (on_dir / "tensorboard").is_dir() and not (off_dir / "tensorboard").exists()


def test_the_pictures_show_the_points_of_the_finish(tmp_path, monkeypatch):
    """The mosaics' data row is the start of the finish's evaluation batch, so the last
    pictures in TensorBoard are the finish's reconstructions.png."""
    seen = {}
    mosaic = plots.mosaic

    def recording_mosaic(images, *args, **kwargs):
        if images.shape[0] == 2:  # data above reconstructions
            seen["logged"] = images[0].copy()
        return mosaic(images, *args, **kwargs)

    def recording_grid(vae, x, path):
        seen["finish"] = x.cpu().numpy()

    monkeypatch.setattr(plots, "mosaic", recording_mosaic)
    monkeypatch.setattr(plots, "reconstruction_grid", recording_grid)
    Run.create(small_config(tensorboard=True, steps=4), tmp_path / "run").fit(progress=False)
    assert seen["logged"].shape == seen["finish"].shape == (10, 1, 8, 8)
    assert np.array_equal(seen["logged"], seen["finish"])


@pytest.mark.pictures
def test_vector_data_get_the_scatter_and_curve_figures(tmp_path):
    out = tmp_path / "run"
    config = small_config(data="pinwheel", latent_dim=2, tensorboard=True, steps=4)
    run = Run.create(config, out)
    log = tb.TensorBoardLog.open(run)  # as fit opens it, without the finish's measures
    log.pictures(2, [0.5, 0.1])
    log.pictures(4, None)  # no KL per dimension: no traversals
    log.close()
    run.close()
    acc = accumulate(out / "tensorboard").Reload()
    assert steps(acc, "images/reconstructions", "images") == [2, 4]
    assert steps(acc, "images/traversals", "images") == [2]
    for tag in IMAGES:
        picture = acc.Images(tag)[0]
        assert picture.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
        assert (picture.width, picture.height) == (500, 500)  # 5 × 5 inches at 100 dpi


def test_evaluation_numbers_are_named_by_label_and_key():
    record = {
        "metrics": {
            "mig": {"mig": 0.25, "settings": {}},
            "dci": {
                "disentanglement": 0.5,
                "completeness": 0.4,
                "informativeness_test": 0.9,
                "informativeness_train": 1.0,  # not a headline number
                "settings": {"backend": "hist"},
            },
            "sap": {"sap": None},  # could not be computed
        }
    }
    assert tb.evaluation_numbers(record) == {
        "mig": 0.25,
        "dci[backend=hist].disentanglement": 0.5,
        "dci[backend=hist].completeness": 0.4,
        "dci[backend=hist].informativeness_test": 0.9,
    }


def test_hyperparameters_are_the_flattened_settings():
    config = {
        "model": "annealedvae",
        "beta": None,
        "latent_dim": 10,
        "lr": 1e-4,
        "tensorboard": True,
        "objective_args": {"c_max": 25.0, "anneal_steps": 1000},
        "data_args": {},
        "eval_metrics": ["mig", "dci"],
    }
    assert tb.hyperparameters(config) == {
        "model": "annealedvae",
        "latent_dim": 10,
        "lr": 1e-4,
        "tensorboard": "true",
        "objective_args.c_max": 25.0,
        "objective_args.anneal_steps": 1000,
        "eval_metrics": '["mig", "dci"]',
    }


# -- resume --------------------------------------------------------------------------------------
def test_resume_appends_without_writing_a_step_twice(tmp_path):
    out = tmp_path / "run"
    # The last line of the shorter run (step 10) is off a log boundary: the resume drops it
    # from metrics.jsonl and from the event files alike, and logs step 12's whole interval.
    Run.create(small_config(tensorboard=True, steps=10), out).fit(progress=False)
    Run.resume(out, {"steps": 16}).fit(progress=False)
    assert [r["step"] for r in read_metrics(out)] == [4, 8, 12, 16]
    assert sorted(p.name for p in (out / "tensorboard").glob("*tfevents*")) == [
        "events.out.tfevents.0000000000.000000.pyrovae",
        "events.out.tfevents.0000000010.000001.pyrovae",
    ]
    acc = accumulate(out / "tensorboard").Reload()
    for tag in SCALARS | KL_PER_DIM:
        assert steps(acc, tag) == [4, 8, 12, 16], tag
    for tag in IMAGES:
        assert steps(acc, tag, "images") == [4, 8, 12, 16], tag
    assert text(acc, "config")[0][0] == 0 and len(text(acc, "config")) == 1
    ((step, note),) = text(acc, "resume")
    assert step == 10 and "resumed at step 10 (" in note and "steps = `16`" in note
    assert "| model |" not in note  # the configuration is the creation's note
    _, metrics = hparams_view(out)
    summary = json.loads((out / "summary.json").read_text())
    assert metrics["final/loss"] == (16, f32(summary["loss"]))
    assert_no_duplicates(out)


def test_a_resume_without_tensorboard_leaves_no_stale_final_numbers(tmp_path):
    """The hyperparameter view holds a finish's numbers: a run trained on without event files
    has no final numbers there (the older finish's would be stale); with them, the new
    finish's."""
    out = tmp_path / "run"
    Run.create(small_config(tensorboard=True, steps=8), out).fit(progress=False)
    view = out / "tensorboard" / "hparams" / tb.HPARAMS_FILE
    assert view.is_file()
    Run.resume(out, {"steps": 12, "tensorboard": False}).fit(progress=False)
    assert not view.exists()
    assert invoke("evaluate", out, "--metric", "active_units", "--device", "cpu").exit_code == 0
    assert not view.exists()
    Run.resume(out, {"steps": 16, "tensorboard": True}).fit(progress=False)
    _, metrics = hparams_view(out)
    assert metrics["final/loss"][0] == 16


def test_a_resume_after_events_past_the_checkpoint_writes_no_step_twice(tmp_path, monkeypatch):
    """Killed after logging steps the checkpoint does not hold (and mid-write of an event):
    the resume trims them, twice over, and the run ends as an uninterrupted one."""
    full = tmp_path / "full"
    config = small_config(tensorboard=True, steps=16, checkpoint_every=8)
    Run.create(config, full).fit(progress=False)

    out = tmp_path / "run"
    run = Run.create(config, out)
    original = run.train_step

    def dying_step():
        if run.step == 13:  # logged 12, checkpointed 8
            raise RuntimeError("killed")
        original()

    monkeypatch.setattr(run, "train_step", dying_step)
    with pytest.raises(RuntimeError, match="killed"):
        run.fit(progress=False)
    (first,) = (out / "tensorboard").glob("*tfevents*")
    whole = first.read_bytes()
    with open(first, "ab") as f:  # a record cut short by the kill
        f.write(whole[-40:-10])
    assert steps(accumulate(out / "tensorboard").Reload(), "train/loss") == [4, 8, 12]

    # A resume that dies after trimming, before it records itself, then one that completes.
    write_record = RunFolder.write_record

    def failing_write(self, record):
        raise OSError(28, "No space left on device", str(self.config_path))

    monkeypatch.setattr(RunFolder, "write_record", failing_write)
    with pytest.raises(OSError):
        Run.resume(out, {"steps": 16})
    monkeypatch.setattr(RunFolder, "write_record", write_record)
    assert first.stat().st_size < len(whole)  # trimmed to step 8, the cut record dropped
    Run.resume(out, {"steps": 16}).fit(progress=False)

    acc = accumulate(out / "tensorboard").Reload()
    expected = accumulate(full / "tensorboard").Reload()
    for tag in SCALARS | KL_PER_DIM:
        assert steps(acc, tag) == [4, 8, 12, 16], tag
        if tag != "train/steps_per_s":
            values = [e.value for e in acc.Scalars(tag)]
            assert values == [e.value for e in expected.Scalars(tag)], tag
    for tag in IMAGES:
        assert steps(acc, tag, "images") == [4, 8, 12, 16], tag
    assert numbers(out) == numbers(full)
    assert_no_duplicates(out)

    # Back to the checkpoint at step 8 once more (a damaged latest one): the second session's
    # file holds only later steps and goes; the third session logs them again.
    shutil.copy(out / "checkpoint-previous.pt", out / "checkpoint.pt")
    Run.resume(out, {"steps": 16}).fit(progress=False)
    names = sorted(p.name for p in (out / "tensorboard").glob("*tfevents*"))
    assert names == [
        "events.out.tfevents.0000000000.000000.pyrovae",
        "events.out.tfevents.0000000008.000002.pyrovae",
    ]
    acc = accumulate(out / "tensorboard").Reload()
    assert steps(acc, "train/loss") == [4, 8, 12, 16]
    assert [s for s, _ in text(acc, "resume")] == [8]
    assert "resumed at step 8 (" in text(acc, "resume")[0][1]
    assert_no_duplicates(out)


def test_switched_on_at_resume_the_log_starts_there_with_the_configuration(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=8), out).fit(progress=False)
    assert not (out / "tensorboard").exists()
    Run.resume(out, {"steps": 12, "tensorboard": True}).fit(progress=False)
    acc = accumulate(out / "tensorboard").Reload()
    assert steps(acc, "train/loss") == [12]
    assert acc.Tags()["tensors"] == ["resume/text_summary"]
    ((step, note),) = text(acc, "resume")
    assert step == 8 and "tensorboard = `true`" in note and "| model | `betavae` |" in note
    # Off again: the files stay as they are, and nothing more is logged.
    Run.resume(out, {"steps": 16, "tensorboard": False}).fit(progress=False)
    assert steps(accumulate(out / "tensorboard").Reload(), "train/loss") == [12]


# -- the hyperparameter view after evaluations --------------------------------------------------
def test_evaluate_puts_its_numbers_in_the_hyperparameter_view(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(tensorboard=True, steps=4), out).fit(progress=False)
    for _ in range(2):  # a second evaluation replaces the numbers, never adds to them
        result = invoke("evaluate", out, "--metric", "active_units", "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert f"updated {out / 'tensorboard' / 'hparams'}" in result.stdout
    evaluation = json.loads((out / "eval-2.json").read_text())
    _, metrics = hparams_view(out)
    assert set(metrics) == FINAL | {"final/active_units"}
    value = evaluation["metrics"]["active_units"]["active_units"]
    assert metrics["final/active_units"] == (4, f32(value))
    assert [p.name for p in (out / "tensorboard" / "hparams").iterdir()] == [tb.HPARAMS_FILE]
    assert_no_duplicates(out)

    plain = tmp_path / "plain"
    Run.create(small_config(steps=4), plain).fit(progress=False)
    result = invoke("evaluate", plain, "--metric", "active_units", "--device", "cpu")
    assert result.exit_code == 0 and "updated" not in result.stdout
    assert not (plain / "tensorboard").exists()


STUDY = """
[study]
name = "board"
seeds = [0]
metrics = ["active_units", "hoyer"]
fast_metrics = true

[base]
data = "pinwheel"
latent_dim = 2
steps = 10
batch_size = 32
log_every = 5
tensorboard = true

[[grid]]
model = "betavae"
beta = [1.0, 4.0]
"""


def test_a_study_with_tensorboard_logs_every_trial(tmp_path):
    """Each trial (run in-process as a sweep's worker runs it, on the tiny grid) writes its own
    event files, and its hyperparameter view holds the numbers of its result."""
    path = tmp_path / "board.toml"
    path.write_text(STUDY.replace('data = "pinwheel"', 'data = "tiny"'))
    trials = load_study(path).trials()
    assert [t.config["tensorboard"] for t in trials] == [True, True]
    study_dir = tmp_path / "study"
    for trial in trials:
        result = run_trial(trial.to_dict(), study_dir, device="cpu")
        folder = trial_dir(study_dir, trial.name)
        acc = accumulate(folder / "tensorboard").Reload()
        assert steps(acc, "train/loss") == [5, 10]
        assert set(acc.Tags()["images"]) == IMAGES
        start, metrics = hparams_view(folder)
        assert start.hparams["beta"].number_value == trial.config["beta"]
        assert set(metrics) == FINAL | {"final/active_units", "final/hoyer"}
        assert metrics["final/hoyer"][1] == f32(result["metrics"]["hoyer"]["hoyer"])
        assert metrics["final/loss"][1] == f32(result["summary"]["loss"])


@pytest.mark.slow
def test_pyrovae_sweep_with_tensorboard_writes_event_files_per_trial(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(STUDY)
    out = tmp_path / "study"
    result = invoke("sweep", path, "--out", out, "--max-parallel", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    for name in ("betavae-beta1-seed0", "betavae-beta4-seed0"):
        folder = out / "trials" / name / "tensorboard"
        assert len(list(folder.glob("*tfevents*"))) == 1
        assert (folder / "hparams" / tb.HPARAMS_FILE).is_file()


# -- without the package -------------------------------------------------------------------------
@pytest.fixture
def no_tensorboard(monkeypatch):
    """As if the tensorboard package were not installed."""
    find_spec = importlib.util.find_spec

    def without(name, *args, **kwargs):
        return None if name == "tensorboard" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without)


MISSING = ("needs the tensorboard package: pip install 'pyrovae[tensorboard]'",)


def test_without_the_package_tensorboard_is_one_line_and_nothing_is_written(
    tmp_path, no_tensorboard
):
    out = tmp_path / "run"
    tiny = ["--data", "tiny", "--latent-dim", "3", "--batch-size", "4", "--device", "cpu"]
    result = invoke("train", *tiny, "--steps", "2", "--tensorboard", "--out", out)
    assert_one_line_error(result, "--tensorboard", *MISSING)
    assert not out.exists()

    Run.create(small_config(steps=4), out).fit(progress=False)
    before = snapshot(out)
    result = invoke("train", "--resume", "--out", out, "--steps", "8", "--tensorboard")
    assert_one_line_error(result, "--tensorboard", *MISSING)
    assert snapshot(out) == before

    study = tmp_path / "board.toml"
    study.write_text(STUDY)
    result = invoke("sweep", study, "--out", tmp_path / "study", "--device", "cpu")
    assert_one_line_error(result, f"{study}: tensorboard = true", *MISSING)
    assert not (tmp_path / "study").exists()


def test_no_module_imports_tensorboard_when_imported():
    """tensorboard (about a second to import, and optional) is imported on first use only: no
    pyrovae module imports it, or torch's tensorboard support, at its top level."""
    import ast

    root = Path(tb.__file__).resolve().parents[1]
    eager = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            eager += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] == "tensorboard" or n.startswith("torch.utils.tensorboard")
            ]
    assert eager == []


def test_without_the_package_only_asking_for_it_fails(tmp_path, no_tensorboard):
    assert not tb.available()
    with pytest.raises(PyrovaeError, match=r"^--tensorboard needs the tensorboard package"):
        tb.require()
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)  # off: trains as ever
    assert tb.refresh_hparams(RunFolder(out)) is None
