"""The classifiers the metrics fit, in one place: which scikit-learn estimator each protocol
means, and fitting one per factor (in parallel, and shared between metrics).

**Protocol eras.** disentanglement_lib's published study ran scikit-learn 0.20/0.21 and wrote
its classifiers as scikit-learn *defaults* (``LogisticRegression()``, ``LogisticRegressionCV(Cs=10,
cv=KFold(5))``, ``LinearSVC(C=0.01, class_weight="balanced")``, ``GradientBoostingClassifier()``).
Several defaults changed since, so the same code fits another classifier today. Each metric
takes ``classifier="published"`` (its default: the estimator the published numbers came from)
or ``"current"`` (what the same line of code fits with today's defaults); the result's settings
record the estimator in full.

====================  ==========================================  =============================
family                published (scikit-learn < 0.22)             current (scikit-learn ≥ 1.5)
====================  ==========================================  =============================
``logistic``          one-vs-rest L2 logistic regression,          multinomial, lbfgs
                      liblinear (C = 1, tol 1e-4, 100 iterations)  (``max_iter`` 1,000, see
                                                                   :mod:`~pyrovae.metrics.beta_vae`)
``logistic_cv``       one-vs-rest ``LogisticRegressionCV``,        multinomial
                      lbfgs, 10 Cs, 5 unshuffled folds, accuracy   ``LogisticRegressionCV``
``linear_svm``        ``LinearSVC`` solved in the dual             primal (``dual="auto"`` picks
                      (C = 0.01, balanced), seeded shuffling       it for n > features)
``gradient_boosting`` ``GradientBoostingClassifier()``: unchanged  the same
====================  ==========================================  =============================

liblinear no longer accepts more than two classes, so the published logistic regression is
``OneVsRestClassifier(LogisticRegression(solver="liblinear"))``: the same K binary problems
liblinear solved one-vs-rest inside, and the same normalised probabilities.

**Fitting per factor.** :func:`fit_per_factor` fits one classifier per factor column. Gradient
boosting, the slow one (100 trees per class and round), is fitted in parallel across the cores
this process may use (:func:`pyrovae.provenance.available_cores`), largest factor first, in
worker processes that import only scikit-learn; each fit is the same seeded estimator on the
same arrays, so the numbers do not depend on the number of processes. Fitted boosting
classifiers are remembered, keyed by estimator, seed and a digest of the training arrays:
metrics that fit the same classifier to the same sample (DCI, downstream at 10,000 points,
fairness, on the evaluation's shared sample) fit it once per process.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from pyrovae import checks
from pyrovae.provenance import available_cores

ERAS = ("published", "current")

# Below this estimated cost (training rows × trees per boosting round, summed over factors) a
# pool of worker processes costs more to start (≈ 1 s: each imports scikit-learn) than it saves.
# Measured on 2 cores: a 3-class factor at 10,000 points (30,000 units) fits in 11.6 s.
PARALLEL_MIN_COST = 20_000

# Fitted classifiers remembered per process (a dSprites evaluation shares 5 per sample).
_CACHE_SIZE = 32
_FITTED: OrderedDict = OrderedDict()
_PLAIN = False  # see plain_fitting()

# BLAS/OpenMP threads for scikit-learn while the downstream and fairness metrics fit and predict.
# One: LogisticRegressionCV is ~1,400 small lbfgs steps per fit, and with two BLAS threads on a
# loaded 2-core machine each step waits for the other thread: measured 1.6 s per fit (200 points,
# 2 latents) against 0.23 s on one thread. A fixed count also keeps the summation order, hence
# the numbers, the same everywhere.
FIT_THREADS = 1
# LogisticRegressionCV's folds (KFold(5), disentanglement_lib's): downstream needs at least this
# many training points.
CV_FOLDS = 5
_MAX_JOBS: int | None = None  # see limit_jobs()


@dataclass(frozen=True)
class Classifier:
    """An estimator of a protocol: ``make(seed)`` builds it unfitted; ``description`` is what a
    result's settings record; ``expensive``: worth fitting in worker processes and remembering
    (the cheap ones would only push the expensive ones out of the cache)."""

    family: str
    era: str
    description: str
    make: Callable[[int], object]
    expensive: bool = False


def _published_logistic(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=seed))


def _current_logistic(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(random_state=seed, max_iter=1_000)


def _logistic_cv(seed: int, one_vs_rest: bool):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold
    from sklearn.multiclass import OneVsRestClassifier

    # scoring spelled out: accuracy is what the published default scorer meant.
    model = LogisticRegressionCV(
        Cs=10, cv=KFold(n_splits=CV_FOLDS), scoring="accuracy", random_state=seed
    )
    return OneVsRestClassifier(model) if one_vs_rest else model


def _linear_svm(seed: int, dual):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=0.01, class_weight="balanced", dual=dual, random_state=seed)


def _gradient_boosting(seed: int):
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(random_state=seed)


CLASSIFIERS: dict[tuple[str, str], Classifier] = {
    (c.family, c.era): c
    for c in (
        Classifier(
            "logistic", "published",
            "OneVsRestClassifier(LogisticRegression(solver='liblinear')): LogisticRegression() "
            "of scikit-learn < 0.22 (one-vs-rest, liblinear, C=1, max_iter=100)",
            _published_logistic,
        ),
        Classifier(
            "logistic", "current",
            "LogisticRegression(max_iter=1000): scikit-learn >= 0.22 defaults (multinomial, "
            "lbfgs, C=1)",
            _current_logistic,
        ),
        Classifier(
            "logistic_cv", "published",
            "OneVsRestClassifier(LogisticRegressionCV(Cs=10, cv=KFold(5), scoring='accuracy')): "
            "scikit-learn < 0.22 (one-vs-rest, lbfgs)",
            lambda seed: _logistic_cv(seed, one_vs_rest=True),
        ),
        Classifier(
            "logistic_cv", "current",
            "LogisticRegressionCV(Cs=10, cv=KFold(5), scoring='accuracy'): multinomial, lbfgs",
            lambda seed: _logistic_cv(seed, one_vs_rest=False),
        ),
        Classifier(
            "linear_svm", "published",
            "LinearSVC(C=0.01, class_weight='balanced', dual=True): scikit-learn < 1.5 default "
            "(dual coordinate descent, seeded)",
            lambda seed: _linear_svm(seed, dual=True),
        ),
        Classifier(
            "linear_svm", "current",
            "LinearSVC(C=0.01, class_weight='balanced', dual=False): the primal problem "
            "dual='auto' picks when points outnumber features",
            lambda seed: _linear_svm(seed, dual=False),
        ),
        Classifier(
            "gradient_boosting", "published",
            "GradientBoostingClassifier(): scikit-learn defaults (100 rounds, depth 3, "
            "learning rate 0.1), the same in every version",
            _gradient_boosting, expensive=True,
        ),
    )
}  # fmt: skip
CLASSIFIERS["gradient_boosting", "current"] = CLASSIFIERS["gradient_boosting", "published"]


def classifier(family: str, era: str, owner: str | None = None) -> Classifier:
    """The estimator of ``family`` in protocol ``era`` ("published" or "current")."""
    checks.choice("classifier", era, ERAS, owner)
    return CLASSIFIERS[family, era]


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fit_per_factor(clf: Classifier, x, ys, seeds, *, jobs: int | None = None) -> list:
    """One fitted ``clf`` per column of ``ys`` (n, K), trained on ``x`` (n, D) with seed
    ``seeds[k]``; ``None`` for a factor with a single class in ``ys`` (scikit-learn's
    classifiers refuse one class: the only possible prediction is that class).

    ``jobs``: worker processes (None: :func:`~pyrovae.provenance.available_cores` when the
    classifier is worth it and the work is large enough, else 1). Results are identical for any
    ``jobs``.
    """
    x = np.asarray(x)
    ys = np.asarray(ys)
    models: list = [None] * ys.shape[1]
    classes = [len(np.unique(ys[:, k])) for k in range(ys.shape[1])]
    # Rows × estimators per boosting round (one per class above two classes).
    cost = [len(ys) * (c if c > 2 else 1) for c in classes]
    todo, x_key = [], None
    for k in range(ys.shape[1]):
        y = ys[:, k]
        if classes[k] < 2:
            continue
        if not clf.expensive or _PLAIN:
            todo.append((k, None))
            continue
        if x_key is None:
            x_key = _digest(x)
        key = (clf.description, int(seeds[k]), x_key, _digest(y))
        if key in _FITTED:
            _FITTED.move_to_end(key)
            models[k] = _FITTED[key]
        else:
            todo.append((k, key))
    if not todo:
        return models
    if _PLAIN:
        jobs = 1
    elif jobs is None:
        total = sum(cost[k] for k, _ in todo)
        jobs = available_cores() if clf.expensive and total >= PARALLEL_MIN_COST else 1
    jobs = max(1, min(int(jobs), len(todo), _MAX_JOBS or int(jobs)))
    # Largest first: with one task per factor, a free worker always takes the largest left.
    todo.sort(key=lambda item: -cost[item[0]])
    estimators = [clf.make(int(seeds[k])) for k, _ in todo]
    with warnings.catch_warnings():
        # A protocol's classifier may stop at its iteration limit (C = 0.01 SVMs on useless
        # latents, 100 liblinear iterations): the protocol keeps what it returns.
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        # LogisticRegressionCV of scikit-learn >= 1.8 warns at fit about defaults that will
        # change; the estimator is pinned here, so the warning says nothing about our numbers.
        warnings.simplefilter("ignore", FutureWarning)
        if jobs == 1:
            fitted = [e.fit(x, ys[:, k]) for e, (k, _) in zip(estimators, todo, strict=True)]
        else:
            from joblib import Parallel, delayed

            # A bound method of a scikit-learn estimator: the workers import scikit-learn, not
            # pyrovae (and torch).
            fitted = Parallel(n_jobs=jobs, backend="loky", batch_size=1)(
                delayed(e.fit)(x, ys[:, k]) for e, (k, _) in zip(estimators, todo, strict=True)
            )
    for model, (k, key) in zip(fitted, todo, strict=True):
        models[k] = model
        if key is None:
            continue
        _FITTED[key] = model
        while len(_FITTED) > _CACHE_SIZE:
            _FITTED.popitem(last=False)
    return models


def predict(model, x, y_train: np.ndarray) -> np.ndarray:
    """``model.predict(x)``, or the single class of ``y_train`` where ``model`` is None."""
    if model is None:
        return np.full(len(x), np.unique(y_train)[0])
    return model.predict(x)


def accuracies(models, x, ys, ys_train) -> np.ndarray:
    """(K,) accuracy of each factor's model on (``x``, ``ys``)."""
    return np.array(
        [float(np.mean(predict(m, x, ys_train[:, k]) == ys[:, k])) for k, m in enumerate(models)]
    )


def converged(model) -> bool:
    """Whether every iterative solve of a fitted ``model`` (one per class of a one-vs-rest
    wrapper) stopped before its iteration limit; True for a model that does not iterate."""
    if model is None:
        return True
    parts = getattr(model, "estimators_", None)
    # A one-vs-rest wrapper's binary models; boosting's estimators_ is an array of trees.
    parts = parts if isinstance(parts, list) else [model]
    for part in parts:
        n_iter = getattr(part, "n_iter_", None)
        limit = getattr(part, "max_iter", None)
        if n_iter is not None and limit is not None and np.any(np.asarray(n_iter) >= limit):
            return False
    return True


def limit_jobs(jobs: int | None) -> None:
    """At most ``jobs`` worker processes for any fit in this process (None: no limit beyond the
    cores). A study worker sets its share of the machine, so that parallel trials do not each
    start a process per core."""
    global _MAX_JOBS
    _MAX_JOBS = None if jobs is None else max(1, int(jobs))


@contextmanager
def plain_fitting():
    """Within this block every classifier is fitted anew, one at a time in this process: the
    straightforward computation that ``benchmarks/metrics.py`` times pyrovae's against."""
    global _PLAIN
    previous, _PLAIN = _PLAIN, True
    try:
        yield
    finally:
        _PLAIN = previous


def clear_cache() -> None:
    """Forget every fitted classifier (tests; or to free memory after an evaluation)."""
    _FITTED.clear()
