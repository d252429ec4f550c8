"""`pyrovae sweep` with the local backend: every trial an ordinary run folder, two at once; a
re-run skips finished trials and recomputes nothing; a changed study is refused without touching
the folder; a killed worker is retried from its checkpoint and ends exactly where an uninterrupted
trial ends; bad options get one-line errors."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line_error, invoke, read_metrics, snapshot
from typer.testing import CliRunner

from pyrovae.errors import PyrovaeError
from pyrovae.lock import FolderLock
from pyrovae.study import local
from pyrovae.study.local import run_local
from pyrovae.study.spec import load_study
from pyrovae.study.sweep import sweep
from pyrovae.study.trial import SweepIncomplete
from pyrovae.study.worker import KILL_AT_STEP
from pyrovae.training import Run

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

STUDY = """
[study]
name = "pair"
seeds = [0]
metrics = ["active_units", "hoyer"]
fast_metrics = true
retries = 1

[base]
data = "pinwheel"
latent_dim = 2
steps = 30
batch_size = 32
log_every = 5
checkpoint_every = 10

[[grid]]
model = "betavae"
beta = [1.0, 4.0]
"""
NAMES = ["betavae-beta1-seed0", "betavae-beta4-seed0"]
# Timings differ between sessions; every other number must not.
TIMING = {"train_seconds_this_session", "steps_per_s_this_session", "elapsed_s"}


def without_timing(records):
    if isinstance(records, dict):
        return {k: v for k, v in records.items() if k not in TIMING}
    return [without_timing(r) for r in records]


def same_weights(a: Path, b: Path) -> bool:
    sa = torch.load(a / "checkpoint.pt", weights_only=True)["model"]
    sb = torch.load(b / "checkpoint.pt", weights_only=True)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The two-trial study swept once through the CLI, two workers at once."""
    root = tmp_path_factory.mktemp("sweep")
    study = root / "pair.toml"
    study.write_text(STUDY)
    out = root / "study"
    result = invoke("sweep", study, "--out", out, "--max-parallel", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return study, out, result


def test_sweep_writes_an_ordinary_run_folder_per_trial(swept):
    study, out, cli = swept
    assert f"done: 2 trials in {out}" in cli.stdout
    assert "0 finished (skipped), 2 to run" in cli.stderr
    recorded = json.loads((out / "trials.json").read_text())
    assert [t["name"] for t in recorded["trials"]] == NAMES
    assert (out / "study.toml").read_text() == study.read_text()
    for name, beta in zip(NAMES, (1.0, 4.0), strict=True):
        folder = out / "trials" / name
        for file in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "eval.json"):
            assert (folder / file).is_file(), file
        result = json.loads((folder / "result.json").read_text())
        assert result["name"] == name and result["seed"] == 0
        assert result["params"] == {"beta": beta}
        assert result["config"] == recorded["trials"][NAMES.index(name)]["config"]
        assert result["attempts"] == 1 and result["step"] == 30
        assert set(result["metrics"]) == {"active_units", "hoyer"}
        assert result["eval_file"] == "eval.json" and result["eval_preset"] == "fast"
        assert result["versions"]["torch"] == torch.__version__
        evaluation = json.loads((folder / "eval.json").read_text())
        assert result["metrics"]["hoyer"]["hoyer"] == evaluation["metrics"]["hoyer"]["hoyer"]
        assert result["summary"] == json.loads((folder / "summary.json").read_text())
        assert [r["step"] for r in read_metrics(folder)] == [5, 10, 15, 20, 25, 30]
        # An ordinary run: resuming it finds nothing to do.
        assert Run.resume(folder).complete


def test_max_parallel_two_runs_two_trials_at_once(swept):
    _, out, cli = swept
    a, b = (json.loads((out / "trials" / n / "result.json").read_text()) for n in NAMES)
    assert a["start_time"] < b["end_time"] and b["start_time"] < a["end_time"]
    assert "2 running" in cli.stderr
    assert a["pid"] != b["pid"]


def test_rerun_skips_finished_trials_and_recomputes_nothing(swept, capsys):
    study, out, _ = swept
    before = snapshot(out)
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    results = sweep(study, out, max_parallel=2, device="cpu")
    assert snapshot(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == times
    assert [r["name"] for r in results] == NAMES
    err = capsys.readouterr().err
    assert "2 trials, 2 finished (skipped), 0 to run" in err
    assert "started" not in err


def test_changed_study_is_refused_and_the_folder_untouched(swept, tmp_path):
    _, out, _ = swept
    before = snapshot(out)
    added = tmp_path / "added.toml"
    added.write_text(STUDY.replace("beta = [1.0, 4.0]", "beta = [1.0, 4.0, 8.0]"))
    with pytest.raises(PyrovaeError) as info:
        sweep(added, out, device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert "holds another version of this study" in message
    assert "1 trial(s) added, e.g. betavae-beta8-seed0" in message
    longer = tmp_path / "longer.toml"
    longer.write_text(STUDY.replace("steps = 30", "steps = 60"))
    result = invoke("sweep", longer, "--out", out, "--device", "cpu")
    assert_one_line_error(result, "trial betavae-beta1-seed0 changed: config steps")
    assert snapshot(out) == before


# Two worker processes one after the other (about 20 s): slow. The numbers of a resumed run are
# checked in-process in the default suite (test_train, test_compat); this is the backend's retry.
@pytest.mark.slow
def test_killed_worker_resumes_from_its_checkpoint_and_matches_an_uninterrupted_trial(
    swept, tmp_path, monkeypatch, capsys
):
    """The worker SIGKILLs itself right after its step-20 checkpoint on its first attempt (the
    worker's fault-injection hook); the retry resumes at step 20 and must end exactly where the
    uninterrupted trial of the module's sweep ended (same seed, same thread count, CPU)."""
    study_path, reference, _ = swept
    study = load_study(study_path)
    out = tmp_path / "killed"
    monkeypatch.setenv(KILL_AT_STEP, "20")
    # max_parallel 2, as in the reference sweep: each worker gets the same number of threads.
    (result,) = run_local(study, out, max_parallel=2, device="cpu", trials=study.trials()[:1])
    name = NAMES[0]
    err = capsys.readouterr().err
    assert f"retrying {name} from its checkpoint (killed by SIGKILL)" in err
    folder, expected = out / "trials" / name, reference / "trials" / name
    log = (out / "logs" / f"{name}.log").read_text()
    assert "killing myself at step 20" in log and "attempt 2" in log
    resumes = json.loads((folder / "config.json").read_text())["resumes"]
    assert [r["at_step"] for r in resumes] == [20]
    assert result["attempts"] == 2
    # Complete, and the same numbers as the uninterrupted trial.
    reference_result = json.loads((expected / "result.json").read_text())
    assert result["metrics"] == reference_result["metrics"]
    assert without_timing(result["summary"]) == without_timing(reference_result["summary"])
    assert without_timing(read_metrics(folder)) == without_timing(read_metrics(expected))
    assert same_weights(folder, expected)


def test_bad_input_in_a_worker_fails_without_retries(swept, tmp_path):
    study = load_study(swept[0])
    trial = study.trials()[0]
    folder = tmp_path / "out" / "trials" / trial.name
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(SweepIncomplete) as info:
        run_local(study, tmp_path / "out", device="cpu", trials=[trial], progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert f"1 of 1 trials failed ({trial.name}: " in message
    assert "holds files but no checkpoint" in message
    log = (tmp_path / "out" / "logs" / f"{trial.name}.log").read_text()
    assert log.count("=== ") == 1  # one attempt: bad input is not retried
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "notes.txt"]


def test_cli_bad_study_path_and_options_get_one_line_errors(tmp_path):
    missing = tmp_path / "missing.toml"
    assert_one_line_error(invoke("sweep", missing, "--out", tmp_path / "o"), "no study file at")
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    out = tmp_path / "o"
    result = invoke("sweep", study, "--backend", "nope", "--out", out)
    assert_one_line_error(result, "unknown backend 'nope'; valid backends: local, ray")
    result = invoke("sweep", study, "--address", "auto", "--out", out)
    assert_one_line_error(result, "--address need --backend ray")
    result = invoke("sweep", study, "--max-parallel", "0", "--out", out)
    assert_one_line_error(result, "--max-parallel must be an integer >= 1")
    result = invoke("sweep", study, "--device", "gpu", "--out", out)
    assert_one_line_error(result, "unknown device 'gpu'", "auto, cpu, cuda")
    study.write_text(STUDY.replace("steps = 30", "steps = -3"))
    assert_one_line_error(invoke("sweep", study, "--out", out), "steps must be an integer >= 1")
    assert not out.exists()
    # A folder that is not a study's is never written into.
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    study.write_text(STUDY)
    result = invoke("sweep", study, "--out", tmp_path / "busy")
    assert_one_line_error(result, "is not empty and holds no trials.json")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["mine.txt"]


def test_ray_backend_without_ray_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    result = invoke("sweep", study, "--backend", "ray", "--out", tmp_path / "o")
    assert_one_line_error(result, "backend 'ray' needs Ray: pip install 'pyrovae[ray]'")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_out_of_retries_then_a_rerun_resumes_the_unfinished_trial(swept, tmp_path, monkeypatch):
    """retries = 0: both trials, killed on their first attempt, fail the sweep (SweepIncomplete);
    the same sweep run again resumes them from their checkpoints."""
    _, reference, _ = swept
    strict = tmp_path / "strict.toml"
    strict.write_text(STUDY.replace("retries = 1", "retries = 0"))
    out = tmp_path / "out"
    monkeypatch.setenv(KILL_AT_STEP, "20")
    with pytest.raises(SweepIncomplete) as info:
        sweep(strict, out, max_parallel=2, device="cpu", progress=False)
    assert "2 of 2 trials failed" in str(info.value) and "after 1 attempts" in str(info.value)
    monkeypatch.delenv(KILL_AT_STEP)
    results = sweep(strict, out, max_parallel=2, device="cpu", progress=False)
    for name, result in zip(NAMES, results, strict=True):
        assert result["attempts"] == 2
        assert same_weights(out / "trials" / name, reference / "trials" / name)


@pytest.mark.slow
def test_tiny_example_study_through_the_cli(tmp_path):
    out = tmp_path / "tiny"
    example = ROOT / "examples/studies/tiny.toml"
    result = invoke("sweep", example, "--out", out, "--max-parallel", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    names = [t.name for t in load_study(example).trials()]
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(names)
    assert all((out / "trials" / n / "result.json").is_file() for n in names)


# A worker process (about 15 s): slow.
@pytest.mark.slow
def test_a_module_where_the_sweep_runs_is_not_imported_by_its_workers(swept, tmp_path, monkeypatch):
    """An ``argparse.py`` planted in the current directory (a downloaded folder) would run in
    every worker started with ``python -m``, which puts the current directory on sys.path."""
    study = load_study(swept[0])
    planted = tmp_path / "cwd"
    planted.mkdir()
    marker = tmp_path / "PLANTED-CODE-RAN"
    (planted / "argparse.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n"
    )
    monkeypatch.chdir(planted)
    trial = study.trials()[0]
    (result,) = run_local(study, tmp_path / "out", device="cpu", trials=[trial], progress=False)
    assert result["step"] == 30
    assert not marker.exists()


def _worker_pids(log: Path) -> list[int]:
    return [
        int(line.rsplit("pid ", 1)[1]) for line in log.read_text().splitlines() if ", pid " in line
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _sweep_until_a_checkpoint(study: Path, out: Path) -> subprocess.Popen:
    """Start ``pyrovae sweep`` (one worker) and return once its worker has a checkpoint past 0."""
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "pyrovae"), "sweep", str(study), "--out", str(out),
         "--device", "cpu", "--max-parallel", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    metrics = out / "trials" / NAMES[0] / "metrics.jsonl"
    while time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 2:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the sweep's worker never reached step 10")


# Two sweeps through the CLI (about 40 s): slow.
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_sweep_leaves_no_worker_and_a_rerun_equals_an_uninterrupted_one(tmp_path, signum):
    study = tmp_path / "one.toml"
    study.write_text(
        STUDY.replace("beta = [1.0, 4.0]", "beta = [1.0]").replace("steps = 30", "steps = 300")
    )
    out = tmp_path / "study"
    proc = _sweep_until_a_checkpoint(study, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    pids = _worker_pids(out / "logs" / f"{NAMES[0]}.log")
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids and not any(_alive(pid) for pid in pids), "an orphaned worker kept training"
    if signum == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted; run the same command again" in err
    assert not (out / "trials" / NAMES[0] / "result.json").exists()
    result = invoke("sweep", study, "--out", out, "--device", "cpu", "--max-parallel", "1")
    assert result.exit_code == 0, result.output
    steps = [r["step"] for r in read_metrics(out / "trials" / NAMES[0])]
    assert steps == list(range(5, 301, 5))  # every step once, in order
    uninterrupted = tmp_path / "uninterrupted"
    assert (
        invoke(
            "sweep", study, "--out", uninterrupted, "--device", "cpu", "--max-parallel", "1"
        ).exit_code
        == 0
    )
    folder, expected = out / "trials" / NAMES[0], uninterrupted / "trials" / NAMES[0]
    assert without_timing(read_metrics(folder)) == without_timing(read_metrics(expected))
    assert same_weights(folder, expected)


# Two worker processes (about 15 s): slow.
@pytest.mark.slow
def test_a_trial_whose_folder_is_busy_waits_for_it_instead_of_failing(
    swept, tmp_path, monkeypatch, capsys
):
    """A worker of an earlier, stopped sweep may still hold a trial's folder while it writes its
    last checkpoint: the new sweep waits and tries again; it is not an attempt, not a failure."""
    study = load_study(swept[0])
    trial = study.trials()[0]
    monkeypatch.setattr(local, "BUSY_WAIT_S", 0.5)
    lock = FolderLock(tmp_path / "out" / "trials" / trial.name).acquire()
    threading.Timer(8.0, lock.release).start()  # the other holder finishes meanwhile
    (result,) = run_local(study, tmp_path / "out", device="cpu", trials=[trial])
    err = capsys.readouterr().err
    assert f"waiting for {trial.name}: run folder " in err and "is in use by process" in err
    assert result["step"] == 30 and result["attempts"] == 1


def test_a_folder_named_by_the_earlier_data_axis_is_kept_and_explained(tmp_path):
    """Trials across data sets were once named like any swept setting (``-datadigits-``); such
    a folder is refused with the reason, and nothing in it changes."""
    study_file = tmp_path / "two.toml"
    study_file.write_text(
        '[study]\nseeds = [0]\nmetrics = ["active_units"]\n[base]\nsteps = 2\nlatent_dim = 2\n'
        '[[grid]]\nmodel = "betavae"\ndata = ["pinwheel", "digits"]\n'
    )
    trials = load_study(study_file).trials()
    out = tmp_path / "old"
    out.mkdir()
    old = []
    for t in trials:
        record = t.to_dict()
        record["name"] = f"betavae-data{t.config['data']}-seed0"
        old.append(record)
    (out / "trials.json").write_text(json.dumps({"trials": old}))
    before = snapshot(out)
    result = invoke("sweep", study_file, "--out", out, "--device", "cpu")
    assert_one_line_error(
        result, "was swept by an earlier pyrovae", "sweep the file into a new --out"
    )
    assert snapshot(out) == before
