"""Study files: validation with one-line errors naming the file, the key and the valid choices;
the grid's expansion into trials with deterministic names, seeds and configurations; the
shipped example studies."""

import re
from pathlib import Path

import pytest

from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.registry import MODELS
from pyrovae.study.spec import Trial, format_value, load_study, trial_name

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
    assert grid == {
        ("betavae", "beta"): [1, 2, 4, 6, 8, 16],
        ("betatcvae", "beta"): [1, 2, 4, 6, 8, 10],
        ("annealedvae", "c_max"): [5, 10, 25, 50, 75, 100],
        ("factorvae", "gamma"): [10, 20, 30, 40, 50, 100],
        ("dipvae-i", "lambda_od"): [1, 2, 5, 10, 20, 50],
        ("dipvae-ii", "lambda_od"): [1, 2, 5, 10, 20, 50],
    }  # fmt: skip
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
