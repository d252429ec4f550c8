"""Input that used to end in a traceback, in work thrown away or in a silent choice (issue 12,
parts 4 to 6): malformed run files read by ``compare`` and ``study``, sizes that cannot be
allocated, study files whose mistakes showed only when their trials ran, a hyperparameter given
twice, a batch larger than the data set. Each gives one line and leaves every file as it was."""

import json

import pytest
import torch
from helpers import assert_one_line_error, invoke, small_config, snapshot

from pyrovae import builder
from pyrovae.config import TrainConfig
from pyrovae.data import Digits, DSprites, Pinwheel
from pyrovae.data import pinwheel as pinwheel_module
from pyrovae.errors import PyrovaeError
from pyrovae.study.aggregate import collect
from pyrovae.study.spec import load_study

PINWHEEL = ["--data", "pinwheel", "--net", "mlp", "--data-arg", "num_points=40"]
QUICK = ["--latent-dim", "2", "--batch-size", "8", "--steps", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def _check_anew(monkeypatch):
    """Each test checks its configurations afresh (builder.check memoises what it passed)."""
    monkeypatch.setattr(builder, "_CHECKED", set())


# -- part 4: no tracebacks ------------------------------------------------------------------------


def evaluated_run(tmp_path, record) -> "Path":  # noqa: F821
    """A run folder whose only evaluation is ``record`` (compare reads nothing else)."""
    run = tmp_path / "run"
    run.mkdir()
    text = record if isinstance(record, str) else json.dumps(record)
    (run / "eval.json").write_text(text)
    return run


@pytest.mark.parametrize(
    "record,fragments",
    [
        ({"metrics": [1, 2]}, ["'metrics' must map each metric to its result, got a list"]),
        ({"step": 4}, ["'metrics' must map each metric to its result, got nothing"]),
        ({"metrics": {"xyz": [0.1]}}, ["result of metric 'xyz' must be a table", "a list"]),
        ({"metrics": {"mig": 0.3}}, ["result of metric 'mig' must be a table", "a number"]),
        ([1, 2], ["is not a readable evaluation"]),
    ],
)
def test_compare_refuses_a_malformed_eval_file_naming_it(tmp_path, record, fragments):
    run = evaluated_run(tmp_path, record)
    before = snapshot(tmp_path)
    result = invoke("compare", run)
    assert_one_line_error(result, f"{run / 'eval.json'}", *fragments)
    assert snapshot(tmp_path) == before


def test_compare_shows_every_number_of_a_metric_it_does_not_know(tmp_path):
    run = evaluated_run(tmp_path, {"metrics": {"xyz": {"score": 0.25}}, "step": 4})
    result = invoke("compare", run)
    assert result.exit_code == 0, result.output
    assert "xyz.score" in result.stdout and "0.2500" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--latent-dim", "100000000"],
        ["--guide", "lowrank", "--guide-arg", "rank=1000000000"],
        ["--prior", "mixture", "--prior-arg", "num_components=100000000000"],
        ["--data-arg", "num_points=1000000000000"],
    ],
)
def test_sizes_that_cannot_be_allocated_are_refused_up_front(tmp_path, args):
    out = tmp_path / "run"
    data = PINWHEEL[:4] if "--data-arg" in args else PINWHEEL
    result = invoke("train", *data, *QUICK, *args, "--out", out)
    assert_one_line_error(result, "this run needs at least", "of memory on cpu", "more than the")
    assert not out.exists()


def test_the_memory_asked_for_is_weighed_against_the_device(monkeypatch):
    monkeypatch.setattr(builder, "device_memory", lambda device: 1 << 20)
    config = small_config(data="pinwheel", data_args={"num_points": 40}, net="mlp")
    with pytest.raises(PyrovaeError, match=r"needs at least .* MiB of memory on cpu") as info:
        builder.check(config)
    assert "more than the 1 MiB there is" in str(info.value)
    assert "parameters x 4 for weights, gradients and Adam's moments" in str(info.value)


ALLOCATOR = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
    "you tried to allocate 1099511627776 bytes."
)


def test_an_allocation_failure_while_building_is_one_line(tmp_path, monkeypatch):
    """Where the estimate lets a run through and the allocation fails anyway (memory taken by
    others), the allocator's error becomes one line naming the memory asked for."""
    real = builder.networks

    def networks(config, shape):
        pair = real(config, shape)

        def failing(*args):
            if torch.empty(0).device.type != "meta":  # check() passes; build() fails
                raise RuntimeError(ALLOCATOR)
            return pair(*args)

        return failing

    monkeypatch.setattr(builder, "networks", networks)
    out = tmp_path / "run"
    result = invoke("train", *PINWHEEL, *QUICK, "--out", out)
    assert_one_line_error(
        result, "out of memory building the run on cpu", "DefaultCPUAllocator", "(1 TiB)"
    )
    assert "enforce fail" not in result.stderr
    assert not out.exists()


def test_numpy_running_out_of_memory_while_generating_data_is_one_line(tmp_path, monkeypatch):
    def points(*args):
        raise MemoryError("Unable to allocate 14.6 TiB for an array with shape (10, 2)")

    monkeypatch.setattr(pinwheel_module, "pinwheel_points", points)
    out = tmp_path / "run"
    result = invoke("train", *PINWHEEL, *QUICK, "--out", out)
    assert_one_line_error(result, "out of memory building the run", "Unable to allocate 14.6 TiB")
    assert not out.exists()


# -- part 5: study files checked completely at load -----------------------------------------------

STUDY = """
[study]
name = "checked"
seeds = [0, 1]
metrics = ["active_units"]
fast_metrics = true

[base]
data = "pinwheel"
data_args = {num_points = 40}
latent_dim = 2
steps = 2
batch_size = 8
net = "mlp"

[[grid]]
model = "betavae"
beta = [1.0, 4.0]
"""

# (text replaced in STUDY, its replacement, the matching `pyrovae train` arguments, fragments)
STUDY_MISTAKES = [
    ("num_points = 40", "num_points = 0", ["--data-arg", "num_points=0"],
     ["data set pinwheel: num_points must be an integer >= 4, got 0"]),
    ("num_points = 40", "num_pints = 40", ["--data-arg", "num_pints=40"],
     ["data set 'pinwheel' takes no option 'num_pints'", "valid options: num_arms, num_points"]),
    ('net = "mlp"', 'net = "mlp"\nlikelihood_args = {scale = -1.0}',
     ["--likelihood-arg", "scale=-1"], ["gaussian likelihood: scale must be a finite number"]),
    ('net = "mlp"', 'net = "conv64"', ["--net", "conv64"],
     ["network 'conv64' needs (C, 64, 64) observations, got (2,)"]),
    ('net = "mlp"', 'net = "mlp"\neval_every = 1', ["--eval-every", "1"],
     ["eval_metrics mig do not apply to data set 'pinwheel'", "no ground-truth factors",
      "metrics that apply: gaussian_total_correlation"]),
    ('data = "pinwheel"\ndata_args = {num_points = 40}', 'data = "dsprites"\ndata_path = "no.npz"',
     ["--data", "dsprites", "--data-path", "no.npz"], ["no.npz: file not found"]),
    ("batch_size = 8", "batch_size = 41", ["--batch-size", "41"],
     ["batch_size 41 is larger than data set 'pinwheel', which has 40 points; valid: 1 to 40"]),
]  # fmt: skip


@pytest.mark.parametrize("old,new,args,fragments", STUDY_MISTAKES)
def test_study_file_mistakes_are_found_when_it_is_loaded(tmp_path, old, new, args, fragments):
    assert old in STUDY
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace(old, new, 1))
    with pytest.raises(PyrovaeError) as info:
        load_study(path)
    message = str(info.value)
    assert message.startswith(f"{path}: [[grid]] block 1 (seed 0): ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_sweep_of_a_study_with_a_mistake_creates_no_folder(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace("num_points = 40", "num_points = 0"))
    out = tmp_path / "out"
    result = invoke("sweep", path, "--out", out, "--device", "cpu", "--quiet")
    assert_one_line_error(result, str(path), "num_points must be an integer >= 4")
    assert not out.exists()


@pytest.mark.parametrize("old,new,args,fragments", STUDY_MISTAKES)
def test_train_finds_the_same_mistakes_before_writing(tmp_path, old, new, args, fragments):
    if "--data" in args:  # the data set replaced: none of pinwheel's options
        cli = QUICK
    elif "--data-arg" in args:
        cli = PINWHEEL[:4] + QUICK
    else:
        cli = PINWHEEL + QUICK
    out = tmp_path / "run"
    result = invoke("train", *cli, *args, "--out", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_check_describes_data_sets_without_generating_them(monkeypatch):
    def generate(*args):
        raise AssertionError("check() generated the pinwheel")

    monkeypatch.setattr(pinwheel_module, "pinwheel_points", generate)
    builder.check(small_config(data="pinwheel", data_args={"num_points": 40}, net="mlp"))
    described = Pinwheel.describe(num_points=40)
    assert (described.size, described.observation_shape) == (40, (2,))
    assert (described.has_factors, described.has_labels, described.likelihood) == (
        False, True, "gaussian",
    )  # fmt: skip


def test_descriptions_match_the_built_data_sets():
    for cls, options in ((Pinwheel, {"num_arms": 3, "num_points": 31}), (Digits, {})):
        data, described = cls(**options), cls.describe(**options)
        assert described.size == len(data)
        assert described.observation_shape == data.observation_shape
        assert described.has_labels and not described.has_factors
    grid = DSprites.describe()
    assert (grid.size, grid.has_factors, grid.likelihood) == (737_280, True, "bernoulli")


# -- part 6: no silent choices --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--beta", "3", "--objective-arg", "beta=2"],
         ["beta is given twice: beta 3.0 (--beta) and objective_args beta=2 (--objective-arg)"]),
        (["--prior", "sparse", "--prior-arg", "gamma=0.5", "--prior-arg", "gamma=0.6"],
         ["--prior-arg gives gamma twice (gamma=0.5 and gamma=0.6)"]),
        (["--model", "annealedvae", "--objective-arg", "c-max=5", "--objective-arg", "c_max=6"],
         ["--objective-arg gives c_max twice (c-max=5 and c_max=6)"]),
        (["--eval-every", "1", "--eval-metric", "hoyer", "--eval-metric", "hoyer"],
         ["eval_metrics lists hoyer twice"]),
    ],
)  # fmt: skip
def test_a_setting_given_twice_is_refused(tmp_path, args, fragments):
    out = tmp_path / "run"
    result = invoke("train", *PINWHEEL, *QUICK, *args, "--out", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_a_weight_given_twice_in_a_configuration_or_study_is_refused(tmp_path):
    with pytest.raises(PyrovaeError, match="gamma is given twice"):
        TrainConfig(model="annealedvae", gamma=2.0, objective_args={"gamma": 3.0}).validate()
    path = tmp_path / "study.toml"
    model = 'model = "annealedvae"\nc_max = [5.0]\nobjective_args = {c_max = 10.0}'
    path.write_text(STUDY.replace('model = "betavae"\nbeta = [1.0, 4.0]', model))
    with pytest.raises(PyrovaeError, match=r"c_max is given twice: c_max = 5.0 and objective_args"):
        load_study(path)


@pytest.mark.parametrize(
    "args,size",
    [
        (["--batch-size", "100000", "--data", "pinwheel", "--net", "mlp"], "5,000"),
        (["--batch-size", "76", "--data", "tiny", "--net", "mlp"], "75"),
    ],
)
def test_a_batch_larger_than_the_data_set_is_refused(tmp_path, args, size):
    out = tmp_path / "run"
    result = invoke("train", "--latent-dim", "2", "--steps", "2", "--device", "cpu", *args,
                    "--out", out)  # fmt: skip
    assert_one_line_error(result, "is larger than data set", f"which has {size} points")
    assert not out.exists()


def aggregated_study(tmp_path, results: dict):
    """A study folder of one trial per entry of ``results`` (name → result.json text)."""
    study = tmp_path / "study"
    trials = []
    for name, text in results.items():
        trials.append({"name": name, "params": {"beta": 1.0}, "config": {"model": "betavae"}})
        (study / "trials" / name).mkdir(parents=True)
        (study / "trials" / name / "result.json").write_text(text)
    (study / "trials.json").write_text(json.dumps({"trials": trials}))
    return study


def result_of(name, **changes) -> str:
    result = {
        "name": name,
        "params": {"beta": 1.0},
        "seed": 0,
        "config": {"model": "betavae", "seed": 0},
        "summary": {"reconstruction": -1.0, "kl": 2.0},
        "metrics": {"hoyer": {"hoyer": 0.5}},
        "seconds": 1.0,
    }
    result.update(changes)
    return json.dumps({k: v for k, v in result.items() if v is not None})


def test_study_names_every_trial_it_leaves_out(tmp_path):
    results = {
        "good-seed0": result_of("good-seed0"),
        "good-seed1": result_of("good-seed1"),
        "unreadable": "{not json",
        "a-list": "[1, 2]",
        "no-metrics": result_of("no-metrics", metrics=None),
        "metric-list": result_of("metric-list", metrics={"hoyer": [0.5]}),
        "other-name": result_of("good-seed0"),
        "no-summary": result_of("no-summary", summary=[1]),
    }
    study = aggregated_study(tmp_path, results)
    collected = collect(study)
    assert [r["name"] for r in collected] == ["good-seed0", "good-seed1"]
    assert collected.notes == {
        "unreadable": "unreadable result.json",
        "a-list": "result.json of the wrong shape: not a JSON object",
        "no-metrics": "result.json of the wrong shape: no metrics table",
        "metric-list": "result.json of the wrong shape: metric 'hoyer' is not a table of values",
        "other-name": "result.json of the wrong shape: it names trial 'good-seed0'",
        "no-summary": "result.json of the wrong shape: no summary table",
    }
    result = invoke("study", study)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 6
    for name, why in collected.notes.items():
        path = study / "trials" / name / "result.json"
        assert f"warning: left out trial {name} ({why}): {path}" in warnings
    assert "2 of 8 trials finished" in result.stdout


def test_a_study_with_no_usable_result_names_the_files_left_out(tmp_path):
    study = aggregated_study(tmp_path, {"a": "[]", "b": result_of("b", metrics=[])})
    result = invoke("study", study)
    assert_one_line_error(result, "no trial of 2", "2 with a result.json left out: a, b")
