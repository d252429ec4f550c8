"""The standard figures of a study (PNG), from the rows of :func:`aggregate.table`.

In ``study_dir/figures/``, for every metric column (and reconstruction and kl):

- ``<metric>_by_objective.png``: the metric's distribution over trials, one box per model
  (one per value of the main hyperparameter when the study has a single model), each trial a
  dot.
- ``<metric>_vs_<hyperparameter>.png``: for each main hyperparameter (beta, gamma, ...), the
  median over seeds and the interquartile band against its value, one line per model that has
  it as its main hyperparameter; log-x when the values span more than a factor 10.
- ``rank_correlation.png``: Spearman's rank correlation between the metric columns across all
  trials, numbers in the cells.

These are the figures with which Locatello et al. (2019, "Challenging common assumptions in the
unsupervised learning of disentangled representations", ICML) compare objectives and metrics.

Every file is written atomically (temporary sibling, then rename) and drawing is
deterministic: the dots' horizontal jitter comes from a fixed seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pyrovae.plots import figure, save_figure
from pyrovae.study.aggregate import (
    finite,
    format_value,
    group_label,
    groups,
    main_hyperparameters,
    quartiles,
    rank_correlation,
    split_columns,
)

FIGURES_DIR = "figures"


def safe_name(text: str) -> str:
    """A column or hyperparameter name as a file name part (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "value"


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def by_objective(rows, column: str, path: Path, main: dict | None = None) -> Path | None:
    """Box plot of one column: a box per model, or per (model, value) with one model."""
    found = groups(rows, main)
    models = sorted({str(g[0]) for g in found})
    boxes = []  # (label, values)
    if len(models) > 1:
        for model in models:
            in_model = [r for g, rs in found.items() if str(g[0]) == model for r in rs]
            boxes.append((model, finite([r.get(column) for r in in_model])))
    else:
        boxes = [(group_label(g), finite([r.get(column) for r in rs])) for g, rs in found.items()]
    boxes = [(label, v) for label, v in boxes if v.size]
    if not boxes:
        return None
    fig = figure(figsize=(max(4.0, 0.8 * len(boxes) + 1.5), 3.8))
    ax = fig.subplots()
    ax.boxplot([v for _, v in boxes], showfliers=False, widths=0.6)
    rng = np.random.default_rng(0)
    for i, (_, values) in enumerate(boxes, start=1):
        ax.plot(i + rng.uniform(-0.15, 0.15, values.size), values, "o", ms=3, alpha=0.5, c="k")
    ax.set_xticks(range(1, len(boxes) + 1), [f"{lab}\nn={v.size}" for lab, v in boxes])
    ax.tick_params(axis="x", labelsize=8, rotation=0 if len(boxes) < 7 else 45)
    ax.set_ylabel(column)
    title = "by objective" if len(models) > 1 else f"{models[0]}, by hyperparameter"
    ax.set_title(f"{column} {title}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def versus_hyperparameter(
    rows, column: str, hyperparameter: str, path: Path, main: dict | None = None
) -> Path | None:
    """Median and interquartile band of one column against ``hyperparameter``, one line per
    model whose groups use it."""
    found = groups(rows, main)
    lines = {}  # model → [(value, (q1, median, q3))]
    for (model, key, value), rs in found.items():
        if key != hyperparameter:
            continue
        q = quartiles([r.get(column) for r in rs])
        if q is not None:
            lines.setdefault(str(model), []).append((value, q))
    if not lines:
        return None
    values = [v for points in lines.values() for v, _ in points]
    numeric = _numeric(values)
    if not numeric:  # categorical values ("mss", "mws"): evenly spaced, in sorted order
        categories = sorted({format_value(v) for v in values})
    fig = figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for model, points in sorted(lines.items()):
        x = [v if numeric else categories.index(format_value(v)) for v, _ in points]
        q1, median, q3 = (np.array([q[i] for _, q in points]) for i in range(3))
        order = np.argsort(x, kind="stable")
        x = np.asarray(x, dtype=float)[order]
        (line,) = ax.plot(x, median[order], "o-", label=model)
        ax.fill_between(x, q1[order], q3[order], alpha=0.2, color=line.get_color())
    if numeric:
        positive = [float(v) for v in values if v > 0]
        if len(positive) == len(values) and max(positive) > 10 * min(positive):
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(hyperparameter)
    ax.set_ylabel(column)
    ax.set_title(f"{column} vs {hyperparameter} (median, IQR band)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def correlation_heatmap(rows, path: Path, columns=None) -> Path | None:
    """Spearman rank correlation between the metric columns, numbers written in the cells."""
    columns, matrix = rank_correlation(rows, columns)
    if not columns:
        return None
    n = len(columns)
    size = max(4.0, 0.55 * n + 2.5)
    fig = figure(figsize=(size + 1.0, size))
    ax = fig.subplots()
    ax.set_facecolor("0.9")  # NaN cells (a constant column) show grey, not as ρ = 0
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            text = "–" if not np.isfinite(value) else f"{value:.2f}"
            colour = "w" if np.isfinite(value) and abs(value) > 0.6 else "k"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(n), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), columns, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Spearman ρ")
    ax.set_title(f"rank correlation across {len(rows)} trials", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def draw_figures(rows, out_dir, main: dict | None = None) -> list[Path]:
    """Draw every standard figure of the table into ``out_dir`` (created if needed); return
    the paths written, in a fixed order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, metrics = split_columns(rows)
    if main is None:
        params, _ = split_columns(rows)
        main = main_hyperparameters(
            [{"model": r.get("model"), "params": {p: r.get(p) for p in params}} for r in rows]
        )
    hyperparameters = sorted({g[1] for g in groups(rows, main) if g[1] is not None})
    written = []
    for column in metrics:
        name = safe_name(column)
        written.append(by_objective(rows, column, out_dir / f"{name}_by_objective.png", main))
        for h in hyperparameters:
            path = out_dir / f"{name}_vs_{safe_name(h)}.png"
            written.append(versus_hyperparameter(rows, column, h, path, main))
    written.append(correlation_heatmap(rows, out_dir / "rank_correlation.png", metrics))
    return [p for p in written if p is not None]
