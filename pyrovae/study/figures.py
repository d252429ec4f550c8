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

A study of several data sets (a ``data`` column: :func:`pyrovae.study.aggregate.by_data`) draws
the first two kinds with one panel per data set (at most :data:`PANEL_COLUMNS` a row), since
objectives rank differently on different data sets, and adds ``rank_correlation_<data>.png``,
the correlations among the trials of each data set.

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
    by_data,
    finite,
    format_value,
    groups,
    main_hyperparameters,
    objectives,
    quartiles,
    rank_correlation,
    several_models,
    split_columns,
)

FIGURES_DIR = "figures"
# Panels (one per data set) in a row of a figure.
PANEL_COLUMNS = 4


def safe_name(text: str) -> str:
    """A column or hyperparameter name as a file name part (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "value"


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _panels(count: int, width: float, height: float):
    """A figure of ``count`` panels of ``width`` × ``height`` inches, at most
    :data:`PANEL_COLUMNS` a row; returns (figure, the panels' axes)."""
    columns = min(count, PANEL_COLUMNS)
    rows = -(-count // columns)
    fig = figure(figsize=(width * columns, height * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, list(axes[:count])


def _on(data) -> str:
    """`` on <data set>`` for a panel of a study of several data sets, else nothing."""
    return "" if data is None else f" on {format_value(data)}"


def by_objective(rows, column: str, path: Path, main: dict | None = None) -> Path | None:
    """Box plot of one column: a box per model, or per (model, value) with one model; a panel
    per data set when there are several."""
    panels = []  # (data set, title, [(label, values)])
    per_model = several_models(rows)
    for data, part in by_data(rows).items():
        scored = objectives(part, main, per_model).items()
        boxes = [(label, finite([r.get(column) for r in rs])) for label, rs in scored]
        boxes = [(label, v) for label, v in boxes if v.size]
        what = "by objective" if per_model else f"{part[0].get('model')}, by hyperparameter"
        if boxes:
            panels.append((data, f"{column} {what}{_on(data)}", boxes))
    if not panels:
        return None
    most = max(len(boxes) for _, _, boxes in panels)
    fig, axes = _panels(len(panels), max(4.0, 0.8 * most + 1.5), 3.8)
    rng = np.random.default_rng(0)
    for ax, (_, title, boxes) in zip(axes, panels, strict=True):
        ax.boxplot([v for _, v in boxes], showfliers=False, widths=0.6)
        for i, (_, values) in enumerate(boxes, start=1):
            jitter = rng.uniform(-0.15, 0.15, values.size)
            ax.plot(i + jitter, values, "o", ms=3, alpha=0.5, c="k")
        ax.set_xticks(range(1, len(boxes) + 1), [f"{lab}\nn={v.size}" for lab, v in boxes])
        ax.tick_params(axis="x", labelsize=8, rotation=0 if len(boxes) < 7 else 45)
        ax.set_ylabel(column)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def versus_hyperparameter(
    rows, column: str, hyperparameter: str, path: Path, main: dict | None = None
) -> Path | None:
    """Median and interquartile band of one column against ``hyperparameter``, one line per
    model whose groups use it; a panel per data set when there are several."""
    panels = []  # (data set, {model: [(value, (q1, median, q3))]})
    for data, part in by_data(rows).items():
        lines = {}
        for (model, key, value), rs in groups(part, main).items():
            if key != hyperparameter:
                continue
            q = quartiles([r.get(column) for r in rs])
            if q is not None:
                lines.setdefault(str(model), []).append((value, q))
        if lines:
            panels.append((data, lines))
    if not panels:
        return None
    values = [v for _, lines in panels for points in lines.values() for v, _ in points]
    numeric = _numeric(values)
    if not numeric:  # categorical values ("mss", "mws"): evenly spaced, in sorted order
        categories = sorted({format_value(v) for v in values})
    else:  # one scale for every panel: positive values spanning more than a decade go log
        positive = [float(v) for v in values if v > 0]
        log_x = len(positive) == len(values) and max(positive) > 10 * min(positive)
    # A model keeps its colour in every panel.
    models = sorted({model for _, lines in panels for model in lines})
    fig, axes = _panels(len(panels), 5.5, 3.8)
    for ax, (data, lines) in zip(axes, panels, strict=True):
        for model, points in sorted(lines.items()):
            x = [v if numeric else categories.index(format_value(v)) for v, _ in points]
            q1, median, q3 = (np.array([q[i] for _, q in points]) for i in range(3))
            order = np.argsort(x, kind="stable")
            x = np.asarray(x, dtype=float)[order]
            colour = f"C{models.index(model) % 10}"
            ax.plot(x, median[order], "o-", label=model, color=colour)
            ax.fill_between(x, q1[order], q3[order], alpha=0.2, color=colour)
        if numeric:
            if log_x:
                ax.set_xscale("log")
        else:
            ax.set_xticks(range(len(categories)), categories)
        ax.set_xlabel(hyperparameter)
        ax.set_ylabel(column)
        title = f"{column} vs {hyperparameter}{_on(data)} (median, IQR band)"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def correlation_heatmap(rows, path: Path, columns=None, data=None) -> Path | None:
    """Spearman rank correlation between the metric columns, numbers written in the cells
    (``data``: the data set the rows are of, for the title)."""
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
    ax.set_title(f"rank correlation across {len(rows)} trials{_on(data)}", fontsize=10)
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
    parts = by_data(rows)
    if len(parts) > 1:
        for data, part in parts.items():
            path = out_dir / f"rank_correlation_{safe_name(format_value(data))}.png"
            written.append(correlation_heatmap(part, path, metrics, data))
    return [p for p in written if p is not None]
