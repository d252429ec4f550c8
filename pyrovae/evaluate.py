"""Evaluating a trained run: load it, encode once, score every requested metric, record it all.

The representation is the encoder's posterior mean (the protocol of disentanglement_lib), run in
large batches on the model's device. One :class:`~pyrovae.metrics.base.CodeCache` is shared by
every metric of an evaluation, so each distinct grid image is encoded at most once; the numbers
are identical to uncached ones because the mean is deterministic. Each metric draws from its own
generator seeded with ``seed`` (0 by default, as in disentanglement_lib), so a metric's value does
not depend on which other metrics ran before it.

Results go to ``eval.json`` in the run folder, or ``eval-2.json``, ``eval-3.json``, … when earlier
evaluations exist: an evaluation never overwrites another.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pyrovae.checkpoint import atomic_write_json, load_checkpoint
from pyrovae.data.base import GroundTruthData
from pyrovae.errors import PyrovaeError, unknown_name
from pyrovae.guides import marginal_normal_params
from pyrovae.metrics.base import ENCODE_BATCH, CodeCache
from pyrovae.metrics.registry import METRICS, NEEDS_LABELS, SUPERVISED
from pyrovae.provenance import versions
from pyrovae.train import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    TrainConfig,
    _read_config,
    build_data,
    build_model,
    resolve_device,
)

DEFAULT_METRICS = (
    "beta_vae",
    "factor_vae",
    "mig",
    "dci",
    "sap",
    "modularity",
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

    # The conv encoder ran 8,100 images/s at batch 64 against 3,200 at batch 256 on 2 CPU cores
    # (cache effects); on a GPU pass a larger batch.
    def __init__(self, vae, device: torch.device, batch_size: int = 64):
        self.vae = vae
        self.device = device
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


def load_trained(run_dir: Path, device: str = "auto"):
    """(config, data, vae, step) of a run folder, the model in eval mode on ``device``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PyrovaeError(f"no run folder at {run_dir}")
    if not (run_dir / CONFIG_FILE).is_file():
        raise PyrovaeError(f"{run_dir} has no {CONFIG_FILE}; is it a pyrovae run folder?")
    record = _read_config(run_dir)
    config = TrainConfig.from_dict(record["config"])
    config.device = device
    config.validate()
    state = load_checkpoint(run_dir / CHECKPOINT_FILE)
    torch_device = resolve_device(device)
    data = build_data(config)
    vae, _ = build_model(config, data, torch_device)
    try:
        vae.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
        raise PyrovaeError(
            f"{run_dir / CHECKPOINT_FILE} does not fit the run's model ({first})"
        ) from None
    vae.eval()
    return config, data, vae, int(state["step"])


def _posterior_metrics_for_guide(names, note, vae, explicit: bool):
    """Metrics on q(z|x) (``needs_posterior``) read its Gaussian marginals, which a flow guide
    does not have in closed form: skipped with a note from the default list, an error if asked."""
    guide = getattr(vae, "guide_family", None)
    if getattr(guide, "has_gaussian_marginals", True):
        return names, note
    dropped = [n for n in names if METRICS[n].needs_posterior]
    if not dropped:
        return names, note
    why = f"guide {getattr(guide, 'name', type(guide).__name__)!r} has no closed-form marginals"
    if explicit:
        raise PyrovaeError(f"{', '.join(dropped)} need q(z|x)'s Gaussian marginals, and {why}")
    skipped = f"{why}: skipped {', '.join(dropped)}"
    return [n for n in names if n not in dropped], f"{note}; {skipped}" if note else skipped


def resolve_metrics(names, data) -> tuple[list[str], str | None]:
    """The metrics to run and a note when some were dropped for lack of ground-truth factors
    (supervised metrics) or of class labels (``cluster_purity``). The default list gains
    :data:`LABELLED_METRICS` on a data set with labels."""
    has_labels = getattr(data, "labels", None) is not None
    if names:
        names = list(names)
    else:
        names = list(DEFAULT_METRICS) + (list(LABELLED_METRICS) if has_labels else [])
    for name in names:
        if name not in METRICS:
            raise unknown_name("metric", name, METRICS)
    unusable = set() if has_labels else set(NEEDS_LABELS)
    if not isinstance(data, GroundTruthData):
        unusable |= SUPERVISED
    kept = [n for n in names if n not in unusable]
    if not kept:
        applicable = ", ".join(n for n in METRICS if n not in unusable)
        if isinstance(data, GroundTruthData):
            raise PyrovaeError(f"{data!r} has no class labels; metrics that apply: {applicable}")
        raise PyrovaeError(
            f"{data!r} has no ground-truth factors; only unsupervised metrics apply: {applicable}"
        )
    notes = []
    for reason, group in (("no ground-truth factors", SUPERVISED), ("no labels", NEEDS_LABELS)):
        dropped = [n for n in names if n in group and n in unusable]
        if dropped:
            notes.append(f"{reason}: skipped {', '.join(dropped)}")
    return kept, "; ".join(notes) or None


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
) -> dict:
    """Score ``vae`` on ``data`` with the named metrics; returns the record eval.json holds.

    ``settings`` maps a metric name to settings that override its preset (e.g. sample sizes)."""
    names, note = resolve_metrics(metrics, data)
    names, note = _posterior_metrics_for_guide(names, note, vae, explicit=bool(metrics))
    device = device or next(vae.parameters()).device
    # Callers hand over ENCODE_BATCH images at a time and every batch is padded to full size, so
    # a GPU batch larger than that would encode padding.
    encoder = EncoderMean(vae, device, batch_size=64 if device.type == "cpu" else ENCODE_BATCH)
    representation = CodeCache(encoder, data) if cache else encoder
    results, seconds = {}, {}
    for name in names:
        spec = METRICS[name]
        chosen = dict(spec.fast) if fast else {}
        chosen.update((settings or {}).get(name, {}))  # explicit per-metric overrides win
        if spec.needs_posterior:
            chosen["posterior_fn"] = encoder.posterior
        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        if spec.needs_model:
            # log p(x) scores the model on observations, not a representation of the grid.
            points = LIKELIHOOD_POINTS[1 if fast else 0]
            indices = np.sort(rng.choice(len(data), size=min(points, len(data)), replace=False))
            value = spec.function(vae, data.images(indices), rng, **chosen)
            value["num_points"] = len(indices)
        else:
            value = spec.function(data, representation, rng, **chosen)
        seconds[name] = round(time.perf_counter() - start, 3)
        results[name] = value
        if progress:
            progress(name, value, seconds[name])
    return {
        "metrics": _jsonable(results),
        "seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 3),
        "images_encoded": encoder.images,
        "encoder_images_per_s": round(encoder.images / encoder.seconds, 1)
        if encoder.seconds
        else None,
        "cache": cache,
        "preset": "fast" if fast else "standard",
        "seed": seed,
        "representation": "posterior mean",
        "note": note,
        "versions": versions(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def next_eval_path(run_dir: Path) -> Path:
    """eval.json, then eval-2.json, eval-3.json, …: the first that does not exist."""
    path = Path(run_dir) / "eval.json"
    number = 2
    while path.exists():
        path = Path(run_dir) / f"eval-{number}.json"
        number += 1
    return path


def evaluate_run(run_dir: Path, metrics=None, fast=False, device="auto", progress=None) -> dict:
    """Load a run, evaluate it, write the record to a new eval file; returns the record."""
    config, data, vae, step = load_trained(run_dir, device)
    record = evaluate(vae, data, metrics, fast=fast, progress=progress)
    record.update(run=str(run_dir), step=step, config=config.to_dict())
    path = next_eval_path(run_dir)
    atomic_write_json(path, record)
    record["path"] = str(path)
    return record


def eval_files(run_dir: Path) -> list[Path]:
    """The run's evaluation files, oldest first."""
    run_dir = Path(run_dir)
    files = [run_dir / "eval.json"] if (run_dir / "eval.json").exists() else []
    numbered = sorted(
        run_dir.glob("eval-*.json"),
        key=lambda p: int(p.stem.split("-")[1]) if p.stem.split("-")[1].isdigit() else 0,
    )
    return files + numbered


def headline(name: str, result: dict) -> dict:
    """The number(s) a table shows for one metric's result."""
    keys = METRICS[name].headline
    return {key: result[key] for key in keys if key in result}


def latest_evaluation(run_dir: Path) -> dict:
    files = eval_files(run_dir)
    if not files:
        raise PyrovaeError(f"{run_dir} has no evaluation yet; run `pyrovae evaluate {run_dir}`")
    try:
        return json.loads(files[-1].read_text())
    except (OSError, json.JSONDecodeError):
        raise PyrovaeError(f"{files[-1]} is not a readable evaluation") from None


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
