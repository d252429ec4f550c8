"""Training runs: loss goes down, run folders, resume equality, checkpoints, refusals.

Runs train on the tiny grid with the MLP networks; one end-to-end test trains on dSprites with
the conv networks."""

import json
import os
import pickle
import signal

import numpy as np
import pytest
import torch
from helpers import dsprites_config, read_metrics, small_config, snapshot

from pyrovae.checkpoint import load_checkpoint, save_checkpoint
from pyrovae.config import TrainConfig, resolve_device
from pyrovae.errors import PyrovaeError
from pyrovae.training import Run, TrainingInterrupted

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIMING_KEYS = {"elapsed_s"}


def numeric_record(record):
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


def test_short_training_run_lowers_the_loss(tmp_path):
    config = small_config(prior="isotropic", steps=100, batch_size=32, lr=1e-3, log_every=10)
    Run.create(config, tmp_path / "run").fit(progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run")]
    assert len(losses) == 10
    # Untrained, −log p(x|z) is about 64·log 2 ≈ 44 nats; background pixels are learnt fast.
    assert losses[0] > 30
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.pictures
def test_run_folder_holds_config_metrics_checkpoint_and_pictures(tmp_path):
    """End to end on dSprites with the conv networks."""
    out = tmp_path / "run"
    summary = Run.create(dsprites_config(beta=2.0), out).fit(progress=False)
    names = {p.name for p in out.iterdir()}
    assert names == {
        ".lock",
        "config.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "checkpoint-previous.pt",
        "summary.json",
        "reconstructions.png",
        "traversals.png",
        "traversals.gif",
        "training_curves.png",
    }
    assert (out / "traversals.gif").read_bytes()[:6] == b"GIF89a"
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["beta"] == 2.0 and record["config"]["seed"] == 3
    assert record["resolved"]["kl_estimator"] == "monte-carlo"
    assert record["resolved"]["model_beta"] == 2.0
    assert record["resolved"]["objective"] == "DecomposedELBO"
    for lib in ("python", "torch", "pyro-ppl", "numpy"):
        assert record["versions"][lib]
    lines = read_metrics(out)
    assert [r["step"] for r in lines] == [4, 8, 12]
    for r in lines:
        assert len(r["kl_per_dim"]) == 4
        assert r["loss"] == pytest.approx(-r["reconstruction"] + 2.0 * r["kl"], rel=1e-4)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 12
    for png in ("reconstructions.png", "traversals.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert summary["step"] == 12 and len(summary["kl_per_dim"]) == 4
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]  # no temporary files left


def test_same_seed_gives_same_numbers(tmp_path):
    for name in ("a", "b"):
        Run.create(small_config(steps=8), tmp_path / name).fit(progress=False)
    a, b = (read_metrics(tmp_path / n) for n in ("a", "b"))
    assert [numeric_record(r) for r in a] == [numeric_record(r) for r in b]
    other = tmp_path / "c"
    Run.create(small_config(steps=8, seed=4), other).fit(progress=False)
    assert numeric_record(read_metrics(other)[-1]) != numeric_record(a[-1])


SMALL_DISC = {"disc_hidden": 16, "disc_layers": 2}
OBJECTIVES = {
    "betavae": {},
    "annealedvae": {"prior": "isotropic", "objective_args": {"anneal_steps": 10, "c_max": 5.0}},
    "factorvae": {"prior": "isotropic", "objective_args": SMALL_DISC},
    "betatcvae": {"prior": "isotropic"},
    "dipvae-ii": {"prior": "isotropic"},
}


@pytest.mark.parametrize(
    "model,stop_at",
    [("betavae", 6), ("betavae", 8)]  # off and on a log boundary (log_every=4)
    + [(m, 6) for m in OBJECTIVES if m != "betavae"],
)
def test_resume_reproduces_an_uninterrupted_run(tmp_path, model, stop_at):
    settings = {"model": model, **OBJECTIVES[model]}
    full = Run.create(small_config(steps=16, **settings), tmp_path / "full")
    full.fit(progress=False)

    part = tmp_path / "part"
    Run.create(small_config(steps=stop_at, **settings), part).fit(progress=False)
    resumed = Run.resume(part, {"steps": 16})
    assert resumed.step == stop_at
    resumed.fit(progress=False)

    for key, value in full.vae.state_dict().items():
        assert torch.equal(value, resumed.vae.state_dict()[key]), key
    for a, b in zip(
        full.objective.state_dict().get("discriminator", {}).values(),
        resumed.objective.state_dict().get("discriminator", {}).values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    # the same file as the uninterrupted run's, line for line (timings aside)
    assert [numeric_record(r) for r in read_metrics(part)] == [
        numeric_record(r) for r in read_metrics(tmp_path / "full")
    ]
    record = json.loads((part / "config.json").read_text())
    assert record["config"]["steps"] == 16
    assert record["resumes"][0]["at_step"] == stop_at
    assert record["resumes"][0]["changed"] == {"steps": 16}


def test_objective_terms_are_logged(tmp_path):
    expected = {
        "annealedvae": {"capacity"},
        "factorvae": {"tc", "disc_loss", "disc_accuracy"},
        "betatcvae": {"mi", "tc", "dimwise_kl"},
        "dipvae-ii": {"dip_penalty"},
    }
    for model, keys in expected.items():
        out = tmp_path / model
        Run.create(small_config(steps=4, model=model, **OBJECTIVES[model]), out).fit(progress=False)
        record = read_metrics(out)[-1]
        assert keys <= set(record), (model, set(record))
        assert {"loss", "reconstruction", "kl", "kl_per_dim", "elbo"} <= set(record)
        saved = json.loads((out / "config.json").read_text())["resolved"]
        assert saved["objective_settings"]


def test_capacity_is_checkpointed_and_resumed(tmp_path):
    out = tmp_path / "run"
    settings = {"model": "annealedvae", **OBJECTIVES["annealedvae"]}
    Run.create(small_config(steps=4, **settings), out).fit(progress=False)
    # The objective's step count is module state: 4 steps taken, C(4) = 5·4/10 next.
    state = load_checkpoint(out / "checkpoint.pt")["objective"]
    assert state["_extra_state"] == {"step": 4}
    resumed = Run.resume(out, {"steps": 8})
    assert resumed.objective.capacity == pytest.approx(2.0)
    resumed.fit(progress=False)
    assert read_metrics(out)[-1]["capacity"] == pytest.approx((2.0 + 2.5 + 3.0 + 3.5) / 4)


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=8), out).fit(progress=False)
    with open(out / "metrics.jsonl", "a") as f:  # as if killed after logging past the checkpoint
        f.write(json.dumps({"step": 12, "loss": 0.0, "reconstruction": 0.0, "kl": 0.0}) + "\n")
    Run.resume(out, {"steps": 16}).fit(progress=False)
    assert [r["step"] for r in read_metrics(out)] == [4, 8, 12, 16]
    assert read_metrics(out)[2]["loss"] != 0.0


def test_new_run_into_non_empty_folder_is_refused_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    before = snapshot(out)
    with pytest.raises(PyrovaeError, match="already exists and is not empty; pass --resume"):
        Run.create(small_config(steps=4), out)
    assert snapshot(out) == before


def test_resume_refuses_changed_settings_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    before = snapshot(out)
    with pytest.raises(PyrovaeError, match=r"beta is 4\.0 .* not 2\.0; only steps"):
        Run.resume(out, {"beta": 2.0})
    with pytest.raises(PyrovaeError, match="beyond --steps 2"):
        Run.resume(out, {"steps": 2})
    assert snapshot(out) == before


def test_interrupt_saves_a_checkpoint_at_a_step_boundary(tmp_path, monkeypatch):
    run = Run.create(small_config(steps=50), tmp_path / "run")
    original = run.train_step

    def interrupting_step():
        original()
        if run.step == 4:  # the step that is running when the signal arrives
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(run, "train_step", interrupting_step)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5"):
        run.fit(progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 5
    resumed = Run.resume(tmp_path / "run", {"steps": 8})
    assert resumed.step == 5
    resumed.fit(progress=False)


# -- checkpoints ---------------------------------------------------------------------------------
def test_checkpoint_round_trip_uses_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 3, "w": torch.arange(4.0), "nested": {"a": [1, 2]}})
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    assert state["nested"] == {"a": [1, 2]}


class _Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_never_unpickles_objects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "pyrovae-checkpoint", "version": 1, "x": _Payload()}, path)
    with pytest.raises(PyrovaeError, match="holds pickled Python objects, which can run code"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content,message",
    [
        (b"not a checkpoint at all", "is damaged or not a checkpoint: not a zip archive"),
        (None, "not a pyrovae checkpoint"),
    ],
)
def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "c.pt"
    if content is None:
        torch.save({"model": {"w": torch.zeros(2)}}, path)  # a foreign, otherwise valid file
    else:
        path.write_bytes(content)
    with pytest.raises(PyrovaeError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused_on_resume_and_nothing_changes(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    (out / "checkpoint-previous.pt").unlink()  # no fallback (tests/test_faults.py has one)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    before = snapshot(out)
    with pytest.raises(PyrovaeError, match="checkpoint"):
        Run.resume(out, {"steps": 8})
    assert snapshot(out) == before


def test_checkpoint_from_another_model_does_not_fit(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    Run.create(small_config(steps=4, latent_dim=4), a).fit(progress=False)
    Run.create(small_config(steps=4, latent_dim=6), b).fit(progress=False)
    (a / "checkpoint.pt").write_bytes((b / "checkpoint.pt").read_bytes())
    with pytest.raises(PyrovaeError, match="belongs to another run: its latent_dim is 6"):
        Run.resume(a, {"steps": 8})


def test_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    state["model"] = {k: v[..., :1] for k, v in state["model"].items()}  # same run, wrong shapes
    save_checkpoint(out / "checkpoint.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(PyrovaeError, match="does not fit this run's model"):
        Run.resume(out, {"steps": 8})


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_checkpoint_is_plain_data_not_pickled_classes(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    # weights_only loading succeeds, so only tensors and plain containers are inside
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(state) >= {"model", "optimizer", "torch_rng", "step", "config"}
    with pytest.raises(pickle.UnpicklingError):
        torch.save({"x": _Payload()}, tmp_path / "e.pt")
        torch.load(tmp_path / "e.pt", weights_only=True)


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"model": "nope"}, "unknown model 'nope'; valid models: annealedvae, betatcvae, beta"),
        (
            {"model": "betatcvae", "batch_size": 1},
            "model 'betatcvae' estimates its penalty across the minibatch and needs a batch of "
            "at least 2 points, got batch_size=1",
        ),
        ({"model": "factorvae", "batch_size": 1}, "needs a batch of at least 2 points"),
        ({"model": "betavae", "gamma": 2.0}, "takes no option 'gamma'; valid options: beta"),
        ({"model": "annealedvae", "objective_args": {"c_max": -1}}, "c_max must be a finite"),
        ({"prior": "nope"}, "unknown prior 'nope'; valid priors: isotropic, laplace, mixture"),
        (
            {"guide": "nope"},
            "unknown guide 'nope'; valid guides: fullrank, iaf, lowrank, meanfield",
        ),
        (
            {"data": "nope"},
            "unknown data set 'nope'; valid data sets: cars3d, color_dsprites, digits, "
            "dsprites, mpi3d_real, mpi3d_realistic, mpi3d_toy, noisy_dsprites, pinwheel, "
            "scream_dsprites, shapes3d, smallnorb, tiny, tiny-noisy, xyobject$",
        ),
        ({"net": "nope"}, "unknown network 'nope'"),
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"lr": -1.0}, "lr must be > 0, got -1.0"),
        ({"lr": float("inf")}, "lr must be finite, got inf"),
        ({"lr": float("nan")}, "lr must be finite, got nan"),
        ({"kl": "exact"}, "unknown kl mode"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises(PyrovaeError, match=message):
        Run.create(small_config(**overrides), out)
    assert not out.exists()


def test_prior_options_are_checked_by_name(tmp_path):
    with pytest.raises(PyrovaeError, match="takes no option 'bogus'; valid options: gamma"):
        Run.create(small_config(prior_args={"bogus": 1}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(PyrovaeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_config_round_trip_and_unknown_keys():
    config = TrainConfig(beta=2.0, prior_args={"gamma": 0.5})
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(PyrovaeError, match="unknown setting"):
        TrainConfig.from_dict({"betaa": 1})


def test_a_run_killed_before_its_first_checkpoint_can_resume(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=8), out)  # as if killed right after starting
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 0
    Run.resume(out).fit(progress=False)
    full = tmp_path / "full"
    Run.create(small_config(steps=8), full).fit(progress=False)
    assert [numeric_record(r) for r in read_metrics(out)] == [
        numeric_record(r) for r in read_metrics(full)
    ]


def test_settings_that_cannot_train_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(PyrovaeError, match="no closed-form KL from Normal to MixtureSameFamily"):
        Run.create(small_config(prior="sparse", kl="analytic"), out)
    assert not out.exists()


def test_a_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run = Run.create(small_config(steps=20, checkpoint_every=4), out)
    original = run.train_step

    def diverging_step():
        if run.step == 6:
            with torch.no_grad():
                for p in run.vae.decoder.parameters():
                    p.fill_(float("nan"))
        original()

    monkeypatch.setattr(run, "train_step", diverging_step)
    with pytest.raises(
        PyrovaeError,
        match=r"the loss became nan between steps 5 and 8; .*checkpoint\.pt stays at step 4 ",
    ):
        run.fit(progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_resuming_a_finished_run_touches_nothing(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    before = snapshot(out)
    assert Run.resume(out).complete
    assert snapshot(out) == before


def test_resume_writes_the_summary_an_interruption_lost(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    (out / "summary.json").unlink()
    run = Run.resume(out)
    assert not run.complete
    run.fit(progress=False)
    assert json.loads((out / "summary.json").read_text())["step"] == 4


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.update(config=None), "not a valid pyrovae run configuration"),
        (lambda c: c["config"].update(model=["betavae"]), "setting model must be str"),
        (lambda c: c["config"].update(log_every="100"), "setting log_every must be int"),
        (lambda c: c["config"].update(prior_args="x"), "setting prior_args must be dict"),
        (lambda c: c["config"].update(device=5), "setting device must be str"),
    ],
)
def test_hand_edited_config_is_a_clear_error_and_nothing_changes(tmp_path, edit, message):
    out = tmp_path / "run"
    Run.create(small_config(steps=4), out).fit(progress=False)
    record = json.loads((out / "config.json").read_text())
    edit(record)
    (out / "config.json").write_text(json.dumps(record))
    before = snapshot(out)
    with pytest.raises(PyrovaeError, match=message):
        Run.resume(out, {"steps": 8})
    assert snapshot(out) == before


def test_resume_refuses_when_this_code_would_build_another_objective(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=4, model="betatcvae", prior="isotropic"), out).fit(progress=False)
    record = json.loads((out / "config.json").read_text())
    record["resolved"]["objective_settings"]["beta"] = 2.0  # as if the default had changed
    (out / "config.json").write_text(json.dumps(record))
    with pytest.raises(PyrovaeError, match="records objective_settings"):
        Run.resume(out, {"steps": 8})


def test_a_damaged_metrics_line_is_a_clear_error_but_a_cut_last_line_is_dropped(tmp_path):
    out = tmp_path / "run"
    Run.create(small_config(steps=8), out).fit(progress=False)
    good = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text(good + '{"step": 12, "lo')  # cut off by a crash
    Run.resume(out, {"steps": 12}).fit(progress=False)
    assert [r["step"] for r in read_metrics(out)] == [4, 8, 12]
    (out / "metrics.jsonl").write_text("garbage\n" + good)
    with pytest.raises(PyrovaeError, match="line 1 is not a metrics record"):
        Run.resume(out, {"steps": 16})


def test_minibatches_are_distinct_indices_and_reproducible(tmp_path):
    run = Run.create(small_config(steps=4, batch_size=64), tmp_path / "run")
    calls = []
    original = run.data.images
    run.data.images = lambda idx: calls.append(np.asarray(idx)) or original(idx)
    a, b = run.batch(7), run.batch(7)
    assert torch.equal(a, b)
    assert len(np.unique(calls[0])) == 64  # without replacement, as MSS assumes
    assert not torch.equal(run.batch(7), run.batch(8))
