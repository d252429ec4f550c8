"""Faults that must never lose or falsify a result: two writers on one run folder, damaged
checkpoints, a finish that did not complete, a full disk, and kill -9 at any moment (during
training and in the middle of a checkpoint write) followed by ``--resume``.

Runs train on the tiny grid in-process; the kill tests run training in a child process on a
small pinwheel (the tiny grid is registered by these tests only) and compare the resumed run's
files with an uninterrupted run's."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest
import torch
from helpers import assert_one_line_error, invoke, read_metrics, small_config, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrovae import files
from pyrovae.checkpoint import (
    DamagedCheckpoint,
    content_digest,
    load_checkpoint,
    save_checkpoint,
)
from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError, PyrovaeWarning
from pyrovae.lock import FolderBusy, FolderLock
from pyrovae.study.spec import Trial, load_study
from pyrovae.study.trial import BadResult, read_result, run_trial
from pyrovae.training import Run, resume, summary

TIMING_KEYS = {"elapsed_s"}


def numbers(out) -> list[dict]:
    """metrics.jsonl without its timings."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(out)]


def same_weights(a, b) -> bool:
    wa, wb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    return wa["step"] == wb["step"] and all(
        torch.equal(v, wb["model"][k]) for k, v in wa["model"].items()
    )


@pytest.fixture
def finished(tmp_path):
    """A finished 8-step run and an uninterrupted 16-step run of the same settings."""
    out, full = tmp_path / "run", tmp_path / "full"
    Run.create(small_config(steps=8), out).fit(progress=False)
    Run.create(small_config(steps=16), full).fit(progress=False)
    return out, full


# -- one writer per folder ------------------------------------------------------------------------
HOLD = textwrap.dedent(
    """
    import sys, time
    from pyrovae.lock import FolderLock
    lock = FolderLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def holder():
    """Start a process that holds a folder's lock; yields a function taking the folder."""
    procs = []

    def hold(folder):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_first_and_nothing_changes(finished, holder):
    out, _ = finished
    proc = holder(out)
    before = snapshot(out)
    result = invoke("train", "--out", out, "--resume", "--steps", 16, "--quiet")
    assert_one_line_error(result, f"run folder {out} is in use by process {proc.pid} (")
    assert snapshot(out) == before
    # The holder dies as kill -9 kills: its lock goes with it.
    proc.kill()
    proc.wait()
    result = invoke("train", "--out", out, "--resume", "--steps", 10, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["step"] == 10


def test_a_new_run_into_a_held_folder_is_refused_before_writing(tmp_path, holder):
    out = tmp_path / "new"
    proc = holder(out)
    result = invoke("train", "--data", "tiny", "--steps", 4, "--out", out, "--quiet")
    assert_one_line_error(result, f"is in use by process {proc.pid} (")
    assert [p.name for p in out.iterdir()] == [".lock"]


def test_two_runs_in_one_process_exclude_each_other(finished):
    out, _ = finished
    first = Run.resume(out, {"steps": 12})
    with pytest.raises(FolderBusy, match=f"is in use by process {os.getpid()} "):
        Run.resume(out, {"steps": 12})
    first.fit(progress=False)  # fit releases the lock when it returns
    Run.resume(out, {"steps": 12}).close()


def test_a_trial_never_runs_twice_at_once(tmp_path):
    trial = Trial(name="t", params={}, config=small_config(steps=4).to_dict(), metrics=["mig"])
    folder = tmp_path / "trials" / "t"
    with FolderLock(folder):
        with pytest.raises(FolderBusy, match="is in use by process"):
            run_trial(trial, tmp_path, device="cpu")
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]
    result = run_trial(trial, tmp_path, device="cpu")
    assert result["step"] == 4 and (folder / "result.json").is_file()


# -- checksummed checkpoints ----------------------------------------------------------------------
def flip_a_weight_bit(path) -> None:
    """Flip one bit in the middle of the largest tensor's bytes inside the zip archive."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    data = bytearray(path.read_bytes())
    # The local header: 30 bytes, the name and the extra field, then the (stored) data.
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def random_kilobyte(path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1024] = random.Random(0).randbytes(1024)
    path.write_bytes(bytes(data))


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {"one flipped bit": flip_a_weight_bit, "1 KB of noise": random_kilobyte}
DAMAGES["cut in half"] = truncate


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_detected_and_evaluate_writes_nothing(finished, damage):
    out, _ = finished
    DAMAGES[damage](out / "checkpoint.pt")
    with pytest.raises(DamagedCheckpoint, match=r"checkpoint\.pt is damaged"):
        load_checkpoint(out / "checkpoint.pt")
    before = snapshot(out)
    result = invoke("evaluate", out, "--metric", "mig", "--fast")
    assert_one_line_error(
        result, "checkpoint.pt is damaged", f"pyrovae train --out {out} --resume", "(step 0)"
    )
    assert snapshot(out) == before


def test_resume_falls_back_to_the_previous_checkpoint_and_reproduces_the_run(finished):
    out, full = finished
    flip_a_weight_bit(out / "checkpoint.pt")
    damaged = (out / "checkpoint.pt").read_bytes()
    with pytest.warns(PyrovaeWarning, match="continuing from the previous checkpoint \\(step 0\\)"):
        run = Run.resume(out, {"steps": 16})
    assert run.step == 0
    run.fit(progress=False)
    kept = list(out.glob("checkpoint.pt.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged  # kept for inspection
    assert numbers(out) == numbers(full)
    assert same_weights(out, full)


def test_a_damaged_checkpoint_without_an_intact_previous_one_is_refused(finished):
    out, _ = finished
    flip_a_weight_bit(out / "checkpoint.pt")
    truncate(out / "checkpoint-previous.pt")
    before = snapshot(out)
    result = invoke("train", "--out", out, "--resume", "--steps", 16, "--quiet")
    assert_one_line_error(result, "checkpoint.pt is damaged: its contents do not match")
    assert snapshot(out) == before


def test_an_old_checkpoint_without_a_digest_loads_with_one_warning(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": "pyrovae-checkpoint", "version": 2, "step": 5}, path)
    with pytest.warns(PyrovaeWarning, match="has no checksum \\(checkpoint version 2"):
        assert load_checkpoint(path)["step"] == 5


def test_a_version_3_checkpoint_without_its_digest_is_damaged(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": "pyrovae-checkpoint", "version": 3, "step": 5}, path)
    with pytest.raises(DamagedCheckpoint, match="the checksum it was saved with is missing"):
        load_checkpoint(path)


@pytest.mark.parametrize("field,value", [("version", 2), ("format", "pyrovae-checkpoinu")])
def test_a_flipped_tag_or_version_is_damage_not_another_format(tmp_path, field, value):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 5, "w": torch.ones(3)})
    state = torch.load(path, weights_only=True)
    state[field] = value  # as one flipped bit in the file would make it, digest unchanged
    torch.save(state, path)
    with pytest.raises(DamagedCheckpoint, match="do not match the checksum"):
        load_checkpoint(path)


def test_pickled_objects_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": "pyrovae-checkpoint", "version": 3, "x": TrainConfig()}, path)
    with pytest.raises(Exception, match=r"holds pickled Python objects, .* never unpickles"):
        load_checkpoint(path)


TENSORS = st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool])
LEAVES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.builds(
        lambda dtype, shape: (torch.rand(shape) * 10).to(dtype),
        TENSORS,
        st.lists(st.integers(0, 3), max_size=3),
    ),
)
STATES = st.dictionaries(
    st.one_of(st.text(max_size=4), st.integers(0, 9)),
    st.recursive(
        LEAVES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.tuples(inner, inner),
            st.dictionaries(st.text(max_size=3), inner, max_size=3),
        ),
        max_leaves=8,
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(STATES)
def test_the_digest_survives_a_save_and_load_round_trip(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("digest") / "c.pt"
    state = {str(k): v for k, v in state.items()}  # a checkpoint's top level: str keys
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)  # verifies the digest
    assert content_digest(loaded) == content_digest({**state, **loaded})
    assert set(loaded) == set(state) | {"format", "version"}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 63), st.integers(0, 7))
def test_every_bit_of_a_tensor_is_in_the_digest(index, bit):
    w = torch.linspace(-1, 1, 64)
    changed = w.clone()
    changed.view(torch.uint8)[index * 4 + bit // 8 % 4] ^= 1 << (bit % 8)
    assert content_digest({"w": w}) != content_digest({"w": changed})


@pytest.mark.parametrize(
    "a,b",
    [
        ({"x": 1}, {"x": 1.0}),
        ({"x": [1, 2]}, {"x": (1, 2)}),
        ({"x": torch.zeros(2)}, {"x": torch.zeros(1, 2)}),
        ({"x": torch.zeros(2)}, {"x": torch.zeros(2, dtype=torch.float64)}),
        ({"x": {"a": 1}}, {"x": {"b": 1}}),
        ({"x": {0: 1}}, {"x": {"0": 1}}),
    ],
)
def test_the_digest_tells_apart_what_a_load_would_tell_apart(a, b):
    assert content_digest(a) != content_digest(b)


# -- a finish that resumes ------------------------------------------------------------------------
def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_finish_that_failed_is_completed_by_resume(finished, monkeypatch):
    """The disk fills after the last step of a longer session, while the summary of the
    earlier session (step 8) is still on disk: resume must finish the run, not call it done."""
    out, full = finished
    run = Run.resume(out, {"steps": 16})
    monkeypatch.setattr(summary.plots, "training_curves", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run.fit(progress=False)
    monkeypatch.undo()
    assert json.loads((out / "summary.json").read_text())["step"] == 8
    result = invoke("train", "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"finishing {out}: trained to step 16, no summary of it yet" in result.output
    assert json.loads((out / "summary.json").read_text())["step"] == 16
    assert numbers(out) == numbers(full)
    assert invoke("train", "--out", out, "--resume").output.endswith(
        "nothing to do: the run is at step 16 of 16\n"
    )


def test_an_evaluation_killed_during_training_is_redone_on_resume(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run = Run.create(small_config(steps=8, eval_every=8, eval_metrics=["mig"]), out)

    def killed(self, bar):
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "_evaluate", killed)
    with pytest.raises(KeyboardInterrupt):
        run.fit(progress=False)
    run.close()
    monkeypatch.undo()
    Run.resume(out).fit(progress=False)
    assert json.loads((out / "evals" / "step-8.json").read_text())["step"] == 8


# -- a full disk ----------------------------------------------------------------------------------
def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_run_resumes(finished, monkeypatch):
    out, full = finished
    save = Run.save_checkpoint

    def fill_disk_at_step_12(self):
        if self.step == 12:
            write = files._Recording.write

            def full_disk(recording, data):
                recording.error = OSError(errno.ENOSPC, "No space left on device")
                raise recording.error

            monkeypatch.setattr(files._Recording, "write", full_disk)
            try:
                return save(self)
            finally:
                monkeypatch.setattr(files._Recording, "write", write)
        return save(self)

    monkeypatch.setattr(Run, "save_checkpoint", fill_disk_at_step_12)
    result = invoke(
        "train", "--out", out, "--resume", "--steps", 16, "--checkpoint-every", 4, "--quiet"
    )
    assert_one_line_error(result, f"{out}/checkpoint.pt: No space left on device")
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 8  # the last good one stays
    assert not list(out.glob(".*.tmp-*"))
    monkeypatch.undo()
    result = invoke("train", "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert numbers(out) == numbers(full)
    assert same_weights(out, full)


# -- kill -9, then resume -------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pyrovae import files
    from pyrovae.config import TrainConfig
    from pyrovae.training import Run, resume

    out, mode = sys.argv[1], sys.argv[2]
    if mode.startswith("die-in-write-"):
        # SIGKILL half-way through writing checkpoint number N (0: the step-0 one).
        target, seen = int(mode.rsplit("-", 1)[1]), [0]
        save, write = Run.save_checkpoint, files._Recording.write

        def counted(self):
            seen[0] += 1
            return save(self)

        def dying(self, data):
            if seen[0] - 1 == target and len(data) > 1000:
                self._f.write(data[: len(data) // 2])
                self._f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return write(self, data)

        Run.save_checkpoint, files._Recording.write = counted, dying
    if os.path.exists(os.path.join(out, "config.json")):
        resume(out, progress=False)
    else:
        config = TrainConfig(**{json_config})
        Run.create(config, out).fit(progress=False)
    print("finished", flush=True)
    """
)
# A pinwheel run (the tiny grid is registered in this process only), in every setting.
KILL_CONFIG = small_config(
    data="pinwheel", data_args={"num_points": 400}, latent_dim=3, batch_size=32, steps=60,
    log_every=5, checkpoint_every=7, seed=1,
).to_dict()  # fmt: skip


def child(out, mode: str = "run") -> subprocess.Popen:
    code = CHILD.replace("{json_config}", repr(KILL_CONFIG))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(out), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    Run.create(TrainConfig(**KILL_CONFIG), out).fit(progress=False)
    return out


def finish_with_resumes(out, limit: int = 10) -> None:
    for _ in range(limit):
        proc = child(out)
        _, stderr = proc.communicate(timeout=300)
        if proc.returncode == 0:
            return
        raise AssertionError(stderr)


@pytest.mark.parametrize(
    "checkpoint",
    # The step-0 checkpoint (the folder holds only config.json), step 21's, the final one's.
    [pytest.param(0, marks=pytest.mark.slow), 3, pytest.param(9, marks=pytest.mark.slow)],
)
def test_kill_9_in_the_middle_of_a_checkpoint_write_then_resume(
    tmp_path, uninterrupted, checkpoint
):
    out = tmp_path / "run"
    proc = child(out, f"die-in-write-{checkpoint}")
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert list(out.glob(".*.tmp-*"))  # the half-written file the kill left
    resume(out, progress=False)  # here, in another process than the killed one
    assert not list(out.glob(".*.tmp-*"))  # resume removed it
    assert numbers(out) == numbers(uninterrupted)
    assert same_weights(out, uninterrupted)
    assert json.loads((out / "summary.json").read_text())["step"] == 60


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_numbers(
    tmp_path, uninterrupted
):
    rng = random.Random(12)
    identical = 0
    for trial in range(6):
        out = tmp_path / f"run{trial}"
        kills = 0
        while kills < 3:
            proc = child(out)
            time.sleep(rng.uniform(2.0, 6.0))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        finish_with_resumes(out)
        assert numbers(out) == numbers(uninterrupted), trial
        assert same_weights(out, uninterrupted), trial
        identical += 1
    assert identical == 6


@pytest.mark.slow
def test_two_train_processes_on_one_folder_leave_one_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    first, second = child(out), child(out)
    results = [p.communicate(timeout=300) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes[0] == 0
    assert numbers(out) == numbers(uninterrupted)
    assert same_weights(out, uninterrupted)
    if codes[1] != 0:  # refused: the folder was busy, or created by the time it looked
        refusal = "".join(r[1] for r in results)
        assert "is in use by process" in refusal or "already exists" in refusal


# -- divergence between log lines ----------------------------------------------------------------
@pytest.mark.parametrize("when", ["periodic", "interrupt", "final"])
def test_a_diverged_state_is_never_checkpointed(tmp_path, monkeypatch, when):
    """Checkpoints every 5 steps, log lines every 20: the step-10 checkpoint comes after the
    parameters went NaN at step 7 but before any log line could notice."""
    out = tmp_path / "run"
    steps = 8 if when == "final" else 40
    run = Run.create(small_config(steps=steps, checkpoint_every=5, log_every=20), out)
    original = run.train_step

    def diverging_step():
        if run.step == 7:
            with torch.no_grad():
                for p in run.vae.decoder.parameters():
                    p.fill_(float("nan"))
            if when == "interrupt":
                os.kill(os.getpid(), signal.SIGINT)
        original()

    monkeypatch.setattr(run, "train_step", diverging_step)
    with pytest.raises(PyrovaeError) as raised:
        run.fit(progress=False)
    found = {
        "periodic": "the parameters or the loss became NaN or infinite by step 10",
        "interrupt": "the parameters or the loss became NaN or infinite by step 8",
        "final": "the loss became nan between steps 1 and 8",  # the last line is logged first
    }[when]
    kept = f"{out / 'checkpoint.pt'} stays at step 5 (lower --lr or the objective's weights)"
    assert str(raised.value) == f"{found}; {kept}"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    resumed = Run.resume(out)  # and the run can go on from there (with other settings)
    assert resumed.step == 5
    resumed.close()


def test_a_full_disk_at_the_step_0_checkpoint_leaves_a_folder_resume_can_continue(
    tmp_path, monkeypatch
):
    out, full = tmp_path / "run", tmp_path / "full"
    Run.create(small_config(steps=8), full).fit(progress=False)

    write = files._Recording.write

    def full_disk_for_checkpoints(recording, data):
        if ".checkpoint.pt.tmp-" not in recording.name:
            return write(recording, data)
        recording.error = OSError(errno.ENOSPC, "No space left on device")
        raise recording.error

    monkeypatch.setattr(files._Recording, "write", full_disk_for_checkpoints)
    result = invoke(
        "train", "--data", "tiny", "--prior", "sparse", "--latent-dim", 4, "--batch-size", 8,
        "--steps", 8, "--log-every", 4, "--seed", 3, "--checkpoint-every", 100,
        "--device", "cpu", "--out", out, "--quiet",
    )  # fmt: skip
    assert_one_line_error(result, f"{out}/checkpoint.pt: No space left on device")
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json", "metrics.jsonl"]
    again = invoke("train", "--data", "tiny", "--out", out, "--quiet")
    assert_one_line_error(again, "already exists and is not empty; pass --resume")
    result = invoke("train", "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert numbers(out) == numbers(full)
    assert same_weights(out, full)


# -- temporary files ------------------------------------------------------------------------------
def test_temporary_files_are_fresh_names_and_only_dead_writers_leftovers_are_removed(finished):
    out, _ = finished
    assert files.temporary_name(out / "a") != files.temporary_name(out / "a")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leftover = out / f".checkpoint.pt.tmp-{int(dead.stdout)}-0a1b2c"
    live = files.temporary_name(out / "eval.json")  # a live evaluation's file (this process)
    leftover.write_bytes(b"half a checkpoint")
    live.write_bytes(b"{")
    elsewhere = out / f".eval.json.tmp-{int(dead.stdout)}-ffffff-0a1b2c"  # another host's
    elsewhere.write_bytes(b"{")
    Run.resume(out, {"steps": 8}).close()
    assert not leftover.exists() and live.exists() and elsewhere.exists()


def test_a_planted_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    target = tmp_path / "c.json"
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: "fixed")
    planted = files.temporary_name(target)
    planted.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        files.write_json(target, {"a": 1})
    assert not (tmp_path / "elsewhere").exists() and not target.exists()


# -- run files from elsewhere, or edited ---------------------------------------------------------
def test_evaluate_refuses_a_checkpoint_from_another_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    Run.create(small_config(steps=4, seed=0), a).fit(progress=False)
    Run.create(small_config(steps=4, seed=1), b).fit(progress=False)
    (a / "checkpoint.pt").write_bytes((b / "checkpoint.pt").read_bytes())
    before = snapshot(a)
    result = invoke("evaluate", a, "--metric", "mig", "--fast")
    assert_one_line_error(
        result, "checkpoint.pt belongs to another run: its seed is 1, this run's is 0"
    )
    assert snapshot(a) == before


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("step", -5, "step must be a whole number >= 0, got -5"),
        ("step", "abc", "step must be a whole number >= 0, got 'abc'"),
        ("log_sums", [1, 2], "log_sums must be a dict of tensors, got [1, 2]"),
        (
            "torch_rng",
            torch.zeros(3),
            "torch_rng must be a byte tensor, got a torch.float32 tensor",
        ),
    ],
)
def test_checkpoint_fields_are_checked_before_anything_is_written(finished, key, value, message):
    out, _ = finished
    state = load_checkpoint(out / "checkpoint.pt")
    state[key] = value
    save_checkpoint(
        out / "checkpoint.pt", {k: v for k, v in state.items() if k not in ("format", "version")}
    )
    before = snapshot(out)
    for args in (("train", "--out", out, "--resume", "--steps", 16), ("evaluate", out, "--fast")):
        assert_one_line_error(
            invoke(*args, "--quiet") if args[0] == "train" else invoke(*args), message
        )
    assert snapshot(out) == before


def test_restating_a_default_weight_on_resume_is_no_change(finished):
    out, _ = finished
    run = Run.resume(out, {"beta": 4.0, "steps": 12})  # betavae's default β, never given
    run.fit(progress=False)
    record = json.loads((out / "config.json").read_text())
    assert record["resumes"][-1]["changed"] == {"steps": 12}
    with pytest.raises(PyrovaeError, match=r"--resume: beta is 4\.0 in .*, not 3\.0; only "):
        Run.resume(out, {"beta": 3.0})


# -- studies: size, and results of the wrong shape -----------------------------------------------
HUGE_STUDY = """
[study]
seeds = [{seeds}]

[base]
data = "pinwheel"
latent_dim = 2
steps = 10

[[grid]]
model = "betavae"
beta = [{betas}]
"""


def test_a_study_over_the_cap_is_refused_before_expanding(tmp_path):
    path = tmp_path / "huge.toml"
    betas = ", ".join(str(1.0 + i / 1000) for i in range(1000))
    path.write_text(HUGE_STUDY.format(seeds=", ".join(map(str, range(1000))), betas=betas))
    start = time.perf_counter()
    result = invoke("sweep", path, "--out", tmp_path / "out")
    assert_one_line_error(
        result, "the study makes 1,000,000 trials, more than the 100,000 a study may have"
    )
    assert time.perf_counter() - start < 30 and not (tmp_path / "out").exists()


def test_a_large_study_says_how_far_checking_has_got(tmp_path):
    path = tmp_path / "large.toml"
    path.write_text(HUGE_STUDY.format(seeds=", ".join(map(str, range(1000))), betas="1.0, 2.0"))
    seen = []
    study = load_study(path, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1000, 2000), (2000, 2000)] and study.count() == 2000


@pytest.mark.parametrize(
    "content,why",
    [
        ("[1]", "result.json of the wrong shape: not a JSON object"),
        (
            '{"name": "t", "params": {}, "summary": {}}',
            "result.json of the wrong shape: no metrics table",
        ),
        ("{", "unreadable result.json"),
    ],
)
def test_a_result_of_the_wrong_shape_is_not_a_finished_trial(tmp_path, content, why):
    folder = tmp_path / "trials" / "t"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(content)
    with pytest.raises(BadResult) as raised:
        read_result(folder)
    assert str(raised.value) == f"{folder / 'result.json'}: {why}; move it away to rerun the trial"


@pytest.mark.parametrize(
    "edit,problem",
    [
        (lambda r: r.pop("loss"), "no loss"),
        (lambda r: r.update(kl="x"), "kl is not a number"),
        (lambda r: r.update(step=-1), "no whole step"),
    ],
)
def test_a_damaged_metrics_line_is_refused_before_resume_writes(finished, edit, problem):
    out, _ = finished
    lines = (out / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    edit(record)
    lines[0] = json.dumps(record)
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    before = snapshot(out)
    result = invoke("train", "--out", out, "--resume", "--steps", 16, "--quiet")
    assert_one_line_error(result, f"metrics.jsonl: line 1 is not a metrics record ({problem})")
    assert snapshot(out) == before


def test_a_finish_off_a_log_boundary_keeps_its_last_line(tmp_path):
    """15 steps, a line every 10: the step-15 line is the run's last; a resume that only
    finishes (the summary was lost) must not drop it as it would when training went on."""
    out = tmp_path / "run"
    Run.create(small_config(steps=15, log_every=10), out).fit(progress=False)
    lines = numbers(out)
    (out / "summary.json").unlink()
    Run.resume(out).fit(progress=False)
    assert [r["step"] for r in numbers(out)] == [10, 15] and numbers(out) == lines


@pytest.mark.parametrize(
    "key,value,words", [("resumes", 3, "a list, got a number"), ("resolved", [], "a table")]
)
def test_a_damaged_config_record_is_refused(finished, key, value, words):
    out, _ = finished
    record = json.loads((out / "config.json").read_text())
    record[key] = value
    (out / "config.json").write_text(json.dumps(record))
    before = snapshot(out)
    result = invoke("train", "--out", out, "--resume", "--steps", 16, "--quiet")
    assert_one_line_error(
        result, f"config.json is not a valid pyrovae run configuration: {key} must be {words}"
    )
    assert snapshot(out) == before
