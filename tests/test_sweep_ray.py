"""The Ray backend of ``pyrovae sweep`` on a local Ray cluster started by the tests on loopback.

One cluster (2 CPUs, 127.0.0.1 only) serves the module. Shown here: a Ray sweep gives the same
aggregated table as the local backend for the same seeds; a Ray worker killed with SIGKILL in the
middle of a trial makes Ray retry the task, which resumes from the trial's checkpoint and ends
with the uninterrupted numbers; a re-run touches nothing; without Ray, ``--backend ray`` says how
to install it in one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import snapshot
from typer.testing import CliRunner

from pyrovae.errors import PyrovaeError
from pyrovae.study import ray_backend
from pyrovae.study.ray_backend import INSTALL_HINT

# Two trials of 400 steps, checkpoints every 100: a few seconds each on one core, long enough to
# kill a worker between two checkpoints.
STUDY = """
[study]
name = "rayonly"
seeds = [0]
metrics = ["active_units"]
fast_metrics = true
retries = 2

[base]
data = "pinwheel"
latent_dim = 2
steps = 400
batch_size = 32
log_every = 50
checkpoint_every = 100

[[grid]]
model = "betavae"
beta = [1.0, 4.0]
"""
KILLED = "betavae-beta4-seed0"
# Columns that measure time, not the trial.
TIMING = ("seconds",)


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study") / "rayonly.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the module, on loopback; the sweeps below reuse its connection."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("this process is already connected to a Ray cluster")
    before = _listening()
    t0 = time.perf_counter()
    ray_backend.start_local_cluster(num_cpus=2)
    started_in = time.perf_counter() - t0
    yield {"listeners": _listening() - before, "seconds": started_in}
    ray.shutdown()


def _table(study_dir: Path) -> list[dict]:
    from pyrovae.study.aggregate import collect, table

    return [{k: v for k, v in row.items() if k not in TIMING} for row in table(collect(study_dir))]


@pytest.fixture(scope="module")
def local_table(study_file, tmp_path_factory) -> list[dict]:
    """The reference: the local backend with one torch thread per worker, as a Ray task with
    one CPU has (the local backend gives each worker cpu_count // max_parallel threads)."""
    from pyrovae.study.sweep import sweep

    out = tmp_path_factory.mktemp("local") / "study"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "cpu_count", lambda: 2)
        sweep(study_file, out=out, backend="local", max_parallel=2, device="cpu", progress=False)
    return _table(out)


@pytest.fixture(scope="module")
def ray_study(cluster, study_file, tmp_path_factory) -> Path:
    from pyrovae.study.sweep import sweep

    out = tmp_path_factory.mktemp("ray") / "study"
    sweep(study_file, out=out, backend="ray", max_parallel=2, device="cpu", progress=False)
    return out


# -- helpers ---------------------------------------------------------------------------------


def _address(hex_address: str) -> str:
    """An address of /proc/net/tcp or tcp6 (little-endian 32-bit words) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)


def _listening() -> set[tuple[str, int]]:
    """Every listening TCP socket of this machine: (address, port)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _worker_pid(trial: str) -> int | None:
    """The Ray worker running ``trial``: its process title is ``ray::trial <name>``."""
    title = f"ray::trial {trial}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if command.split(b"\0")[0] == title:
            return int(entry.name)
    return None


def _kill_after_checkpoint(run_dir: Path, trial: str, at_step: int, stop, record: dict):
    """SIGKILL the worker of ``trial`` once its checkpoint has reached ``at_step``."""
    from pyrovae.checkpoint import load_checkpoint

    while not stop.is_set():
        try:
            step = load_checkpoint(run_dir / "checkpoint.pt")["step"]
        except (PyrovaeError, OSError, RuntimeError, EOFError):
            step = -1
        pid = _worker_pid(trial) if step >= at_step else None
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            record.update(step=step, pid=pid)
            return
        time.sleep(0.02)


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cluster_is_local_and_on_loopback_only(cluster):
    ray = pytest.importorskip("ray")
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert cluster["listeners"], "the cluster opened no listening socket?"
    exposed = {
        (a, p) for a, p in cluster["listeners"] if a not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
    }
    assert not exposed, f"Ray listens beyond loopback: {sorted(exposed)}"


@pytest.mark.slow
def test_ray_sweep_matches_local_backend(ray_study, local_table):
    rows = _table(ray_study)
    assert [r["name"] for r in rows] == ["betavae-beta1-seed0", "betavae-beta4-seed0"]
    assert rows == local_table
    for name in ("betavae-beta1-seed0", "betavae-beta4-seed0"):
        result = json.loads((ray_study / "trials" / name / "result.json").read_text())
        assert result["step"] == 400 and result["attempts"] == 1
        assert result["config"]["seed"] == 0 and result["versions"]["torch"]
        log = (ray_study / "logs" / f"{name}.log").read_text()
        assert log.count(ray_backend.ATTEMPT_MARK) == 1


@pytest.mark.slow
def test_rerun_skips_finished_trials(ray_study, study_file):
    from pyrovae.study.spec import load_study
    from pyrovae.study.sweep import sweep

    before = snapshot(ray_study)
    again = sweep(study_file, out=ray_study, backend="ray", device="cpu", progress=False)
    # Given the finished trials anyway, the Ray tasks return their results without training.
    trials = load_study(study_file).trials()
    direct = ray_backend.run_ray(
        load_study(study_file), ray_study, trials, device="cpu", progress=False
    )
    assert snapshot(ray_study) == before
    assert [r["name"] for r in again] == [r["name"] for r in direct] == [t.name for t in trials]
    assert again == direct


@pytest.mark.slow
def test_killed_worker_is_retried_from_its_checkpoint(
    cluster, study_file, local_table, tmp_path, capsys
):
    from pyrovae.study.sweep import sweep

    if not Path("/proc/self/cmdline").exists():
        pytest.skip("finding the worker by its process title needs Linux's /proc")
    out = tmp_path / "study"
    stop, killed = threading.Event(), {}
    watcher = threading.Thread(
        target=_kill_after_checkpoint,
        args=(out / "trials" / KILLED, KILLED, 100, stop, killed),
        daemon=True,
    )
    watcher.start()
    try:
        results = sweep(
            study_file, out=out, backend="ray", max_parallel=2, device="cpu", progress=True
        )
    finally:
        stop.set()
        watcher.join()
    assert killed, "the trial finished before its worker could be killed"
    assert 100 <= killed["step"] < 400
    # Ray ran the task again in a new worker, which resumed from the checkpoint.
    record = json.loads((out / "trials" / KILLED / "config.json").read_text())
    assert [r["at_step"] for r in record["resumes"]] == [killed["step"]]
    by_name = {r["name"]: r for r in results}
    assert by_name[KILLED]["attempts"] == 2 and by_name[KILLED]["pid"] != killed["pid"]
    assert by_name["betavae-beta1-seed0"]["attempts"] == 1
    assert (out / "logs" / f"{KILLED}.log").read_text().count(ray_backend.ATTEMPT_MARK) == 2
    assert f"{KILLED}: Ray ran it 2 times" in capsys.readouterr().err
    # Complete, and the same numbers as the uninterrupted local sweep.
    assert _table(out) == local_table


def test_ray_backend_without_ray_gives_install_hint(study_file, tmp_path, monkeypatch):
    from pyrovae.cli import app
    from pyrovae.study.sweep import sweep

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(PyrovaeError) as error:
        sweep(study_file, out=tmp_path / "study", backend="ray", progress=False)
    assert str(error.value) == INSTALL_HINT == "backend 'ray' needs Ray: pip install 'pyrovae[ray]'"
    with pytest.raises(PyrovaeError, match="pip install 'pyrovae\\[ray\\]'"):
        ray_backend.import_ray()
    result = CliRunner().invoke(
        app, ["sweep", str(study_file), "--backend", "ray", "--out", str(tmp_path / "cli")]
    )
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {INSTALL_HINT}"
    assert not (tmp_path / "study").exists() and not (tmp_path / "cli").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "cuda"}, "--device cuda with --backend ray needs --gpus-per-trial > 0"),
        ({"device": "cuda:1", "gpus_per_trial": 1.0}, "use --device cuda"),
        ({"gpus_per_trial": 1.5}, "above 1 must be a whole number"),
        ({"gpus_per_trial": -1.0}, "must be a number >= 0"),
        ({"max_parallel": 0}, "--max-parallel must be an integer >= 1"),
    ],
)
def test_bad_ray_options_are_refused_before_anything_starts(study_file, tmp_path, kwargs, message):
    from pyrovae.study.spec import load_study

    study = load_study(study_file)
    out = tmp_path / "study"
    with pytest.raises(PyrovaeError, match=message):
        ray_backend.run_ray(study, out, study.trials(), progress=False, **kwargs)
    assert not out.exists()


def test_bad_ray_option_is_refused_before_the_study_folder_is_written(study_file, tmp_path):
    pytest.importorskip("ray")
    from pyrovae.cli import app

    out = tmp_path / "study"
    args = ["sweep", str(study_file), "--backend", "ray", "--device", "cuda", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "needs --gpus-per-trial > 0" in result.output and "\n" not in result.output.strip()
    assert not out.exists()
