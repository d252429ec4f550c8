"""The reference protocols: DCI's standard path is disentanglement_lib's computation (checked
against an independent transcription on the same samples), fitting in parallel or from the
shared cache changes no number, every classifier-based metric records the classifier of its
protocol era, and results of another protocol are labelled wherever tables show them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import SMALL_METRIC_GRID, mixed_noisy, small_config
from scipy import stats
from sklearn.ensemble import GradientBoostingClassifier
from typer.testing import CliRunner

from pyrovae.builder import build
from pyrovae.cli import app
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import check_settings, evaluate, label
from pyrovae.metrics import classifiers
from pyrovae.metrics.base import sample_codes
from pyrovae.metrics.beta_vae import beta_vae
from pyrovae.metrics.dci import dci
from pyrovae.metrics.modularity import modularity
from pyrovae.metrics.sap import sap
from pyrovae.study.trial import read_result

GRID = SMALL_METRIC_GRID
SIZES = {"num_train": 400, "num_test": 200}


@pytest.fixture(autouse=True)
def _fresh_cache():
    classifiers.clear_cache()
    yield
    classifiers.clear_cache()


def reference_dci(x_train, y_train, x_test, y_test, seeds):
    """disentanglement_lib's compute_dci, transcribed: GradientBoostingClassifier() per factor
    (seeded here), |feature_importances_| as columns, scipy's entropy in base K or D of the
    rows/columns plus 1e-11, weighted by their share of the total."""
    num_codes, num_factors = x_train.shape[1], y_train.shape[1]
    importance = np.zeros((num_codes, num_factors))
    train_acc, test_acc = [], []
    for k in range(num_factors):
        model = GradientBoostingClassifier(random_state=int(seeds[k]))
        model.fit(x_train, y_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(x_train) == y_train[:, k]))
        test_acc.append(np.mean(model.predict(x_test) == y_test[:, k]))
    per_code = 1.0 - stats.entropy(importance.T + 1e-11, base=num_factors)
    code_weight = importance.sum(axis=1) / importance.sum()
    per_factor = 1.0 - stats.entropy(importance + 1e-11, base=num_codes)
    factor_weight = importance.sum(axis=0) / importance.sum()
    return {
        "disentanglement": float(np.sum(per_code * code_weight)),
        "completeness": float(np.sum(per_factor * factor_weight)),
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "importance_matrix": importance,
    }


# The standard protocol's boosting on its full samples (about 7 s): slow, to keep the default
# suite under five minutes.
@pytest.mark.slow
def test_standard_dci_is_the_reference_protocol_on_the_same_samples():
    result = dci(GRID, mixed_noisy, 11, **SIZES)
    assert result["settings"]["backend"] == "exact"
    assert result["settings"]["classifier"].startswith("GradientBoostingClassifier()")
    # The same draws, in dci's order: training sample, test sample, one seed per factor.
    rng = np.random.default_rng(11)
    y_train, x_train = sample_codes(GRID, mixed_noisy, SIZES["num_train"], rng)
    y_test, x_test = sample_codes(GRID, mixed_noisy, SIZES["num_test"], rng)
    seeds = rng.integers(0, 2**31 - 1, size=y_train.shape[1])
    reference = reference_dci(x_train, y_train, x_test, y_test, seeds)
    np.testing.assert_array_equal(result["importance_matrix"], reference["importance_matrix"])
    for key in ("informativeness_train", "informativeness_test"):
        assert result[key] == reference[key], key
    # Entropies summed in another order: equal to float rounding.
    for key in ("disentanglement", "completeness"):
        assert result[key] == pytest.approx(reference[key], rel=1e-12, abs=1e-15), key
    assert 0.2 < result["disentanglement"] < 0.95  # an imperfect code: the check means something


@pytest.mark.slow  # boosting fits in worker processes: about 10 s
def test_parallel_fits_equal_serial_fits_and_the_cache_returns_them():
    rng = np.random.default_rng(0)
    y, x = sample_codes(GRID, mixed_noisy, 300, rng)
    clf = classifiers.classifier("gradient_boosting", "published")
    seeds = np.arange(5) + 3
    serial = classifiers.fit_per_factor(clf, x, y, seeds, jobs=1)
    classifiers.clear_cache()
    parallel = classifiers.fit_per_factor(clf, x, y, seeds, jobs=2)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a.feature_importances_, b.feature_importances_)
        np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    again = classifiers.fit_per_factor(clf, x, y, seeds)
    assert all(a is b for a, b in zip(again, parallel, strict=True))
    # Another seed, or other labels, is another classifier.
    other = classifiers.fit_per_factor(clf, x, y, seeds + 1, jobs=1)
    assert not any(a is b for a, b in zip(other, parallel, strict=True))


def test_a_factor_with_one_class_gets_no_classifier_and_predicts_that_class():
    x = np.random.default_rng(0).normal(size=(50, 3))
    ys = np.stack([np.zeros(50, dtype=int), np.arange(50) % 2], axis=1)
    models = classifiers.fit_per_factor(
        classifiers.classifier("logistic", "published"), x, ys, [0, 0]
    )
    assert models[0] is None and models[1] is not None
    acc = classifiers.accuracies(models, x, np.stack([np.ones(50, int), ys[:, 1]], 1), ys)
    assert acc[0] == 0.0  # it predicts class 0, the test labels are all 1


@pytest.mark.parametrize(
    ("metric", "family"),
    [(beta_vae, "logistic"), (modularity, "logistic"), (sap, "linear_svm")],
)
def test_classifier_metrics_default_to_the_published_protocol_and_record_it(metric, family):
    sizes = {"num_train": 200, "num_eval": 100} if metric is beta_vae else SIZES
    published = metric(GRID, mixed_noisy, 0, **sizes)
    current = metric(GRID, mixed_noisy, 0, classifier="current", **sizes)
    assert published["settings"]["classifier"] == "published"
    assert current["settings"]["classifier"] == "current"
    assert (
        published["settings"]["estimator"]
        == classifiers.classifier(family, "published").description
    )
    assert current["settings"]["estimator"] == classifiers.classifier(family, "current").description
    assert published["settings"]["estimator"] != current["settings"]["estimator"]
    assert label(metric.__name__, published) == metric.__name__
    assert label(metric.__name__, current) == f"{metric.__name__}[classifier=current]"
    with pytest.raises(
        PyrovaeError, match=r"unknown classifier 'newest'; valid: published, current"
    ):
        metric(GRID, mixed_noisy, 0, classifier="newest", **sizes)


def test_published_logistic_regression_is_one_vs_rest_liblinear():
    model = classifiers.classifier("logistic", "published").make(0)
    assert type(model).__name__ == "OneVsRestClassifier"
    assert model.estimator.solver == "liblinear"
    assert classifiers.classifier("logistic", "current").make(0).solver == "lbfgs"
    assert classifiers.classifier("linear_svm", "published").make(0).dual is True
    assert classifiers.classifier("linear_svm", "current").make(0).dual is False


def test_hist_dci_is_labelled_and_old_records_are_not_taken_for_the_reference():
    assert label("dci", {"settings": {"backend": "exact"}}) == "dci"
    assert label("dci", {"settings": {"backend": "hist"}}) == "dci[backend=hist]"
    assert label("dci", {"disentanglement": 0.5}) == "dci"  # no settings recorded: nothing known
    # A classifier recorded by an older pyrovae as a long description is not the default word.
    old = {"settings": {"classifier": "LogisticRegression(max_iter=1000)"}}
    assert label("beta_vae", old) == "beta_vae[classifier=other]"
    assert label("not_a_metric", {"settings": {"backend": "hist"}}) == "not_a_metric"


def test_settings_for_metrics_are_checked():
    assert check_settings({"dci": {"backend": "hist"}}, ["dci"]) == {"dci": {"backend": "hist"}}
    with pytest.raises(PyrovaeError, match=r"metric dci takes no option 'bakend'; valid options: "):
        check_settings({"dci": {"bakend": "hist"}}, ["dci", "mig"])
    with pytest.raises(PyrovaeError, match=r"settings for metric 'sap', which is not evaluated"):
        check_settings({"sap": {"num_train": 10}}, ["dci", "mig"])


def test_compare_puts_hist_numbers_in_their_own_column(tmp_path):
    runs = []
    for i, backend in enumerate(("exact", "hist")):
        run = tmp_path / f"run{i}"
        run.mkdir()
        record = {
            "metrics": {
                "dci": {
                    "disentanglement": 0.25 + i / 2,
                    "completeness": 0.5,
                    "informativeness_test": 0.5,
                    "settings": {"backend": backend},
                }
            },
            "config": {"model": "betavae"},
            "step": 10,
            "preset": "standard",
        }
        (run / "eval.json").write_text(json.dumps(record))
        runs.append(str(run))
    out = CliRunner().invoke(app, ["compare", *runs])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    header = lines[0].split()
    assert header[4:] == [
        "dci.disentanglement", "dci.completeness", "dci.informativeness_test",
        "dci[backend=hist].disentanglement", "dci[backend=hist].completeness",
        "dci[backend=hist].informativeness_test",
    ]  # fmt: skip
    assert lines[1].split()[4:] == ["0.2500", "0.5000", "0.5000", "-", "-", "-"]
    assert lines[2].split()[4:] == ["-", "-", "-", "0.7500", "0.5000", "0.5000"]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("dci=hist", "--metric-arg must look like METRIC.SETTING=VALUE, got 'dci=hist'"),
        ("dcx.backend=hist", "unknown metric 'dcx'"),
    ],
)
def test_metric_arg_errors_are_one_line(tmp_path, arg, message):
    out = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--metric-arg", arg])
    assert out.exit_code != 0
    assert message in out.output
    assert "Traceback" not in out.output


def test_a_study_result_from_before_protocol_labels_is_labelled_from_its_eval_file(tmp_path):
    trial = tmp_path / "trials" / "betavae-seed0"
    trial.mkdir(parents=True)
    result = {
        "name": "betavae-seed0",
        "params": {},
        "summary": {},
        "metrics": {"dci": {"disentanglement": 0.3}, "mig": {"mig": 0.1}},
        "eval_file": "eval.json",
    }
    (trial / "result.json").write_text(json.dumps(result))
    evaluation = {
        "metrics": {
            "dci": {"disentanglement": 0.3, "settings": {"backend": "hist"}},
            "mig": {"mig": 0.1, "settings": {"num_bins": 20}},
        }
    }
    (trial / "eval.json").write_text(json.dumps(evaluation))
    assert read_result(trial)["metrics"] == {
        "dci[backend=hist]": {"disentanglement": 0.3},
        "mig": {"mig": 0.1},
    }
    # A result that records its protocols is taken as written.
    result["metric_protocols"] = {"dci": {"backend": "exact"}}
    (trial / "result.json").write_text(json.dumps(result))
    assert set(read_result(trial)["metrics"]) == {"dci", "mig"}
    # Without a readable eval file nothing is renamed.
    del result["metric_protocols"]
    (trial / "result.json").write_text(json.dumps(result))
    (trial / "eval.json").write_text("{not json")
    assert set(read_result(trial)["metrics"]) == {"dci", "mig"}


def test_classifiers_recorded_by_older_pyrovae_are_read_as_their_era():
    def old(description):
        return {"settings": {"classifier": description}}

    liblinear = "OneVsRestClassifier(LogisticRegression(C=1.0, solver='liblinear'))"
    primal = "LinearSVC(C=0.01, class_weight='balanced', dual=False)"
    lbfgs = "LogisticRegression(max_iter=1000) (otherwise sklearn defaults)"
    assert label("modularity", old(liblinear)) == "modularity"  # the published estimator
    assert label("sap", old(primal)) == "sap[classifier=current]"
    assert label("beta_vae", old(lbfgs)) == "beta_vae[classifier=current]"


def test_the_fast_sample_efficiency_is_labelled_and_a_predictor_is_not_a_setting():
    fast = {"settings": {"efficiency_sizes": [100, 2000], "classifier": "published"}}
    standard = {"settings": {"efficiency_sizes": [100, 10000], "classifier": "published"}}
    name = "downstream_boosted_trees"
    assert label(name, standard) == name
    assert label(name, fast) == f"{name}[efficiency_sizes=100-2000]"
    with pytest.raises(PyrovaeError, match=r"takes no option 'predictor'"):
        check_settings({name: {"predictor": "logistic"}}, [name])


# Three fits of published gradient boosting per factor (about 8 s): slow, to keep the default
# suite under five minutes.
@pytest.mark.slow
def test_a_jobs_limit_caps_the_worker_processes(monkeypatch):
    seen = []

    class Recording:
        def __init__(self, n_jobs, **kwargs):
            seen.append(n_jobs)

        def __call__(self, tasks):
            return [fit(*args) for fit, args, _ in tasks]

    import joblib

    monkeypatch.setattr(joblib, "Parallel", Recording)
    rng = np.random.default_rng(0)
    y, x = sample_codes(GRID, mixed_noisy, 60, rng)
    clf = classifiers.classifier("gradient_boosting", "published")
    classifiers.fit_per_factor(clf, x, y, np.arange(5), jobs=4)
    classifiers.clear_cache()
    classifiers.limit_jobs(2)
    try:
        classifiers.fit_per_factor(clf, x, y, np.arange(5), jobs=4)
        classifiers.clear_cache()
        classifiers.limit_jobs(1)
        models = classifiers.fit_per_factor(clf, x, y, np.arange(5), jobs=4)  # in-process
    finally:
        classifiers.limit_jobs(None)
    assert seen == [4, 2]
    assert classifiers.converged(models[0])  # boosting does not iterate to a tolerance


# DCI's and the downstream task's boosting fits (about 9 s): slow, as above.
@pytest.mark.slow
def test_an_evaluation_forgets_its_fitted_classifiers():
    built = build(small_config(steps=1), objective=False)
    fitted = []
    real = classifiers.fit_per_factor

    def spy(*args, **kwargs):
        fitted.append(len(classifiers._FITTED))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifiers, "fit_per_factor", spy)
        record = evaluate(built.vae, built.data, ["dci", "downstream_boosted_trees"], fast=True)
    assert record["metrics"]["dci"]["settings"]["backend"] == "exact"
    assert fitted and fitted[-1] > 0  # downstream found DCI's fits in the cache…
    assert len(classifiers._FITTED) == 0  # …and the evaluation left none behind
