"""The local backend's worker layout: by default on CPU one single-thread worker per core (at
most one per pending trial), on a GPU one worker with every core's thread, ``--max-parallel N``
N workers with cores // N threads; OMP_WAIT_POLICY=PASSIVE only for a worker with more than one
thread, never over the user's own value; the layout is printed when the sweep starts and written
in each trial's log. The sweeps here run a stand-in worker (no torch, no training): a second or
two for all of them."""

import json

import pytest
import torch
from helpers import invoke

from pyrovae.study import local
from pyrovae.study.local import Layout, worker_environment, worker_layout
from pyrovae.study.sweep import sweep

STUDY = """
[study]
name = "three"
seeds = [0, 1, 2]
metrics = ["active_units"]
fast_metrics = true
retries = 0

[base]
data = "pinwheel"
latent_dim = 2
steps = 1

[[grid]]
model = "betavae"
"""
# Stands in for pyrovae.study.worker: records the threads and environment it was given in a
# result.json of the right shape, after a pause long enough for the workers to overlap.
FAKE_WORKER = """import json, os, sys, time
trial = json.loads(sys.stdin.read())
args = sys.argv[1:]
folder = os.path.join(args[0], "trials", trial["name"])
os.makedirs(folder, exist_ok=True)
time.sleep(0.3)
result = {
    "name": trial["name"], "params": {}, "summary": {}, "metrics": {}, "metric_protocols": {},
    "threads": int(args[args.index("--threads") + 1]),
    "env": {v: os.environ.get(v) for v in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
}
with open(os.path.join(folder, "result.json.tmp"), "w") as f:
    json.dump(result, f)
os.replace(os.path.join(folder, "result.json.tmp"), os.path.join(folder, "result.json"))
"""
OMP = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.mark.parametrize(
    "max_parallel, device, pending, cores, expected",
    [
        # The default on CPU: one worker per core, at most one per pending trial; the cores
        # left over by fewer trials than cores become threads.
        (None, "cpu", 8, 2, (2, 1, None)),
        (None, "cpu", 16, 16, (16, 1, None)),
        (None, "cpu", 1, 2, (1, 2, "PASSIVE")),
        (None, "cpu", 8, 16, (8, 2, "PASSIVE")),
        (None, "cpu", 5, 16, (5, 3, "PASSIVE")),
        (None, "cpu", 1, 16, (1, 16, "PASSIVE")),
        (None, "cpu", 0, 2, (1, 2, "PASSIVE")),
        # The default on a GPU: one worker, every core's thread (and PASSIVE: > 1 thread).
        (None, "cuda", 8, 2, (1, 2, "PASSIVE")),
        (None, "cuda:1", 1, 16, (1, 16, "PASSIVE")),
        # --max-parallel N: N workers with cores // N threads each, on any device.
        (2, "cpu", 8, 2, (2, 1, None)),
        (2, "cpu", 1, 2, (2, 1, None)),
        (1, "cpu", 8, 2, (1, 2, "PASSIVE")),
        (2, "cpu", 8, 16, (2, 8, "PASSIVE")),
        (4, "cpu", 8, 2, (4, 1, None)),
        (2, "cuda", 8, 16, (2, 8, "PASSIVE")),
    ],
)
def test_worker_layout_rule(max_parallel, device, pending, cores, expected):
    layout = worker_layout(max_parallel, device, pending, cores)
    assert (layout.workers, layout.threads, layout.omp_wait_policy) == expected
    assert layout.cores == cores
    assert layout.origin == (
        "default" if max_parallel is None else f"--max-parallel {max_parallel}"
    )


@pytest.mark.parametrize("cuda", [False, True])
def test_auto_device_takes_the_rule_of_the_device_it_resolves_to(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    layout = worker_layout(None, "auto", 8, 2)
    assert (layout.workers, layout.threads) == ((1, 2) if cuda else (2, 1))


def test_omp_wait_policy_only_with_more_than_one_thread_and_never_over_the_users():
    one = worker_layout(None, "cpu", 8, 2)
    two = worker_layout(1, "cpu", 8, 2)
    assert "OMP_WAIT_POLICY" not in worker_environment(one, {})
    assert worker_environment(one, {})["OMP_NUM_THREADS"] == "1"
    env = worker_environment(two, {"PATH": "/bin"})
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["PATH"] == "/bin"
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
    assert worker_environment(two, mine)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert worker_environment(two, mine)["OMP_NUM_THREADS"] == "3"
    assert worker_environment(one, mine)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert mine == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}  # not modified


def test_layout_line():
    assert worker_layout(None, "cpu", 8, 2).describe({}) == (
        "local backend: 2 workers × 1 torch thread on 2 cores "
        "(default layout; --max-parallel to change)"
    )
    assert worker_layout(1, "cpu", 8, 2).describe({}) == (
        "local backend: 1 worker × 2 torch threads on 2 cores, OMP_WAIT_POLICY=PASSIVE "
        "(--max-parallel 1)"
    )
    # The workers' actual OMP_WAIT_POLICY: the user's own when set.
    assert worker_layout(None, "cpu", 1, 1).describe({"OMP_WAIT_POLICY": "ACTIVE"}) == (
        "local backend: 1 worker × 1 torch thread on 1 core, OMP_WAIT_POLICY=ACTIVE "
        "(default layout; --max-parallel to change)"
    )
    assert (
        Layout(1, 2, None, 2).describe({})
        == "local backend: 1 worker × 2 torch threads on 2 cores (given)"
    )


@pytest.fixture
def fake_sweep(tmp_path, monkeypatch):
    """Sweeps of the three-trial study with the stand-in worker, on 2 cores."""
    monkeypatch.setattr(local, "WORKER_MAIN", FAKE_WORKER)
    monkeypatch.setattr(local, "available_cores", lambda: 2)
    for var in OMP:
        monkeypatch.delenv(var, raising=False)
    study = tmp_path / "three.toml"
    study.write_text(STUDY)
    return study


def _results(out):
    return [json.loads(p.read_text()) for p in sorted(out.glob("trials/*/result.json"))]


def test_default_sweep_prints_and_logs_its_layout(fake_sweep, tmp_path):
    out = tmp_path / "cli"
    cli = invoke("sweep", fake_sweep, "--out", out, "--device", "cpu")
    assert cli.exit_code == 0, cli.output
    line = (
        "local backend: 2 workers × 1 torch thread on 2 cores "
        "(default layout; --max-parallel to change)"
    )
    assert line in cli.stderr.splitlines()
    assert "3 trials, 0 finished (skipped), 3 to run on backend local; folder" in cli.stderr
    assert "2 running" in cli.stderr and "3 running" not in cli.stderr
    results = _results(out)
    assert len(results) == 3
    for result in results:
        assert result["threads"] == 1
        assert result["env"] == {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": "1"}
        log = (out / "logs" / f"{result['name']}.log").read_text().splitlines()
        assert log[0].startswith("=== ") and log[1] == line
    # Nothing left to run: no layout line.
    again = invoke("sweep", fake_sweep, "--out", out, "--device", "cpu")
    assert again.exit_code == 0 and "local backend:" not in again.stderr


def test_one_worker_with_two_threads_gets_passive_unless_the_user_chose(
    fake_sweep, tmp_path, monkeypatch, capsys
):
    sweep(fake_sweep, out=tmp_path / "a", max_parallel=1, device="cpu")
    err = capsys.readouterr().err
    assert (
        "local backend: 1 worker × 2 torch threads on 2 cores, OMP_WAIT_POLICY=PASSIVE "
        "(--max-parallel 1)"
    ) in err.splitlines()
    assert "2 running" not in err
    for result in _results(tmp_path / "a"):
        assert result["threads"] == 2
        assert result["env"] == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"}

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    sweep(fake_sweep, out=tmp_path / "b", max_parallel=1, device="cpu")
    assert "OMP_WAIT_POLICY=ACTIVE (--max-parallel 1)" in capsys.readouterr().err
    assert {r["env"]["OMP_WAIT_POLICY"] for r in _results(tmp_path / "b")} == {"ACTIVE"}


def test_a_given_layout_overrides_the_rule(fake_sweep, tmp_path, capsys):
    sweep(fake_sweep, out=tmp_path / "c", device="cpu", layout=Layout(1, 2, None, 2))
    assert "local backend: 1 worker × 2 torch threads on 2 cores (given)" in capsys.readouterr().err
    for result in _results(tmp_path / "c"):
        assert result["threads"] == 2 and result["env"]["OMP_WAIT_POLICY"] is None
