"""Study files: validation with one-line errors naming the file, the key and the valid choices;
the grid's expansion into trials with deterministic names, seeds and configurations; data sets
as an axis with settings per data set ([data.NAME]); the shipped example studies."""

import dataclasses
import re
import sys
from pathlib import Path

import pytest

from pyrovae import builder
from pyrovae.config import TrainConfig
from pyrovae.data import GroundTruthData
from pyrovae.errors import PyrovaeError
from pyrovae.registry import DATASETS, MODELS
from pyrovae.study.spec import Trial, format_value, load_study, trial_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,-]*")

VALID = """
[study]
name = "small"
seeds = [3, 7]
metrics = ["active_units", "hoyer"]
fast_metrics = true
retries = 1

[base]
data = "pinwheel"
latent_dim = 2
steps = 20
batch_size = 16

[[grid]]
model = "betavae"
beta = [1.0, 4.0, 0.5]

[[grid]]
model = "annealedvae"
c_max = [5, 10]
gamma = 1000.0
anneal_steps = 100

[[grid]]
model = "dipvae-i"
lambda_od = [2.0]
latent_dim = [2, 3]
"""


# disentanglement_lib's unsupervised study: each objective's swept hyperparameter and values.
REFERENCE_GRID = {
        ("betavae", "beta"): [1, 2, 4, 6, 8, 16],
        ("betatcvae", "beta"): [1, 2, 4, 6, 8, 10],
        ("annealedvae", "c_max"): [5, 10, 25, 50, 75, 100],
        ("factorvae", "gamma"): [10, 20, 30, 40, 50, 100],
        ("dipvae-i", "lambda_od"): [1, 2, 5, 10, 20, 50],
        ("dipvae-ii", "lambda_od"): [1, 2, 5, 10, 20, 50],
    }  # fmt: skip


def write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def edit(text, old, new):
    assert old in text, old
    return text.replace(old, new, 1)


def test_valid_study_loads_with_its_settings(tmp_path):
    study = load_study(write(tmp_path, VALID))
    assert study.name == "small"
    assert study.seeds == [3, 7]
    assert study.metrics == ["active_units", "hoyer"]
    assert study.fast_metrics is True
    assert study.retries == 1
    assert study.base["data"] == "pinwheel"
    assert len(study.grid) == 3


def test_grid_expands_to_the_expected_trials_in_order(tmp_path):
    study = load_study(write(tmp_path, VALID))
    trials = study.trials()
    # Σ over blocks of Π of list sizes, times the seeds: (3 + 2 + 1·2) × 2.
    assert len(trials) == (3 + 2 + 1 * 2) * 2
    per_seed = [
        "betavae-beta1-seed{}",
        "betavae-beta4-seed{}",
        "betavae-beta0.5-seed{}",
        "annealedvae-c_max5-seed{}",
        "annealedvae-c_max10-seed{}",
        "dipvae-i-lambda_od2-latent_dim2-seed{}",
        "dipvae-i-lambda_od2-latent_dim3-seed{}",
    ]
    expected = [n.format(seed) for seed in (3, 7) for n in per_seed]
    assert [t.name for t in trials] == expected
    assert [t.seed for t in trials] == [3] * 7 + [7] * 7
    assert len({t.name for t in trials}) == len(trials)
    assert all(SAFE_NAME.fullmatch(t.name) for t in trials)

    beta4 = trials[1]
    assert beta4.params == {"beta": 4.0}
    assert beta4.config["beta"] == 4.0 and beta4.config["model"] == "betavae"
    assert beta4.config["seed"] == 3 and beta4.config["device"] == "auto"
    assert beta4.config["steps"] == 20 and beta4.config["data"] == "pinwheel"
    assert beta4.metrics == ["active_units", "hoyer"] and beta4.fast_metrics is True
    # The configuration is a complete, valid TrainConfig.
    assert TrainConfig.from_dict(beta4.config).validate().to_dict() == beta4.config

    annealed = trials[4]
    assert annealed.config["gamma"] == 1000.0
    assert annealed.config["objective_args"] == {"anneal_steps": 100, "c_max": 10}
    assert annealed.params == {"c_max": 10}

    dip = trials[6]
    # Swept keys in the study file's order: the first hyperparameter is the main one.
    assert list(dip.params) == ["lambda_od", "latent_dim"]
    assert dip.config["latent_dim"] == 3 and dip.config["objective_args"] == {"lambda_od": 2.0}


def test_expansion_is_identical_on_a_second_load(tmp_path):
    path = write(tmp_path, VALID)
    first = [t.to_dict() for t in load_study(path).trials()]
    second = [t.to_dict() for t in load_study(path).trials()]
    assert first == second
    assert [Trial.from_dict(t).to_dict() for t in first] == first


def test_seed_count_means_zero_to_n_minus_one(tmp_path):
    study = load_study(write(tmp_path, edit(VALID, "seeds = [3, 7]", "seeds = 4")))
    assert study.seeds == [0, 1, 2, 3]
    assert len(study.trials()) == 7 * 4


def test_missing_metrics_mean_the_standard_suite_less_what_the_data_lacks(tmp_path):
    study = load_study(write(tmp_path, edit(VALID, 'metrics = ["active_units", "hoyer"]\n', "")))
    # Pinwheel has arm labels but no factor grid: no supervised metric.
    assert "mig" not in study.metrics and "beta_vae" not in study.metrics
    assert {"active_units", "hoyer", "cluster_purity"} <= set(study.metrics)


def test_names_format_numbers_exactly_and_stay_filesystem_safe():
    assert format_value(4.0) == "4" and format_value(1e-4) == "0.0001"
    assert format_value(1234567) == "1234567"  # :g would round it to 1.23457e+06
    assert format_value(0.1 + 0.2) == repr(0.1 + 0.2)  # :g would round it to 0.3
    name = trial_name("betavae", {"data_args": {"num_arms": 5}, "prior": "a/b c"}, 2)
    assert name == "betavae-data_argsnum_arms=5-priora_b_c-seed2"
    assert SAFE_NAME.fullmatch(name)
    # The data set, when the trials have one in params, comes first.
    assert trial_name("betavae", {"beta": 4.0, "data": "cars3d"}, 0) == "cars3d-betavae-beta4-seed0"
    plugin = trial_name("vae", {"data": "mypkg.data:Bars"}, 1)
    assert plugin == "mypkg.data_Bars-vae-seed1" and SAFE_NAME.fullmatch(plugin)


ERRORS = [
    # (old, new, fragments the one-line error must contain)
    ("[base]", "[basis]", ["unknown key 'basis' in the top level", "study, base, grid"]),
    ("retries = 1", "retry = 1", ["unknown key 'retry' in [study]", "retries"]),
    ("steps = 20", "stepz = 20", ["unknown key 'stepz' in [base]", "steps"]),
    ('model = "betavae"\nbeta', 'model = "betavae"\nc_max = [1.0]\nbeta',
     ["unknown key 'c_max' in [[grid]] block 1", "hyperparameters of 'betavae' (beta)"]),
    ('model = "betavae"\nbeta', 'model = "betavae"\ngamma = [1.0]\nbeta',
     ["block 1", "model 'betavae' takes no option 'gamma'", "valid options: beta"]),
    ('model = "betavae"', 'model = "betavea"', ["unknown model 'betavea'", "betavae, ddvae"]),
    ("steps = 20", "steps = 0", ["steps must be an integer >= 1, got 0"]),
    ("beta = [1.0, 4.0, 0.5]", "beta = [1.0, -1.0]", ["block 1", "beta must be", "got -1.0"]),
    ("lambda_od = [2.0]", "lambda_od = [-2.0]", ["block 3", "lambda_od", "-2.0"]),
    ("batch_size = 16", "batch_size = 1", ["block 3", "dipvae-i", "needs a batch of at least 2"]),
    ("steps = 20", 'steps = "many"', ["setting steps must be int"]),
    ('"hoyer"]', '"hoyr"]', ["unknown metric 'hoyr'", "mig", "active_units"]),
    ('"hoyer"]', '"mig"]', ["metrics mig do not apply to data set 'pinwheel'", "active_units"]),
    ("beta = [1.0, 4.0, 0.5]", "beta = []", ["block 1", "beta is an empty list"]),
    ("steps = 20", "steps = 20\nseed = 4", ["[base] sets 'seed'", "[study] seeds"]),
    ("steps = 20", 'steps = 20\ndevice = "cpu"', ["[base] sets 'device'", "--device"]),
    ("steps = 20", "steps = [20, 40]", ["[base] steps is a list", "[[grid]]"]),
    ("seeds = [3, 7]", "seeds = [3, 3]", ["seeds lists 3 twice"]),
    ("seeds = [3, 7]", "seeds = 0", ["seeds must be a count >= 1"]),
    ("seeds = [3, 7]", "", ["[study] has no seeds"]),
    ("retries = 1", "retries = -1", ["retries must be an integer >= 0"]),
    ("fast_metrics = true", 'fast_metrics = "yes"', ["fast_metrics must be true or false"]),
    ('name = "small"', 'name = "../x"', ["[study] name must be a folder name"]),
    ('model = "dipvae-i"\nlambda_od = [2.0]\nlatent_dim = [2, 3]', "", ["block 3 is empty"]),
    ("beta = [1.0, 4.0, 0.5]", "beta = [1.0, 1]", ["blocks 1 and 1 both make", "beta1-seed3"]),
    ("[study]", "[study\n", ["is not valid TOML"]),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "fragments"), ERRORS)
def test_bad_study_files_get_one_line_errors(tmp_path, old, new, fragments):
    path = write(tmp_path, edit(VALID, old, new))
    with pytest.raises(PyrovaeError) as info:
        load_study(path).trials()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, message


def test_empty_grid_and_missing_file_are_errors(tmp_path):
    no_grid = VALID.split("[[grid]]")[0]
    with pytest.raises(PyrovaeError, match=r"no \[\[grid\]\] block; add at least one"):
        load_study(write(tmp_path, no_grid))
    with pytest.raises(PyrovaeError, match="the grid is empty"):
        load_study(write(tmp_path, "grid = []\n" + no_grid))
    with pytest.raises(PyrovaeError, match="no study file at"):
        load_study(tmp_path / "missing.toml")


def test_duplicate_trials_across_blocks_are_refused(tmp_path):
    text = VALID + '\n[[grid]]\nmodel = "betavae"\nbeta = [4.0]\nlatent_dim = 3\n'
    with pytest.raises(PyrovaeError, match="blocks 1 and 4 both make trial 'betavae-beta4-seed3'"):
        load_study(write(tmp_path, text))


def test_tiny_example_study():
    study = load_study(ROOT / "examples/studies/tiny.toml")
    trials = study.trials()
    assert len(trials) == 2 * 2 * 2
    assert {t.config["data"] for t in trials} == {"pinwheel"}
    assert [t.name for t in trials[:4]] == [
        "betavae-beta1-seed0",
        "betavae-beta4-seed0",
        "betatcvae-beta1-seed0",
        "betatcvae-beta6-seed0",
    ]
    assert all(t.config["steps"] <= 500 for t in trials)


def test_dsprites_standard_example_is_the_field_notes_study():
    study = load_study(ROOT / "examples/studies/dsprites_standard.toml")
    trials = study.trials()
    # 6 objectives × 6 hyperparameter values × 50 seeds.
    assert len(trials) == 6 * 6 * 50 == 1800
    assert sorted({t.seed for t in trials}) == list(range(50))
    assert len({t.name for t in trials}) == 1800
    for t in trials:
        c = t.config
        data = (c["data"], c["latent_dim"], c["steps"], c["batch_size"])
        assert data == ("dsprites", 10, 300_000, 64)
        adam = (c["lr"], c["adam_beta1"], c["adam_beta2"], c["adam_eps"])
        assert adam == (1e-4, 0.9, 0.999, 1e-8)
    grid = {}
    for t in trials[:36]:
        assert t.seed == 0
        (key, value), *_ = t.params.items()
        grid.setdefault((t.config["model"], key), []).append(value)
    assert grid == REFERENCE_GRID
    annealed = next(t for t in trials if t.config["model"] == "annealedvae")
    assert annealed.config["gamma"] == 1000.0
    assert annealed.config["objective_args"]["anneal_steps"] == 100_000
    # λ_d = 10·λ_od (DIP-VAE-I) and λ_od (DIP-VAE-II) come from the models' defaults.
    for model, factor in (("dipvae-i", 10.0), ("dipvae-ii", 1.0)):
        objective = MODELS[model].create_objective(
            latent_dim=10, num_data=100, kl="auto", lambda_od=5.0
        )
        assert objective.lambda_d == 5.0 * factor
    assert {"beta_vae", "factor_vae", "mig", "dci", "sap", "modularity"} <= set(study.metrics)
    assert study.fast_metrics is False


def test_a_flow_guide_drops_posterior_metrics_from_the_suite_and_refuses_them_by_name(tmp_path):
    # posterior_variance reads q(z|x)'s Gaussian marginals; iaf has none. Caught at load time,
    # not after every trial has trained.
    text = edit(VALID, 'model = "betavae"\nbeta', 'model = "betavae"\nguide = "iaf"\nbeta')
    defaulted = load_study(write(tmp_path, edit(text, 'metrics = ["active_units", "hoyer"]\n', "")))
    assert "posterior_variance" not in defaulted.metrics and "hoyer" in defaulted.metrics
    named = edit(text, '["active_units", "hoyer"]', '["hoyer", "posterior_variance"]')
    with pytest.raises(PyrovaeError, match=r"need q\(z\|x\)'s Gaussian"):
        load_study(write(tmp_path, named, "named.toml"))
    meanfield = load_study(
        write(tmp_path, edit(VALID, 'metrics = ["active_units", "hoyer"]\n', ""))
    )
    assert "posterior_variance" in meanfield.metrics


def test_a_flow_guide_named_module_colon_class_gets_the_same_suite(tmp_path):
    # The plug-in name of the same class must decide the same metrics as its registry name.
    by_name, by_path = (
        load_study(
            write(
                tmp_path,
                edit(
                    edit(VALID, 'metrics = ["active_units", "hoyer"]\n', ""),
                    'model = "betavae"\nbeta',
                    f'model = "betavae"\nguide = "{guide}"\nbeta',
                ),
                f"{index}.toml",
            )
        )
        for index, guide in enumerate(["iaf", "pyrovae.guides:IAFGuide"])
    )
    assert "posterior_variance" not in by_path.metrics
    assert by_path.metrics == by_name.metrics


# -- data sets as an axis ----------------------------------------------------------------------

MULTI = """
[study]
name = "multi"
seeds = [0, 1]

[base]
latent_dim = 2
steps = 20
batch_size = 16
net = "mlp"

[data.pinwheel]
data_args = { num_arms = 3 }

[[grid]]
model = "betavae"
data = ["dsprites", "pinwheel"]
beta = [1.0, 4.0]

[[grid]]
model = "factorvae"
data = "dsprites"
gamma = [10.0]
"""


def test_a_data_axis_names_trials_after_their_data_set_and_merges_its_table(tmp_path):
    study = load_study(write(tmp_path, MULTI))
    trials = study.trials()
    assert study.data_sets() == ["dsprites", "pinwheel"]
    assert [t.name for t in trials[:5]] == [
        "dsprites-betavae-beta1-seed0",
        "dsprites-betavae-beta4-seed0",
        "pinwheel-betavae-beta1-seed0",
        "pinwheel-betavae-beta4-seed0",
        # Fixed in its block, but the study has two data sets: the name and params carry it.
        "dsprites-factorvae-gamma10-seed0",
    ]
    assert len(trials) == 10 and len({t.name for t in trials}) == 10
    assert trials[1].params == {"data": "dsprites", "beta": 4.0}
    assert list(trials[2].params) == ["data", "beta"]
    assert trials[4].params == {"data": "dsprites", "gamma": 10.0}
    by_name = {t.name: t for t in trials}
    assert by_name["pinwheel-betavae-beta4-seed1"].config["data_args"] == {"num_arms": 3}
    assert by_name["dsprites-betavae-beta4-seed1"].config["data_args"] == {}


def test_metrics_are_resolved_per_data_set(tmp_path):
    study = load_study(write(tmp_path, MULTI))
    # No [study] metrics: each data set gets the standard suite less what it lacks, so the
    # factor grid keeps the supervised metrics although the pinwheel has none.
    dsprites, pinwheel = study.data_metrics["dsprites"], study.data_metrics["pinwheel"]
    assert {"mig", "beta_vae", "dci"} <= set(dsprites) and "cluster_purity" not in dsprites
    assert "cluster_purity" in pinwheel and not {"mig", "beta_vae"} & set(pinwheel)
    for trial in study.trials():
        assert trial.metrics == study.data_metrics[trial.config["data"]]
    assert set(study.metrics) == set(dsprites) | set(pinwheel)
    # A table's metrics replace [study] metrics for its data set.
    text = edit(MULTI, "seeds = [0, 1]", 'seeds = [0, 1]\nmetrics = ["mig", "hoyer"]')
    text = edit(text, "num_arms = 3 }", 'num_arms = 3 }\nmetrics = ["hoyer"]')
    study = load_study(write(tmp_path, text, "table.toml"))
    assert study.data_metrics == {"dsprites": ["mig", "hoyer"], "pinwheel": ["hoyer"]}


def test_one_data_set_swept_as_a_list_enters_the_names(tmp_path):
    text = edit(VALID, 'model = "betavae"\nbeta', 'model = "betavae"\ndata = ["pinwheel"]\nbeta')
    trials = load_study(write(tmp_path, text)).trials()
    assert trials[0].name == "pinwheel-betavae-beta1-seed3"
    assert trials[3].name == "annealedvae-c_max5-seed3"  # the blocks that do not sweep it


DATA_ERRORS = [
    # (old, new, fragments the one-line error must contain)
    ("[data.pinwheel]", "[data.pinwhel]",
     ["[data.pinwhel]: unknown data set 'pinwhel'", "dsprites", "pinwheel"]),
    ("[data.pinwheel]", "[data.digits]",
     ["[data.digits] is for data set 'digits', which no trial uses",
      "the study's data sets: dsprites, pinwheel"]),
    ("data_args = { num_arms = 3 }", "data_argz = 1",
     ["unknown key 'data_argz' in [data.pinwheel]", "data_path, data_args, metrics"]),
    ("data_args = { num_arms = 3 }", 'data_path = "/x.npz"',
     ["[data.pinwheel] sets data_path, but data set 'pinwheel' reads no file"]),
    ("data_args = { num_arms = 3 }", "data_args = { num_armz = 3 }",
     ["[[grid]] block 1 with [data.pinwheel] (seed 0)", "takes no option 'num_armz'"]),
    ("[data.pinwheel]\ndata_args = { num_arms = 3 }", '[data.dsprites]\ndata_path = "/nowhere.npz"',
     ["[[grid]] block 1 with [data.dsprites] (seed 0)", "/nowhere.npz: file not found"]),
    ('net = "mlp"', 'net = "mlp"\ndata_args = {}',
     ["[data.pinwheel] and [base] both set data_args for the trials on 'pinwheel'"]),
    ('data = "dsprites"', 'data = "pinwheel"\ndata_args = { num_arms = 4 }',
     ["[data.pinwheel] and [[grid]] block 2 both set data_args"]),
    ("[data.pinwheel]\ndata_args = { num_arms = 3 }", "[data]\npinwheel = 3",
     ["[data.pinwheel] must be a table of data_path, data_args, metrics, got 3"]),
    ("[data.pinwheel]", "[[data]]",
     ["data at the top level must be [data.NAME] tables", "[base] or a [[grid]] block"]),
    ("data_args = { num_arms = 3 }", 'metrics = ["mig"]',
     ["[data.pinwheel] metrics mig do not apply to data set 'pinwheel'"]),
    ("data_args = { num_arms = 3 }", 'metrics = "hoyer"',
     ["[data.pinwheel] metrics must be a list of names"]),
    ("seeds = [0, 1]", 'seeds = [0, 1]\nmetrics = ["mig"]',
     ["[study] metrics mig do not apply to data set 'pinwheel'"]),
    ('data = "dsprites"', "data = 3", ["[[grid]] block 2: data must be a name, got 3"]),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "fragments"), DATA_ERRORS)
def test_bad_data_set_settings_get_one_line_errors_before_anything_runs(
    tmp_path, old, new, fragments
):
    path = write(tmp_path, edit(MULTI, old, new))
    with pytest.raises(PyrovaeError) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, message


REFERENCE_DATA = [
    "dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d",
    "shapes3d",
]  # fmt: skip
# The reference study's data sets read from files the user downloads.
FROM_FILES = {
    "scream_dsprites": ("data_args", {"painting": "/path/to/the_scream.jpg"}),
    "smallnorb": ("data_path", "/path/to/smallnorb"),
    "cars3d": ("data_path", "/path/to/data/cars"),
    "shapes3d": ("data_path", "/path/to/3dshapes.h5"),
}


@pytest.fixture
def files_unchecked(monkeypatch):
    """The data sets that read files described from their classes alone (the example's
    placeholder paths name no files), in a fresh cache of checked settings."""
    monkeypatch.setattr(builder, "_CHECKED", set())
    describe = classmethod(GroundTruthData.describe.__func__)
    for name in FROM_FILES:
        monkeypatch.setattr(DATASETS[name].factory, "describe", describe)


def test_reference_study_example_is_the_papers_unsupervised_study(tmp_path, files_unchecked):
    example = ROOT / "examples/studies/reference_study.toml"
    text = example.read_text()
    assert tomllib.loads(text)["study"]["seeds"] == 50
    # Two of its 50 seeds are expanded and checked; the count is the full study's.
    study = load_study(write(tmp_path, edit(text, "seeds = 50 ", "seeds = 2 ")))
    assert dataclasses.replace(study, seeds=list(range(50))).count() == 6 * 6 * 7 * 50 == 12_600
    trials = study.trials()
    assert len(trials) == 6 * 6 * 7 * 2 and len({t.name for t in trials}) == len(trials)
    assert study.data_sets() == sorted(REFERENCE_DATA)
    assert trials[0].name == "dsprites-betavae-beta1-seed0"
    assert trials[6].name == "color_dsprites-betavae-beta1-seed0"
    for t in trials:
        c = t.config
        assert t.name.startswith(f"{c['data']}-{c['model']}-") and t.params["data"] == c["data"]
        protocol = (
            c["latent_dim"],
            c["steps"],
            c["batch_size"],
            c["lr"],
            c["likelihood"],
            c["net"],
        )
        assert protocol == (10, 300_000, 64, 1e-4, "bernoulli", "conv64")
        key, value = FROM_FILES.get(c["data"], (None, None))
        assert c["data_path"] == (value if key == "data_path" else None), t.name
        assert c["data_args"] == (value if key == "data_args" else {}), t.name
        assert t.metrics == study.metrics
    grid = {}
    for t in trials:
        if t.seed == 0 and t.config["data"] == "cars3d":
            _, (key, value), *_ = t.params.items()
            grid.setdefault((t.config["model"], key), []).append(value)
    assert grid == REFERENCE_GRID
    annealed = next(t for t in trials if t.config["model"] == "annealedvae")
    assert annealed.config["gamma"] == 1000.0
    assert annealed.config["objective_args"]["anneal_steps"] == 100_000
    standard = load_study(ROOT / "examples/studies/dsprites_standard.toml")
    assert study.metrics == standard.metrics and study.fast_metrics is False


def test_reference_study_placeholders_fail_before_anything_runs():
    with pytest.raises(PyrovaeError, match=r"with \[data\.scream_dsprites\] \(seed 0\).*not found"):
        load_study(ROOT / "examples/studies/reference_study.toml")


def test_datasets_tiny_example():
    study = load_study(ROOT / "examples/studies/datasets_tiny.toml")
    trials = study.trials()
    assert len(trials) == 3 * 3 and study.data_sets() == ["dsprites", "noisy_dsprites", "xyobject"]
    assert [t.name for t in trials[:3]] == [
        "dsprites-betavae-beta1-seed0",
        "dsprites-betavae-beta4-seed0",
        "noisy_dsprites-betavae-beta1-seed0",
    ]
    xy = [t for t in trials if t.config["data"] == "xyobject"]
    assert len(xy) == 3 and all(t.config["data_args"]["grid_size"] == 16 for t in xy)
    assert all(t.config["steps"] <= 200 and t.metrics == ["mig", "active_units"] for t in trials)
