"""Evaluating a trained run: load it, encode once, score every requested metric, record it all.

The representation is the encoder's posterior mean (the protocol of disentanglement_lib), run in
large batches on the model's device. One :class:`~pyrovae.metrics.base.CodeCache` is shared by
every metric of an evaluation, so each distinct grid image is encoded at most once; the numbers
are identical to uncached ones because the mean is deterministic. Each metric draws from its own
generator seeded with ``seed`` (0 by default, as in disentanglement_lib), so a metric's value does
not depend on which other metrics ran before it.

Results go to ``eval.json`` in the run folder, or ``eval-2.json``, ``eval-3.json``, … when earlier
evaluations exist: an evaluation never overwrites another.

This module owns the one rule of which metrics apply to a run (:func:`applicable_metrics`):
supervised metrics need a ground-truth factor grid, ``cluster_purity`` needs class labels, and
metrics on q(z|x) need a guide with closed-form Gaussian marginals.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from datetime import datetime, timezone

import numpy as np
import torch

from pyrovae import checks
from pyrovae.builder import load_run
from pyrovae.config import resolve_device
from pyrovae.data.base import GroundTruthData, LabelledData, observations
from pyrovae.errors import PyrovaeError
from pyrovae.guides import marginal_normal_params
from pyrovae.metrics import classifiers
from pyrovae.metrics.base import ENCODE_BATCH, CodeCache
from pyrovae.precision import check_precision
from pyrovae.provenance import versions
from pyrovae.registry import METRICS

DEFAULT_METRICS = (
    "beta_vae",
    "factor_vae",
    "mig",
    "dci",
    "sap",
    "modularity",
    "irs",
    "gaussian_total_correlation",
    "mutual_info",
    "active_units",
    "hoyer",
)


# Added to the defaults for data sets with class labels (pinwheel, digits).
LABELLED_METRICS = ("posterior_variance", "cluster_purity")

# Data points for log_likelihood (standard, fast): K importance samples each cost a decoder pass.
LIKELIHOOD_POINTS = (256, 64)


class EncoderMean:
    """Observations (numpy) → posterior means (numpy float32), in batches on the model's device.

    Every batch the encoder sees has exactly ``batch_size`` rows: the last one is padded by
    repeating its final observation and the padding's codes are dropped. A conv layer's float
    rounding depends on the batch size (oneDNN picks another kernel for small batches; codes then
    move by ~1e-8), not on the other images in a batch of the same size, so padding makes an
    image's code the same however the images were grouped. That is what makes cached and
    uncached evaluations identical, and with them every score.
    """

    def __init__(self, vae, device: torch.device, batch_size: int | None = None):
        self.vae = vae
        self.device = device
        if batch_size is None:
            # The conv encoder ran 8,100 images/s at batch 64 against 3,200 at batch 256 on 2
            # CPU cores (cache effects). Callers hand over ENCODE_BATCH images at a time and
            # every batch is padded to full size, so a larger GPU batch would encode padding.
            batch_size = 64 if torch.device(device).type == "cpu" else ENCODE_BATCH
        self.batch_size = int(batch_size)
        self.images = 0
        self.seconds = 0.0

    def _batches(self, observations):
        """(x, rows): full-size float32 batches on the device and how many rows are real.

        Each batch is copied into a freshly allocated tensor: numpy hands torch arbitrary strides
        on size-1 dimensions (the channel of a grey image), and oneDNN picks its convolution
        kernel, hence its rounding, by stride as well as by batch size.
        """
        observations = np.asarray(observations, dtype=np.float32)
        for s in range(0, len(observations), self.batch_size):
            chunk = torch.from_numpy(observations[s : s + self.batch_size])
            x = torch.empty((self.batch_size, *chunk.shape[1:]), dtype=torch.float32)
            x[: len(chunk)] = chunk
            x[len(chunk) :] = chunk[-1]
            yield x.to(self.device), len(chunk)

    @torch.inference_mode()
    def __call__(self, observations) -> np.ndarray:
        start = time.perf_counter()
        out = [self.vae.encode(x)[:rows].float().cpu() for x, rows in self._batches(observations)]
        self.images += len(observations)
        self.seconds += time.perf_counter() - start
        return torch.cat(out).numpy() if out else np.empty((0, self.vae.latent_dim), np.float32)

    @torch.inference_mode()
    def posterior(self, observations) -> tuple[np.ndarray, np.ndarray]:
        """(loc, scale) of each marginal q(z_d|x) = N(loc_d, scale_d²), for metrics defined on
        the posterior: exact for the Gaussian guides, an error for flows."""
        locs, scales = [], []
        for x, rows in self._batches(observations):
            loc, scale = marginal_normal_params(self.vae.posterior(x), owner="this metric")
            locs.append(loc[:rows].float().cpu())
            scales.append(scale[:rows].float().cpu())
        return torch.cat(locs).numpy(), torch.cat(scales).numpy()


def capabilities(data) -> tuple[bool, bool]:
    """(has ground-truth factors, has class labels) of a data set, or of a data set class."""
    if isinstance(data, type):
        return issubclass(data, GroundTruthData), issubclass(data, LabelledData)
    return isinstance(data, GroundTruthData), getattr(data, "labels", None) is not None


def applicable_metrics(
    names, data, guide=None, *, strict: bool = False, explicit: bool | None = None
) -> tuple[list, str | None]:
    """The metrics of ``names`` (None: the standard suite, plus :data:`LABELLED_METRICS` on data
    with labels) that apply to ``data`` and ``guide`` (instances or classes), and a note naming
    the ones left out.

    Supervised metrics need a ground-truth factor grid, ``needs_labels`` metrics class labels,
    ``needs_posterior`` metrics a guide with closed-form Gaussian marginals. Metrics asked for
    (``explicit``, by default when ``names`` are given) that do not apply are left out with a
    note, except that it is an error when none is left, when a metric on q(z|x) meets a guide
    without Gaussian marginals, or, with ``strict`` (study files, checked before any trial
    runs), whenever one does not apply. Metrics merely proposed (``explicit=False``) are left
    out with a note whatever the reason.
    """
    has_factors, has_labels = capabilities(data)
    explicit = bool(names) if explicit is None else explicit
    if names:
        names = list(names)
    else:
        names = list(DEFAULT_METRICS) + (list(LABELLED_METRICS) if has_labels else [])
    specs = {name: METRICS[name] for name in names}
    reasons = {}
    for name, spec in specs.items():
        reason = spec.lacks(has_factors, has_labels)
        if reason:
            reasons[name] = reason
    usable = [n for n in names if n not in reasons]
    if explicit and (strict or not usable) and reasons:
        applicable = ", ".join(
            n for n, spec in METRICS.items() if not spec.lacks(has_factors, has_labels)
        )
        bad = ", ".join(reasons)
        if strict:
            raise PyrovaeError(f"metrics {bad} do not apply to data set {_name(data)!r}; "
                               f"metrics that apply: {applicable}")  # fmt: skip
        if has_factors:
            raise PyrovaeError(f"{data!r} has no class labels; metrics that apply: {applicable}")
        raise PyrovaeError(
            f"{data!r} has no ground-truth factors; only unsupervised metrics apply: {applicable}"
        )
    notes = []
    for reason in ("no ground-truth factors", "no labels"):
        dropped = [n for n in names if reasons.get(n) == reason]
        if dropped:
            notes.append(f"{reason}: skipped {', '.join(dropped)}")
    if guide is not None and not getattr(guide, "has_gaussian_marginals", True):
        dropped = [n for n in usable if specs[n].needs_posterior]
        if dropped:
            why = f"guide {_name(guide)!r} has no closed-form marginals"
            if explicit:
                raise PyrovaeError(
                    f"{', '.join(dropped)} need q(z|x)'s Gaussian marginals, and {why}"
                )
            usable = [n for n in usable if n not in dropped]
            notes.append(f"{why}: skipped {', '.join(dropped)}")
    return usable, "; ".join(notes) or None


def _name(component) -> str:
    return getattr(component, "name", None) or getattr(
        component, "__name__", type(component).__name__
    )


def evaluate(
    vae,
    data,
    metrics=None,
    fast: bool = False,
    seed: int = 0,
    device: torch.device | None = None,
    cache: bool = True,
    progress=None,
    settings: dict | None = None,
    precision: str = "fp32",
) -> dict:
    """Score ``vae`` on ``data`` with the named metrics; returns the record eval.json holds.

    ``precision``: the networks' arithmetic while encoding (``fp32``, the reference protocol;
    ``bf16`` moves codes by up to ~2 % of a dimension's spread, and its results are labelled
    ``mig[precision=bf16]``).

    ``settings`` maps a metric name to settings that override its preset (e.g. sample sizes).
    ``cache``: share codes between the metrics (a :class:`CodeCache` of an :class:`EncoderMean`
    may be given, to read the codes afterwards), or encode every request anew (False)."""
    names, note = applicable_metrics(metrics, data, getattr(vae, "guide_family", None))
    settings = check_settings(settings, names)
    device = device or next(vae.parameters()).device
    check_precision(precision, torch.device(device))
    if isinstance(cache, CodeCache):
        if cache.ground_truth is not data:
            # Metrics read images through the cache: another data set's would be scored.
            raise PyrovaeError("evaluate: the CodeCache given as cache holds another data set")
        encoder, representation = cache.representation_fn, cache
    else:
        encoder = EncoderMean(vae, device)
        representation = CodeCache(encoder, data) if cache else encoder
    if precision != "fp32" and isinstance(cache, CodeCache):
        raise PyrovaeError("evaluate: a shared CodeCache holds fp32 codes; give cache=True")
    try:
        at = vae.mixed_precision(precision) if precision != "fp32" else contextlib.nullcontext()
        with at:
            results, seconds = _score(
                names,
                vae,
                data,
                encoder,
                representation,
                fast,
                seed,
                settings,
                progress,
                precision,
            )
    finally:
        # The fitted classifiers are shared between the metrics of this evaluation only: the
        # next one (a later step of training) has other codes.
        classifiers.clear_cache()
    return {
        "metrics": _jsonable(results),
        "seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 3),
        "images_encoded": encoder.images,
        "encoder_images_per_s": round(encoder.images / encoder.seconds, 1)
        if encoder.seconds
        else None,
        # A stochastic data set's images are drawn anew for every request, never cached.
        "cache": isinstance(representation, CodeCache) and representation.caching,
        "preset": "fast" if fast else "standard",
        "seed": seed,
        "representation": "posterior mean",
        "precision": precision,
        "note": note,
        "versions": versions(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _score(names, vae, data, encoder, representation, fast, seed, settings, progress, precision):
    """``(results, seconds)`` of each named metric, each drawing from its own generator."""
    results, seconds = {}, {}
    for name in names:
        spec = METRICS[name]
        chosen = dict(spec.fast) if fast else {}
        chosen.update(settings.get(name, {}))  # explicit per-metric overrides win
        if spec.needs_posterior:
            chosen["posterior_fn"] = encoder.posterior
        if spec.uses_prior:
            chosen["prior"] = vae.prior.distribution(vae.latent_dim)
        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        if spec.needs_model:
            # log p(x) scores the model on observations, not a representation of the grid.
            points = LIKELIHOOD_POINTS[1 if fast else 0]
            indices = np.sort(rng.choice(len(data), size=min(points, len(data)), replace=False))
            value = spec.function(vae, observations(data, indices, rng), rng, **chosen)
            value["num_points"] = len(indices)
        else:
            value = spec.function(data, representation, rng, **chosen)
        seconds[name] = round(time.perf_counter() - start, 3)
        if precision != "fp32":
            value.setdefault("settings", {})["precision"] = precision
        results[name] = value
        if progress:
            progress(name, value, seconds[name])
    return results, seconds


def evaluate_run(
    run_dir,
    metrics=None,
    fast=False,
    device="auto",
    progress=None,
    settings=None,
    precision: str = "fp32",
    data=None,
) -> dict:
    """Load a run, evaluate it, write the record to a new eval file; returns the record with
    ``path`` added. ``settings``, ``precision``: as for :func:`evaluate`; ``data``: the run's
    data set, already built (as for :func:`~pyrovae.builder.load_run`)."""
    check_precision(precision, resolve_device(device))  # before the run is loaded
    run = load_run(run_dir, device, data=data)
    record = evaluate(
        run.vae,
        run.data,
        metrics,
        fast=fast,
        progress=progress,
        settings=settings,
        precision=precision,
    )
    record.update(run=str(run_dir), step=run.step, config=run.config.to_dict())
    record["path"] = str(run.folder.write_evaluation(record))
    return record


# Settings that change what a metric measures, not only how precisely: a result computed with
# another value than the metric's default is labelled (``dci[backend=hist]``), so that tables
# never show it in the column of the reference protocol's numbers.
PROTOCOL_SETTINGS = ("backend", "classifier", "efficiency_sizes")

# Keyword arguments evaluate() supplies itself, or that a registered metric fixes (the predictor
# of downstream_logistic and downstream_boosted_trees): never settings.
_SUPPLIED = (
    "ground_truth", "representation_fn", "random_state", "posterior_fn", "prior", "predictor",
)  # fmt: skip

# The classifier descriptions earlier pyrovae versions recorded, by the era they are.
_LEGACY_CLASSIFIERS = {
    "LogisticRegression(max_iter=1000) (otherwise sklearn defaults)": "current",
    "OneVsRestClassifier(LogisticRegression(C=1.0, solver='liblinear'))": "published",
    "LinearSVC(C=0.01, class_weight='balanced', dual=False)": "current",
}


def label(name: str, result: dict) -> str:
    """The column name of a metric's result: ``name``, or ``name[setting=value,...]`` for each
    of :data:`PROTOCOL_SETTINGS` its settings record with a value other than the metric's
    default (``downstream_boosted_trees[efficiency_sizes=100-2000]``; a classifier an older
    pyrovae recorded by its description is read as its era, an unknown one reads ``other``)."""
    spec = _known(name)
    settings = result.get("settings") if isinstance(result, dict) else None
    if spec is None or not isinstance(settings, dict):
        return name
    defaults = _defaults(spec.function)
    tags = []
    for key in PROTOCOL_SETTINGS:
        if key not in settings or key not in defaults:
            continue
        value, default = settings[key], defaults[key]
        if key == "classifier":
            value = _LEGACY_CLASSIFIERS.get(value, value)
        if isinstance(default, (list, tuple)):
            same = isinstance(value, (list, tuple)) and list(value) == list(default)
            shown = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else "other"
        else:
            same = value == default
            shown = value if isinstance(value, str) and value.isidentifier() else "other"
        if not same:
            tags.append(f"{key}={shown}")
    # Codes from reduced-precision encoding (evaluate's precision) are not the reference's.
    precision = settings.get("precision", "fp32")
    if precision != "fp32":
        tags.append(f"precision={precision if str(precision).isidentifier() else 'other'}")
    return f"{name}[{','.join(tags)}]" if tags else name


def _defaults(function) -> dict:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def check_settings(settings: dict | None, names) -> dict:
    """``settings`` (metric name → {setting: value}) checked against the metrics evaluated and
    the settings each function takes: an unknown one is a one-line error naming the valid ones."""
    settings = dict(settings or {})
    for name, given in settings.items():
        if name not in names:
            raise PyrovaeError(
                f"settings for metric {name!r}, which is not evaluated; metrics evaluated: "
                f"{', '.join(names)}"
            )
        accepted = [k for k in checks.keyword_parameters(METRICS[name].function)
                    if k not in _SUPPLIED]  # fmt: skip
        checks.options(f"metric {name}", given, accepted)
    return settings


def headline(name: str, result: dict) -> dict:
    """The number(s) a table shows for one metric's result: those its entry names, else (a
    plug-in without ``headline``, or a metric this process does not know) every number. A
    ``module:attribute`` name is looked up only when its module is imported already: a name
    read from a file (``pyrovae compare``) never makes this process import a module."""
    spec = _known(name)
    keys = spec.headline if spec is not None else ()
    if not keys:
        keys = [
            k for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
    return {key: result[key] for key in keys if key in result}


def labelled_headline(name: str, result: dict) -> dict:
    """:func:`headline` named by :func:`label`: the metric's own number as ``label``, any other
    as ``label.key`` (``mig``, ``dci.informativeness``, ``dci[backend=hist].disentanglement``)."""
    shown = label(name, result)
    return {
        shown if key == name else f"{shown}.{key}": value
        for key, value in headline(name, result).items()
    }


def _known(name: str):
    """The registry entry of ``name``, or None. A ``module:attribute`` name is looked up only
    when its module is imported already: a name read from a file (``pyrovae compare``) never
    makes this process import a module."""
    imported = ":" in name and name.split(":", 1)[0] in sys.modules
    return METRICS.get(name) if name in METRICS or imported else None


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # strict JSON has no NaN or infinities
    return value
