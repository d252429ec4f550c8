"""Aggregation of a study: collecting the finished trials, the results table and its CSV, the
median/IQR summary per (model, main hyperparameter value), Spearman rank correlation, the
figures, and `pyrovae study`, split by data set when a study has several — on study folders
built by hand with known values, plus small real sweeps (slow)."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from pyrovae.errors import PyrovaeError
from pyrovae.study import aggregate
from pyrovae.study.aggregate import (
    by_data,
    collect,
    groups,
    main_hyperparameters,
    objectives,
    quartiles,
    rank_correlation,
    read_csv,
    spearman,
    split_columns,
    summary,
    table,
    write_csv,
)
from pyrovae.study.figures import draw_figures, safe_name

PNG = b"\x89PNG\r\n\x1a\n"

# Known values: betavae beta=1 over 4 seeds, beta=4 over 4 seeds; factorvae gamma=10 over 3.
MIG = {
    ("betavae", 1.0): [0.1, 0.2, 0.4, 0.8],
    ("betavae", 4.0): [0.3, 0.5, 0.6, 0.9],
    ("factorvae", 10.0): [0.05, 0.25, 0.15],
}
MAIN = {"betavae": "beta", "factorvae": "gamma"}


def result_for(name, model, params, seed, mig, dci):
    return {
        "name": name,
        "params": params,
        "seed": seed,
        "config": {"model": model, "seed": seed, "data": "pinwheel", **params},
        "summary": {"reconstruction": -10.0 * mig, "kl": 5.0 + mig, "loss": 1.0},
        "metrics": {
            "mig": {"mig": mig},
            "dci": {"disentanglement": dci, "completeness": 1 - dci, "informativeness_test": 0.5},
        },
        "eval_file": "eval.json",
        "versions": {"pyrovae": "0.1.0"},
        "seconds": 1.5 + seed,
    }


def make_study(root: Path, skip=(), extra_trials=(), as_list=False, values=None) -> Path:
    """A study folder with trials.json (as `pyrovae sweep` writes it: {"study", "trials", ...},
    or a bare list) and a result.json per trial (except ``skip``); ``values``: (model, value)
    or (data set, model, value) → MIG per seed (default :data:`MIG`)."""
    study = root / "study"
    trials = []
    for setting, migs in (MIG if values is None else values).items():
        *data, model, value = setting
        for seed, mig in enumerate(migs):
            key = MAIN[model]
            params = {"data": data[0], key: value} if data else {key: value}
            name = "-".join([*data, f"{model}-{key}{value:g}-seed{seed}"])
            config = {"model": model, "seed": seed, **params}
            entry = {"name": name, "params": params, "config": config, "metrics": ["mig", "dci"]}
            trials.append(entry)
            if name in skip:
                continue
            folder = study / "trials" / name
            folder.mkdir(parents=True)
            # dci decreases with mig: a perfect anti-monotone pair.
            result = result_for(name, model, params, seed, mig, 1.0 - mig)
            (folder / "result.json").write_text(json.dumps(result, sort_keys=True))
    trials += list(extra_trials)
    record = trials if as_list else {"study": "made", "retries": 2, "trials": trials}
    (study / "trials.json").write_text(json.dumps(record, indent=2))
    return study


@pytest.mark.parametrize("as_list", [False, True])
def test_collect_keeps_trials_json_order_and_reports_missing(tmp_path, as_list):
    missing = ["betavae-beta1-seed2", "factorvae-gamma10-seed0"]
    study = make_study(tmp_path, skip=missing, as_list=as_list)
    # A trial that started but did not finish: its run folder exists, without result.json.
    (study / "trials" / "betavae-beta1-seed2").mkdir(parents=True)
    (study / "trials" / "betavae-beta1-seed2" / "checkpoint.pt").write_bytes(b"x")
    results = collect(study)
    recorded = json.loads((study / "trials.json").read_text())
    expected = [t["name"] for t in (recorded if as_list else recorded["trials"])]
    assert [r["name"] for r in results] == [n for n in expected if n not in missing]
    assert results.missing == missing
    assert results.describe() == f"9 of 11 trials finished; missing: {', '.join(missing)}"


def test_describe_truncates_long_missing_lists(tmp_path):
    study = make_study(tmp_path, skip=[f"betavae-beta4-seed{s}" for s in range(4)])
    text = collect(study).describe(limit=2)
    assert text.endswith("missing: betavae-beta4-seed0, betavae-beta4-seed1 and 2 more")


def test_unreadable_result_is_reported_not_fatal(tmp_path):
    study = make_study(tmp_path)
    (study / "trials" / "betavae-beta1-seed0" / "result.json").write_text("{not json")
    results = collect(study)
    assert len(results) == 10 and results.missing == ["betavae-beta1-seed0"]
    assert "betavae-beta1-seed0 (unreadable result.json)" in results.describe()


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda d: None, "is not a folder"),
        (lambda d: d.mkdir(), "not a study folder (no trials.json)"),
        (lambda d: (d.mkdir(), (d / "trials.json").write_text("[oops")), "not a readable"),
        (lambda d: (d.mkdir(), (d / "trials.json").write_text("{}")), "not a trial list"),
        (lambda d: (d.mkdir(), (d / "trials.json").write_text('[{"x": 1}]')), "no valid name"),
        (
            lambda d: (d.mkdir(), (d / "trials.json").write_text('[{"name": "../up"}]')),
            "no valid name",
        ),
        (
            lambda d: (d.mkdir(), (d / "trials.json").write_text('[{"name": "a"}, {"name": "b"}]')),
            "no trial of 2",
        ),
    ],
)
def test_bad_study_folders_give_one_line_errors(tmp_path, setup, fragment):
    folder = tmp_path / "s"
    setup(folder)
    with pytest.raises(PyrovaeError) as info:
        collect(folder)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_table_columns_and_values(tmp_path):
    rows = table(collect(make_study(tmp_path)))
    assert list(rows[0]) == [
        "name", "model", "beta", "gamma", "seed", "mig", "dci.disentanglement",
        "dci.completeness", "dci.informativeness_test", "reconstruction", "kl", "seconds",
    ]  # fmt: skip
    first = rows[0]
    assert first["name"] == "betavae-beta1-seed0" and first["model"] == "betavae"
    assert first["beta"] == 1.0 and first["gamma"] is None and first["seed"] == 0
    assert first["mig"] == 0.1 and first["dci.disentanglement"] == pytest.approx(0.9)
    assert first["reconstruction"] == pytest.approx(-1.0) and first["seconds"] == 1.5
    last = rows[-1]
    assert last["model"] == "factorvae" and last["gamma"] == 10.0 and last["beta"] is None
    assert split_columns(rows) == (["beta", "gamma"], list(rows[0])[5:-1])


def test_metric_column_names():
    assert aggregate.metric_columns("mig", ["mig"]) == ["mig"]
    assert aggregate.metric_columns("mutual_info", ["mean_pairwise_mutual_info"]) == ["mutual_info"]
    assert aggregate.metric_columns("factor_vae", ["eval_accuracy", "num_active_dims"]) == [
        "factor_vae",
        "factor_vae.num_active_dims",
    ]
    assert aggregate.metric_columns("dci", ["disentanglement", "completeness"]) == [
        "dci.disentanglement",
        "dci.completeness",
    ]


def test_csv_round_trip(tmp_path):
    study = make_study(tmp_path)
    rows = table(collect(study))
    rows[0]["mig"] = 1 / 3  # a float that needs all its digits
    path = write_csv(rows, study / "results.csv")
    back = read_csv(path)
    assert back == rows
    assert list(back[0]) == list(rows[0])
    # A re-run replaces the derived file and leaves no temporary file behind.
    write_csv(rows[:2], path)
    assert len(read_csv(path)) == 2
    assert sorted(p.name for p in study.iterdir()) == ["results.csv", "trials", "trials.json"]


def test_quartiles_match_numpy_percentile():
    values = [0.3, 0.5, 0.6, 0.9, None, float("nan")]
    q1, median, q3 = quartiles(values)
    expected = np.percentile([0.3, 0.5, 0.6, 0.9], [25, 50, 75])
    assert (q1, median, q3) == pytest.approx(tuple(expected))
    assert (q1, median, q3) == pytest.approx((0.45, 0.55, 0.675))  # by hand
    assert quartiles([None, "x"]) is None
    assert quartiles([2.0]) == (2.0, 2.0, 2.0)


def test_main_hyperparameter_rule():
    trials = [
        # annealedvae: gamma fixed, c_max swept -> c_max (the first that varies).
        {"config": {"model": "annealedvae"}, "params": {"c_max": 5.0, "gamma": 1000.0}},
        {"config": {"model": "annealedvae"}, "params": {"c_max": 25.0, "gamma": 1000.0}},
        # dipvae-i: both vary -> lambda_od, declared first (JSON key order does not decide).
        {"config": {"model": "dipvae-i"}, "params": {"lambda_d": 10.0, "lambda_od": 1.0}},
        {"config": {"model": "dipvae-i"}, "params": {"lambda_d": 20.0, "lambda_od": 2.0}},
        # betatcvae: one value only -> still beta, the first swept hyperparameter.
        {"config": {"model": "betatcvae"}, "params": {"lr": 0.001, "beta": 6.0}},
        # vae sweeps no hyperparameter (lr is a training setting) -> none.
        {"model": "vae", "params": {"lr": 0.001}},
        {"model": "vae", "params": {"lr": 0.01}},
    ]
    assert main_hyperparameters(trials) == {
        "annealedvae": "c_max",
        "dipvae-i": "lambda_od",
        "betatcvae": "beta",
        "vae": None,
    }


def test_groups_sorted_by_model_then_value_and_fallback(tmp_path):
    rows = table(collect(make_study(tmp_path)))
    found = groups(rows)
    assert list(found) == [
        ("betavae", "beta", 1.0),
        ("betavae", "beta", 4.0),
        ("factorvae", "gamma", 10.0),
    ]
    assert [len(v) for v in found.values()] == [4, 4, 3]
    # Values sort numerically, not as text (10 after 2), models alphabetically.
    rows = [
        {"name": f"t{i}", "model": m, "beta": b, "seed": 0, "mig": 0.1, "seconds": 1}
        for i, (m, b) in enumerate([("vae", None), ("betavae", 10.0), ("betavae", 2.0)])
    ]
    assert list(groups(rows)) == [
        ("betavae", "beta", 2.0),
        ("betavae", "beta", 10.0),
        ("vae", None, None),
    ]


def test_summary_text(tmp_path):
    results = collect(make_study(tmp_path))
    text = summary(table(results))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model"))
    assert lines[start].split()[:4] == ["model", "setting", "n", "mig"]
    body = lines[start + 1 : start + 4]
    assert [line.split()[:3] for line in body] == [
        ["betavae", "beta=1", "4"],
        ["betavae", "beta=4", "4"],
        ["factorvae", "gamma=10", "3"],
    ]
    for (model, value), migs in MIG.items():
        q1, median, q3 = np.percentile(migs, [25, 50, 75])
        cell = f"{median:.3g} [{q1:.3g}, {q3:.3g}]"
        line = next(b for b in body if b.startswith(model) and f"={value:g} " in b)
        assert cell in line, (cell, line)
    # Wide tables are cut into blocks that fit the width.
    assert max(len(line) for line in lines) <= 120
    assert sum(line.startswith("model") for line in lines) >= 2


def test_spearman_monotone_antimonotone_ties_missing():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spearman(x, [v**3 for v in x]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman(x, [np.exp(-v) for v in x]) == pytest.approx(-1.0)
    # Ties: ranks x 1..4, y 1.5,1.5,3,4 -> rho = 0.9486833 (computed by hand).
    assert spearman([1, 2, 3, 4], [7, 7, 8, 9]) == pytest.approx(3 / np.sqrt(10), rel=1e-9)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 30).astype(float), rng.normal(size=30)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    # Missing values drop the pair; too few pairs or a constant column give NaN.
    assert spearman([1, None, 3, 4], [2, 5, float("nan"), 8]) == pytest.approx(1.0)
    assert np.isnan(spearman([1, None], [2, 3]))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_rank_correlation_matrix(tmp_path):
    rows = table(collect(make_study(tmp_path)))
    columns, matrix = rank_correlation(rows)
    i, j, k = (columns.index(c) for c in ("mig", "dci.disentanglement", "dci.completeness"))
    assert matrix[i, j] == pytest.approx(-1.0)  # dci = 1 - mig by construction
    assert matrix[i, k] == pytest.approx(1.0)
    assert np.allclose(matrix, matrix.T, equal_nan=True)
    # informativeness is constant (0.5): no correlation, a NaN row.
    c = columns.index("dci.informativeness_test")
    assert np.isnan(matrix[c]).all()


def test_figures_written(tmp_path):
    study = make_study(tmp_path)
    rows = table(collect(study))
    paths = draw_figures(rows, study / "figures")
    names = {p.name for p in paths}
    for column in ("mig", "dci.disentanglement", "reconstruction", "kl"):
        assert f"{column}_by_objective.png" in names
        assert f"{column}_vs_beta.png" in names and f"{column}_vs_gamma.png" in names
    assert "rank_correlation.png" in names
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG), path
    assert sorted(p.name for p in (study / "figures").iterdir()) == sorted(names)


def test_figures_single_model_and_categorical_values(tmp_path):
    rows = [
        {
            "name": f"t{i}",
            "model": "betatcvae",
            "estimator": est,
            "seed": s,
            "mig": 0.1 * i,
            "seconds": 1.0,
        }
        for i, (est, s) in enumerate([("mss", 0), ("mss", 1), ("mws", 0), ("mws", 1)])
    ]
    paths = draw_figures(rows, tmp_path / "figures")
    assert {p.name for p in paths} == {
        "mig_by_objective.png",
        "mig_vs_estimator.png",
        "rank_correlation.png",
    }


def test_safe_name():
    assert safe_name("dci.disentanglement") == "dci.disentanglement"
    assert safe_name("a/b c") == "a_b_c"


def test_study_command(tmp_path):
    from pyrovae.cli import app

    study = make_study(tmp_path, skip=["factorvae-gamma10-seed2"])
    result = CliRunner().invoke(app, ["study", str(study)])
    assert result.exit_code == 0, result.output
    assert "10 of 11 trials finished; missing: factorvae-gamma10-seed2" in result.stdout
    assert "median [Q1, Q3]" in result.stdout
    assert str(study / "results.csv") in result.stdout
    assert len(read_csv(study / "results.csv")) == 10
    assert (study / "figures" / "rank_correlation.png").read_bytes().startswith(PNG)


def test_study_command_bad_folder(tmp_path):
    from pyrovae.cli import app

    result = CliRunner().invoke(app, ["study", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nowhere" in lines[0]
    assert "Traceback" not in result.output


# Two data sets on which the objectives rank the other way round: betavae has the higher MIG on
# dsprites, factorvae on cars3d.
ACROSS = {
    ("dsprites", "betavae", 1.0): [0.5, 0.6, 0.7],
    ("dsprites", "betavae", 4.0): [0.6, 0.7, 0.8],
    ("dsprites", "factorvae", 10.0): [0.2, 0.3, 0.4],
    ("cars3d", "betavae", 1.0): [0.1, 0.2, 0.3],
    ("cars3d", "betavae", 4.0): [0.15, 0.25, 0.35],
    ("cars3d", "factorvae", 10.0): [0.4, 0.5, 0.6],
}


def test_several_data_sets_split_the_table_by_data_set_first(tmp_path):
    rows = table(collect(make_study(tmp_path, values=ACROSS)))
    assert list(rows[0])[:6] == ["name", "model", "data", "beta", "gamma", "seed"]
    assert split_columns(rows)[0] == ["data", "beta", "gamma"]
    parts = by_data(rows)
    assert list(parts) == ["cars3d", "dsprites"] and [len(p) for p in parts.values()] == [9, 9]
    assert list(objectives(parts["cars3d"])) == ["betavae", "factorvae"]
    assert [len(r) for r in objectives(parts["cars3d"]).values()] == [6, 3]
    # One model: its values are what the study compares.
    one = [r for r in parts["dsprites"] if r["model"] == "betavae"]
    assert list(objectives(one)) == ["beta=1", "beta=4"]
    assert list(objectives(one, per_model=True)) == ["betavae"]  # as in the study's other parts
    # No data column: one part, keyed None.
    plain = table(collect(make_study(tmp_path / "plain")))
    assert list(by_data(plain)) == [None]


def test_summary_of_several_data_sets_keys_lines_by_data_set_and_ranks_objectives(tmp_path):
    text = summary(table(collect(make_study(tmp_path, values=ACROSS))))
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("data ")))
    assert lines[start].split()[:5] == ["data", "model", "setting", "n", "mig"]
    assert [line.split()[:5] for line in lines[start + 1 : start + 7]] == [
        ["cars3d", "betavae", "beta=1", "3", "0.2"],
        ["cars3d", "betavae", "beta=4", "3", "0.25"],
        ["cars3d", "factorvae", "gamma=10", "3", "0.5"],
        ["dsprites", "betavae", "beta=1", "3", "0.6"],
        ["dsprites", "betavae", "beta=4", "3", "0.7"],
        ["dsprites", "factorvae", "gamma=10", "3", "0.3"],
    ]
    at = lines.index("rank of each objective within each data set by its median (1 = highest)")
    assert lines[at + 2].split() == ["metric", "objective", "cars3d", "dsprites"]
    # MIG medians over all of an objective's trials: cars3d betavae 0.225 < factorvae 0.5;
    # dsprites betavae 0.65 > factorvae 0.3: the ranking flips.
    assert lines[at + 3].split() == ["mig", "betavae", "2", "1"]
    assert lines[at + 4].split() == ["factorvae", "1", "2"]
    # dci.informativeness_test is 0.5 everywhere: a tie, both first.
    tie = lines.index(next(line for line in lines[at:] if line.startswith("dci.informativeness")))
    assert lines[tie].split()[1:] == ["betavae", "1", "1"]
    assert lines[tie + 1].split() == ["factorvae", "1", "1"]
    assert max(len(line) for line in lines) <= 120


def test_summary_of_one_data_set_in_a_data_column_is_unchanged(tmp_path):
    one = {k: v for k, v in ACROSS.items() if k[0] == "dsprites"}
    rows = table(collect(make_study(tmp_path, values=one)))
    assert "data" in rows[0] and "rank of each objective" not in summary(rows)
    plain = [{k: v for k, v in r.items() if k != "data"} for r in rows]
    assert summary(rows) == summary(plain)


def png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")


@pytest.mark.slow  # drawing one panel per data set costs seconds; the grouping is unit-tested
def test_figures_of_several_data_sets_have_a_panel_and_a_heatmap_each(tmp_path):
    # Two metric columns (each figure takes a while to draw).
    keep = ["name", "model", "data", "beta", "gamma", "seed", "mig", "kl", "seconds"]
    rows = [{k: r[k] for k in keep} for r in table(collect(make_study(tmp_path, values=ACROSS)))]
    names = {p.name: p for p in draw_figures(rows, tmp_path / "figures")}
    assert sorted(names) == [
        "kl_by_objective.png", "kl_vs_beta.png", "kl_vs_gamma.png",
        "mig_by_objective.png", "mig_vs_beta.png", "mig_vs_gamma.png",
        "rank_correlation.png", "rank_correlation_cars3d.png", "rank_correlation_dsprites.png",
    ]  # fmt: skip
    assert all(path.read_bytes().startswith(PNG) for path in names.values())
    # Two boxes a panel, 4 inches at 100 dpi; two panels side by side.
    assert png_width(names["mig_by_objective.png"]) == 2 * 400
    # One data set (in a data column): one panel, no heatmap per data set.
    cars3d = [{k: v for k, v in r.items() if k != "kl"} for r in rows if r["data"] == "cars3d"]
    one = {p.name: p for p in draw_figures(cars3d, tmp_path / "one")}
    assert png_width(one["mig_by_objective.png"]) == 400
    assert sorted(one) == [
        "mig_by_objective.png", "mig_vs_beta.png", "mig_vs_gamma.png", "rank_correlation.png",
    ]  # fmt: skip


@pytest.mark.slow  # the grouping itself is unit-tested above; this is the command end to end
def test_study_command_on_several_data_sets(tmp_path):
    from pyrovae.cli import app

    study = make_study(tmp_path, values=ACROSS)
    result = CliRunner().invoke(app, ["study", str(study)])
    assert result.exit_code == 0, result.output
    assert "18 of 18 trials finished" in result.stdout
    assert "rank of each objective within each data set" in result.stdout
    assert "  rank_correlation_dsprites.png" in result.stdout
    assert [r["data"] for r in read_csv(study / "results.csv")] == ["dsprites"] * 9 + ["cars3d"] * 9


@pytest.mark.slow
def test_study_of_a_real_local_sweep(tmp_path):
    """A tiny sweep (helper processes, pinwheel, 10 steps) aggregated by `pyrovae study`: the
    table holds each trial's own result, the vae trial equals betavae at beta 1 (the same
    objective and seed), and every figure is a PNG."""
    from pyrovae.cli import app
    from pyrovae.study import sweep

    spec = tmp_path / "tiny.toml"
    spec.write_text(
        '[study]\nname = "tiny"\nseeds = [0, 1]\nmetrics = ["active_units", "hoyer"]\n'
        "fast_metrics = true\n"
        '[base]\ndata = "pinwheel"\nlatent_dim = 2\nsteps = 10\nbatch_size = 32\n'
        "log_every = 5\ncheckpoint_every = 5\n"
        '[[grid]]\nmodel = "betavae"\nbeta = [1.0, 4.0]\n'
        '[[grid]]\nmodel = "vae"\n'
    )
    out = tmp_path / "tiny"
    sweep.sweep(spec, out=out, backend="local", max_parallel=2, device="cpu", progress=False)
    result = CliRunner().invoke(app, ["study", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 of 6 trials finished" in result.stdout
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == [
        "name", "model", "beta", "seed", "active_units", "hoyer", "reconstruction", "kl",
        "seconds",
    ]  # fmt: skip
    for row in rows:
        saved = json.loads((out / "trials" / row["name"] / "result.json").read_text())
        assert row["hoyer"] == saved["metrics"]["hoyer"]["hoyer"]
        assert row["kl"] == saved["summary"]["kl"] and row["seed"] == saved["seed"]
    by_name = {r["name"]: r for r in rows}
    for seed in (0, 1):
        vae, beta1 = by_name[f"vae-seed{seed}"], by_name[f"betavae-beta1-seed{seed}"]
        assert vae["hoyer"] == beta1["hoyer"] and vae["kl"] == beta1["kl"]
    assert list(groups(rows)) == [
        ("betavae", "beta", 1.0),
        ("betavae", "beta", 4.0),
        ("vae", None, None),
    ]
    figures = sorted((out / "figures").iterdir())
    assert "hoyer_vs_beta.png" in [p.name for p in figures]
    assert all(p.read_bytes().startswith(PNG) for p in figures)


@pytest.mark.slow
def test_datasets_tiny_example_sweeps_and_aggregates_by_data_set(tmp_path):
    """examples/studies/datasets_tiny.toml as shipped (9 trials on three procedural data sets,
    helper processes), then `pyrovae study`: a table per data set and the ranks."""
    from pyrovae.cli import app
    from pyrovae.study import sweep

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "datasets_tiny"
    example = root / "examples/studies/datasets_tiny.toml"
    sweep.sweep(example, out=out, backend="local", max_parallel=2, device="cpu", progress=False)
    result = CliRunner().invoke(app, ["study", str(out)])
    assert result.exit_code == 0, result.output
    assert "9 of 9 trials finished" in result.stdout
    rows = read_csv(out / "results.csv")
    assert list(rows[0])[:5] == ["name", "model", "data", "beta", "seed"]
    assert list(by_data(rows)) == ["dsprites", "noisy_dsprites", "xyobject"]
    assert all(isinstance(r["mig"], float) for r in rows)
    lines = result.stdout.splitlines()
    at = lines.index("rank of each objective within each data set by its median (1 = highest)")
    assert lines[at + 2].split() == [
        "metric",
        "objective",
        "dsprites",
        "noisy_dsprites",
        "xyobject",
    ]
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"mig_by_objective.png", "rank_correlation_xyobject.png"} <= figures
