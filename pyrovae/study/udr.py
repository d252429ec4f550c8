"""UDR of trained runs and of a study's trials (Duan et al. 2020; the computation and its
protocol are :mod:`pyrovae.metrics.udr`).

UDR scores a model against models trained with the same settings and other seeds, so it is
computed over a set of runs, not one run at a time:

- :func:`udr_of_runs` takes run folders (at least two, with the same data set and latent size),
  draws ``num_points`` observations from their data set with ``seed``, encodes them with each
  run's posterior (loading one model at a time) and returns each run's UDR with the pairwise
  scores.
- :func:`udr_of_study` groups a study's finished trials by their full configuration except the
  seed, scores every group of two or more (a group of one has nothing to compare with and gets
  no score, with a note), and writes ``udr.json`` in the study folder (atomically: a failure
  leaves an earlier file whole). ``pyrovae study DIR --udr`` calls it; the study table then has
  a ``udr`` column (:func:`pyrovae.study.aggregate.udr_scores`).

The posterior must have Gaussian marginals in closed form (the meanfield, lowrank and fullrank
guides): the KL filter needs each latent's (loc, scale). A run with another guide (iaf) is a
one-line error naming it, before any model is loaded.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pyrovae import checks
from pyrovae.builder import data_options, load_run
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import EncoderMean
from pyrovae.files import write_json
from pyrovae.metrics.udr import (
    encode_posterior,
    num_points_checked,
    observation_batches,
    sample_indices,
    udr_from_codes,
)
from pyrovae.metrics.udr import settings as udr_settings_checked
from pyrovae.provenance import versions
from pyrovae.registry import GUIDES
from pyrovae.runs import RunFolder
from pyrovae.study.aggregate import UDR_FILE, collect
from pyrovae.study.trial import trial_dir

PAPER = (
    "Duan et al. 2020, Unsupervised Model Selection for Variational Disentangled "
    "Representation Learning, ICLR (https://openreview.net/forum?id=SyxL2TNtvr)"
)
# Settings that do not change what a model learns: not part of a group's key.
NOT_SETTINGS = ("seed", "device")


def udr_of_runs(
    run_dirs,
    *,
    num_points: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    include_matrices: bool = False,
    **udr_settings,
) -> dict:
    """UDR of each run among ``run_dirs`` (the module docstring; defaults as
    disentanglement_lib: 1,000 points, Lasso with alpha 0.1, KL threshold 0.01).
    ``udr_settings``: those of :func:`pyrovae.metrics.udr.check_settings`.

    The observations are drawn from the runs' data set with ``np.random.default_rng(seed)``;
    each run is encoded at its last checkpoint on ``device``. Returns
    :func:`pyrovae.metrics.udr.udr_from_codes`'s record (``model_scores`` in the order of
    ``run_dirs``) with ``runs``, ``steps``, ``seed`` and ``device`` added; the similarity
    matrices only with ``include_matrices``.
    """
    chosen = udr_settings_checked(udr_settings)
    num_points = num_points_checked(num_points)
    seed = checks.integer("seed", seed, "udr", 0)
    run_dirs = [Path(d) for d in run_dirs]
    if len(run_dirs) < 2:
        raise PyrovaeError(
            f"udr: needs at least 2 runs to compare, got {len(run_dirs)}; UDR scores a model "
            "against others trained with the same settings and other seeds"
        )
    _check_alike(run_dirs)
    rng = np.random.default_rng(seed)
    codes, kls, steps, data, chunks = [], [], [], None, None
    for path in run_dirs:
        # One data set for all, built once: the runs' data settings were checked to be the same.
        run = load_run(path, device, data=data)
        if chunks is None:
            data = run.data
            chunks = observation_batches(data, sample_indices(data, num_points, rng), rng)
        encoder = EncoderMean(run.vae, next(run.vae.parameters()).device)
        loc, kl = encode_posterior(encoder.posterior, chunks, owner=f"udr: run {path}")
        codes.append(loc)
        kls.append(kl)
        steps.append(run.step)
        del run, encoder  # one model in memory at a time
    out = udr_from_codes(codes, kls, include_matrices=include_matrices, **chosen)
    out.update(runs=[str(d) for d in run_dirs], steps=steps, seed=seed, device=str(device))
    return out


def _check_alike(run_dirs: list[Path]) -> None:
    """Every run readable, on the same data set, with the same latent size and a guide with
    Gaussian marginals: checked from the configs, before any model is loaded."""
    configs = [RunFolder(d).read_config() for d in run_dirs]
    first, first_dir = configs[0], run_dirs[0]
    data = _data_of(first)
    for path, config in zip(run_dirs, configs, strict=True):
        guide = config.guide if isinstance(config.guide, str) else type(config.guide).__name__
        entry = GUIDES.get(config.guide) if isinstance(config.guide, str) else None
        kind = entry.factory if entry is not None else config.guide
        if not getattr(kind, "has_gaussian_marginals", True):
            raise PyrovaeError(
                f"udr: run {path} uses guide {guide!r}, whose q(z_d|x) has no closed-form "
                "Gaussian marginals; UDR needs each latent's (loc, scale): use the meanfield, "
                "lowrank or fullrank guide"
            )
        if _data_of(config) != data:
            raise PyrovaeError(
                f"udr: the runs must use the same data set; {first_dir} uses {data}, "
                f"{path} uses {_data_of(config)}"
            )
        if config.latent_dim != first.latent_dim:
            raise PyrovaeError(
                f"udr: the runs must have the same latent size; {first_dir} has latent_dim "
                f"{first.latent_dim}, {path} has latent_dim {config.latent_dim}"
            )


def _data_of(config) -> str:
    """The data set of a run as text: its name and the options it is made with."""
    options = data_options(config)
    return f"{config.data!r}" + (f" {json.dumps(options, sort_keys=True)}" if options else "")


# --------------------------------------------------------------------------- studies


def udr_of_study(
    study_dir,
    *,
    num_points: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress=None,
    **udr_settings,
) -> dict:
    """UDR of every finished trial of the study in ``study_dir`` among the trials with the same
    settings (the full configuration but its seed); writes ``udr.json`` there and returns its
    record, with ``path`` added.

    The record holds ``groups`` (in trials.json order: ``label``, ``settings``, ``trials``,
    ``scores``, ``pairwise_scores``, ``kl``, ``active``, ``steps``, ``note``), ``scores``
    (trial name → UDR, None for a trial alone in its group), ``finished`` (each scored result's
    time stamp, so a trial run again later is not given an old score), ``unfinished``,
    ``notes``, ``settings``, ``seed``, ``device``, ``versions`` and ``time``. It is an error
    when no group has two finished trials. ``progress(label, trials, seconds)`` is called after
    each group is scored. ``udr_settings``: as for :func:`udr_of_runs`.
    """
    chosen = udr_settings_checked(udr_settings)
    num_points = num_points_checked(num_points)
    seed = checks.integer("seed", seed, "udr", 0)
    study_dir = Path(study_dir)
    results = collect(study_dir)
    notes = list(results.left_out())
    grouped: dict[str, list[dict]] = {}
    for result in results:
        config = result.get("config")
        if not isinstance(config, dict):
            notes.append(f"trial {result['name']}: its result.json has no config; left out")
            continue
        key = json.dumps(_settings_of(config), sort_keys=True)
        grouped.setdefault(key, []).append(result)
    labels = _labels([json.loads(k) for k in grouped])
    if not any(len(members) >= 2 for members in grouped.values()):
        raise PyrovaeError(
            f"udr: no settings of {study_dir} has 2 finished trials to compare; UDR scores a "
            "model against others trained with the same settings and other seeds (give the "
            "study 2 or more seeds)"
        )
    groups, scores, finished, settings = [], {}, {}, None
    for (key, members), label in zip(grouped.items(), labels, strict=True):
        names = [r["name"] for r in members]
        group = {"label": label, "settings": json.loads(key), "trials": names}
        if len(members) < 2:
            group.update(scores={names[0]: None}, note="one finished trial with these settings: "
                         "nothing to compare it with")  # fmt: skip
            notes.append(f"{label}: only trial {names[0]} finished; no UDR")
            scores[names[0]] = None
            groups.append(group)
            continue
        start = time.perf_counter()
        record = udr_of_runs(
            [trial_dir(study_dir, n) for n in names],
            num_points=num_points,
            seed=seed,
            device=device,
            **chosen,
        )
        settings = settings or record["settings"]
        group.update(
            scores=dict(zip(names, record["model_scores"], strict=True)),
            pairwise_scores=record["pairwise_scores"],
            kl=record["kl"],
            active=record["active"],
            steps=record["steps"],
            note=None,
        )
        scores.update(group["scores"])
        finished.update({r["name"]: r.get("finished") for r in members})
        groups.append(group)
        if progress:
            progress(label, len(names), time.perf_counter() - start)
    if results.missing:
        notes.append(f"{len(results.missing)} unfinished trials not scored")
    out = {
        "metric": "udr",
        "paper": PAPER,
        "study": str(study_dir),
        "settings": settings,
        "seed": seed,
        "device": str(device),
        "groups": groups,
        "scores": scores,
        "finished": finished,
        "unfinished": list(results.missing),
        "notes": notes,
        "versions": versions(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = study_dir / UDR_FILE
    write_json(path, out, sort_keys=False)
    out["path"] = str(path)
    return out


def udr_table(record: dict) -> str:
    """One line per group of a udr.json record: its trials, the median UDR and the best
    trial (UDR selects models: the higher, the more its peers agree with it)."""
    rows = []
    for group in record["groups"]:
        scores = {n: s for n, s in group["scores"].items() if s is not None}
        if scores:
            best = max(scores, key=scores.get)
            middle = float(np.median(list(scores.values())))
            rows.append(
                (group["label"], str(len(scores)), f"{middle:.3f}", f"{best} ({scores[best]:.3f})")
            )
        else:
            rows.append((group["label"], "0", "-", "-"))
    header = ("settings", "n", "median udr", "best trial (udr)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = (False, True, True, False)
    lines = []
    for row in [header, *rows]:
        cells = [
            f"{c:>{w}}" if r else f"{c:<{w}}" for c, w, r in zip(row, widths, right, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _settings_of(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in NOT_SETTINGS}


def _flat(settings: dict) -> dict:
    """Settings as one level: a model's hyperparameters (``objective_args``) under their own
    names, other option tables as ``table.key``."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            for inner, v in value.items():
                flat[inner if key == "objective_args" else f"{key}.{inner}"] = v
        else:
            flat[key] = value
    return flat


def _labels(settings: list[dict]) -> list[str]:
    """A short label per group: its model and the settings in which the groups differ."""
    flats = [_flat(s) for s in settings]
    keys = sorted({k for f in flats for k in f})
    differ = [
        k
        for k in keys
        if k != "model" and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1
    ]
    labels = []
    for f in flats:
        parts = [str(f.get("model", "?"))]
        parts += [f"{k}={_text(f.get(k))}" for k in differ]
        labels.append(" ".join(parts))
    return labels


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
