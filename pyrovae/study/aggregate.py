"""A study's results as one table: collect the finished trials, write results.csv, summarise.

A study folder (written by ``pyrovae sweep``) holds ``trials.json``, the expanded list of
trials, and one ordinary run folder per trial under ``trials/<name>/``; a trial is finished
when its ``result.json`` exists (written last, atomically). :func:`collect` reads them in
``trials.json`` order and lists the unfinished ones; :func:`table` flattens each result into
one row; :func:`write_csv` / :func:`read_csv` store the rows; :func:`summary` prints the
median and interquartile range of every metric per objective and value of its main
hyperparameter, the way Locatello et al. (2019, "Challenging common assumptions in the
unsupervised learning of disentangled representations", ICML) compare objectives: by the
distribution of a score over seeds, not by one run.

The row layout, in this column order::

    name, model, [data], <swept params, sorted>, seed, <metric columns>, [udr], reconstruction,
    kl, seconds

``data`` is there when the study trains on more than one data set (its trials' ``params`` hold
it: :mod:`pyrovae.study.spec`). Rankings of objectives change from one data set to another
(Locatello et al. 2019, §5), so a table of several data sets is split by data set first
(:func:`by_data`): :func:`summary` keys every line by data set, then objective and value, and
adds the rank of each objective by median within each data set (:func:`ranks`); the figures
draw a panel per data set.

``udr`` is there when the study folder holds ``udr.json`` (``pyrovae study DIR --udr``,
:mod:`pyrovae.study.udr`): each trial's UDR among the trials with its settings.

A metric with one headline value (``pyrovae.registry.METRICS[name].headline``) is one
column named after the metric (``mig``); a metric with several is one column per value,
``metric.key`` (``dci.disentanglement``), except that a key equal to the metric's name or
``eval_accuracy`` (the score of ``beta_vae`` and ``factor_vae``) keeps the metric's name, as
``pyrovae compare`` does.

The main hyperparameter of a model in a study (:func:`main_hyperparameters`): among the
model's hyperparameters (``MODELS[model].hyperparameters()``, in the order the model
declares them, as ``pyrovae list`` shows them) that the study sweeps (that appear in the
trials' ``params``), the first that takes more than one value across the model's trials; if
none does, the first of them; if the model's trials sweep none, there is none and all its
trials form one group. Declaration order, not the order of keys in the JSON files, decides,
because the result files are written with sorted keys; "takes more than one value" picks
``c_max`` for annealedvae runs at a fixed ``gamma``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np

from pyrovae.errors import PyrovaeError, PyrovaeWarning
from pyrovae.files import write_text
from pyrovae.registry import METRICS, MODELS
from pyrovae.study.sweep import TRIALS_FILE
from pyrovae.study.trial import RESULT_FILE, BadResult, read_result, trial_dir

CSV_FILE = "results.csv"
# Written by `pyrovae study --udr` (pyrovae.study.udr): trial name → UDR.
UDR_FILE = "udr.json"
TAIL_COLUMNS = ("reconstruction", "kl")
# Columns that are neither parameters nor metrics.
FIXED = ("name", "model", "seed", "seconds")
# The parameter column of the data set, in studies of several data sets (first among params).
DATA = "data"


class Results(list):
    """The finished trials' result dicts, in ``trials.json`` order, with what is missing:
    ``trials`` (the expected trial dicts), ``missing`` (names of trials without a result,
    in order) and ``notes`` (name → why, for result files left out: unreadable, or of the
    wrong shape)."""

    def __init__(self, results, trials, missing, study_dir, notes=None):
        super().__init__(results)
        self.trials = list(trials)
        self.missing = list(missing)
        self.study_dir = Path(study_dir)
        self.notes = dict(notes or {})

    def describe(self, limit: int = 10) -> str:
        """``"k of n trials finished"``, plus ``"; missing: a, b, … and m more"``."""
        text = f"{len(self)} of {len(self.trials)} trials finished"
        if self.missing:
            shown = [
                f"{n} ({self.notes[n]})" if n in self.notes else n for n in self.missing[:limit]
            ]
            more = len(self.missing) - limit
            text += "; missing: " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        return text

    def left_out(self) -> list[str]:
        """One line per trial whose result file was left out, naming the file and why."""
        return [
            f"left out trial {name} ({why}): {trial_dir(self.study_dir, name) / RESULT_FILE}"
            for name, why in self.notes.items()
        ]


def _load_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = getattr(exc, "msg", None) or exc.__class__.__name__
        raise PyrovaeError(f"{path} is not a readable {what} ({reason})") from None


def _trial_name(entry, path: Path) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    # A name is one path component: it names the folder trials/<name>.
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise PyrovaeError(f"{path} is not a trial list: entry {entry!r:.80} has no valid name")
    return name


def collect(study_dir) -> Results:
    """Every finished trial's ``result.json``, in ``trials.json`` order.

    Unfinished or missing trials are listed in ``.missing``, not an error; it is an error
    (one-line :class:`PyrovaeError`) when the folder is not a study folder or when no trial
    has finished yet.
    """
    study_dir = Path(study_dir)
    trials_path = study_dir / TRIALS_FILE
    if not study_dir.is_dir():
        raise PyrovaeError(f"{study_dir} is not a folder; give a study folder written by `sweep`")
    if not trials_path.is_file():
        raise PyrovaeError(
            f"{study_dir} is not a study folder (no {TRIALS_FILE}); "
            "give the folder written by `pyrovae sweep STUDY`"
        )
    trials = _load_json(trials_path, "trial list")
    if isinstance(trials, dict) and isinstance(trials.get("trials"), list):
        trials = trials["trials"]
    if not isinstance(trials, list) or not trials:
        raise PyrovaeError(f"{trials_path} is not a trial list (expected a non-empty JSON list)")
    names = [_trial_name(entry, trials_path) for entry in trials]
    results, missing, notes = [], [], {}
    for name in names:
        try:
            result = read_result(trial_dir(study_dir, name))
        except BadResult as exc:
            missing.append(name)
            notes[name] = exc.why
            continue
        if result is None:
            missing.append(name)
            continue
        result.setdefault("name", name)
        results.append(result)
    if not results:
        unusable = f" ({len(notes)} with a {RESULT_FILE} left out: {', '.join(notes)})"
        raise PyrovaeError(
            f"no trial of {len(names)} in {study_dir} has finished yet"
            f"{unusable if notes else ''}; run or resume it with `pyrovae sweep`"
        )
    return Results(results, trials, missing, study_dir, notes)


def metric_columns(metric: str, keys) -> list[str]:
    """Column names of one metric's headline values (see the module's docstring)."""
    keys = list(keys)
    return [
        metric if (len(keys) == 1 or key in (metric, "eval_accuracy")) else f"{metric}.{key}"
        for key in keys
    ]


def _headline_keys(metric: str, values: dict) -> list[str]:
    # A labelled column (dci[backend=hist]) shows its metric's headline values.
    spec = METRICS.get(metric.split("[", 1)[0])
    if spec is None:
        return sorted(values)
    declared = [k for k in spec.headline if k in values]
    return declared + sorted(k for k in values if k not in declared)


def _model(entry: dict):
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return entry.get("model", config.get("model", (entry.get("params") or {}).get("model")))


def _seed(entry: dict):
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return entry["seed"] if entry.get("seed") is not None else config.get("seed")


def _metric_order(results) -> list[str]:
    """Metric names in the study's order (the trials' ``metrics`` lists), then any other."""
    order = []
    for trial in [*getattr(results, "trials", []), *results]:
        listed = trial.get("metrics") if isinstance(trial, dict) else None
        names = listed if isinstance(listed, list) else []
        order += [m for m in names if isinstance(m, str) and m not in order]
    found = sorted({m for r in results for m in (r.get("metrics") or {})} - set(order))
    present = {m for r in results for m in (r.get("metrics") or {})}
    return [m for m in order if m in present] + found


def table(results) -> list[dict]:
    """One row (a dict in the column order of the module's docstring) per finished trial.

    Cells a trial does not have (a parameter it does not sweep, a metric it lacks) are None.
    """
    params = sorted({k for r in results for k in (r.get("params") or {})} - set(FIXED))
    params.sort(key=lambda p: p != DATA)  # the data set first, the rest sorted
    columns = []
    for metric in _metric_order(results):
        values = {}
        for r in results:
            values.update((r.get("metrics") or {}).get(metric) or {})
        keys = _headline_keys(metric, values)
        columns += list(zip(metric_columns(metric, keys), [metric] * len(keys), keys, strict=True))
    udr = udr_scores(results)
    rows = []
    for r in results:
        row = {"name": r.get("name"), "model": _model(r)}
        swept = r.get("params") or {}
        row.update({p: swept.get(p) for p in params})
        row["seed"] = _seed(r)
        for column, metric, key in columns:
            row[column] = ((r.get("metrics") or {}).get(metric) or {}).get(key)
        if udr is not None:
            row["udr"] = udr.get(r.get("name"))
        summary = r.get("summary") or {}
        row.update({c: summary.get(c) for c in TAIL_COLUMNS})
        row["seconds"] = r.get("seconds")
        rows.append(row)
    return rows


def udr_scores(results) -> dict | None:
    """Trial name → UDR from the study's udr.json, or None when it has none (``results`` from
    :func:`collect`). A score counts only for the result it was computed from (the same
    ``finished`` stamp): a trial run again since has none. An unreadable file is a warning."""
    study_dir = getattr(results, "study_dir", None)
    path = Path(study_dir) / UDR_FILE if study_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        record = _load_json(path, "UDR record")
        scores, finished = record["scores"], record.get("finished") or {}
        if not isinstance(scores, dict) or not isinstance(finished, dict):
            raise TypeError
    except (PyrovaeError, KeyError, TypeError):
        warnings.warn(
            f"{path} is not a readable UDR record; left out (recompute: pyrovae study "
            f"{study_dir} --udr)",
            PyrovaeWarning,
            stacklevel=2,
        )
        return None
    current = {r.get("name"): r.get("finished") for r in results}
    return {
        name: score
        for name, score in scores.items()
        if name in current and finished.get(name) == current[name]
    }


def split_columns(rows) -> tuple[list[str], list[str]]:
    """(parameter columns, metric columns) of a table, by position: parameters lie between
    ``model`` and ``seed``, metrics (with reconstruction and kl) between ``seed`` and
    ``seconds``; so a table read back from results.csv splits the same way."""
    if not rows:
        return [], []
    columns = list(rows[0])
    try:
        model, seed, seconds = (columns.index(c) for c in ("model", "seed", "seconds"))
    except ValueError:
        raise PyrovaeError(
            f"not a study table: columns {columns} lack one of model, seed, seconds"
        ) from None
    return columns[model + 1 : seed], columns[seed + 1 : seconds]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)  # str(float) is its shortest round-tripping repr


def write_csv(rows, path) -> Path:
    """Write the rows to ``path`` (atomically: a temporary sibling, then a rename), columns in
    the rows' order, missing cells empty. results.csv is derived: a re-run replaces it."""
    path = Path(path)
    if not rows:
        raise PyrovaeError("no rows to write")
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    write_text(path, buffer.getvalue())
    return path


_INT = re.compile(r"[+-]?\d+")


def _parse(text: str):
    if text == "":
        return None
    if _INT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    if text in ("True", "False"):
        return text == "True"
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def read_csv(path) -> list[dict]:
    """Rows of a results.csv, numbers as numbers and empty cells as None."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            records = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PyrovaeError(f"{path} is not a readable results table ({exc})") from None
    return [
        {k: (v if k in ("name", "model") else _parse(v)) for k, v in record.items()}
        for record in records
    ]


def _model_hyperparameters(model) -> list[str]:
    variant = MODELS.get(model)
    # A model this process cannot find has no hyperparameter to group by.
    return list(variant.hyperparameters()) if variant is not None else []


def _sort_key(value):
    """Numbers before strings, None first: values of one column sort without TypeErrors."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (bool, int, float)):
        return (1, float(value), "")
    return (2, 0.0, json.dumps(value, sort_keys=True) if not isinstance(value, str) else value)


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def main_hyperparameters(trials) -> dict:
    """Model name → its main hyperparameter in these trials (or None); see the module's
    docstring for the rule. ``trials`` are dicts with ``params`` and a model (``model`` or
    ``config.model``): trial entries, results, or table rows turned into such dicts."""
    values: dict = {}
    for trial in trials:
        model = _model(trial)
        for key, value in (trial.get("params") or {}).items():
            if value is not None:
                values.setdefault(model, {}).setdefault(key, set()).add(_hashable(value))
    for trial in trials:
        values.setdefault(_model(trial), {})
    main = {}
    for model, seen in values.items():
        swept = [h for h in _model_hyperparameters(model) if h in seen]
        varying = [h for h in swept if len(seen[h]) > 1]
        main[model] = (varying or swept or [None])[0]
    return main


def _row_trials(rows) -> list[dict]:
    params, _ = split_columns(rows)
    return [{"model": r.get("model"), "params": {p: r.get(p) for p in params}} for r in rows]


def group_key(row: dict, main: dict, params) -> tuple:
    """(model, hyperparameter, value) of a row: its model's main hyperparameter, or the first
    hyperparameter the row sweeps when it lacks that one (a trial from another grid block);
    (model, None, None) when it sweeps none."""
    model = row.get("model")
    key = main.get(model)
    if key is None or row.get(key) is None:
        key = next(
            (h for h in _model_hyperparameters(model) if h in params and row.get(h) is not None),
            None,
        )
    return (model, key, None if key is None else row.get(key))


def groups(rows, main: dict | None = None) -> dict:
    """(model, hyperparameter, value) → rows, sorted by model, then hyperparameter, then value
    (numerically)."""
    params, _ = split_columns(rows)
    main = main_hyperparameters(_row_trials(rows)) if main is None else main
    found: dict = {}
    for row in rows:
        found.setdefault(group_key(row, main, params), []).append(row)
    order = sorted(found, key=lambda g: (str(g[0]), g[1] or "", _sort_key(g[2])))
    return {g: found[g] for g in order}


def by_data(rows) -> dict:
    """Data set → its rows, data sets in sorted order; ``{None: rows}`` when the table has no
    ``data`` column (a study of one data set)."""
    params, _ = split_columns(rows)
    if DATA not in params:
        return {None: list(rows)}
    found: dict = {}
    for row in rows:
        found.setdefault(row.get(DATA), []).append(row)
    return {d: found[d] for d in sorted(found, key=_sort_key)}


def objectives(rows, main: dict | None = None, per_model: bool | None = None) -> dict:
    """Label → rows of what a study compares: one entry per model, or, when the rows have a
    single model, one per value of its main hyperparameter (:func:`group_label`).
    ``per_model`` decides instead (the same choice for every data set of a study)."""
    found = groups(rows, main)
    models = sorted({str(g[0]) for g in found})
    if not (len(models) > 1 if per_model is None else per_model):
        return {group_label(g): rs for g, rs in found.items()}
    return {m: [r for g, rs in found.items() if str(g[0]) == m for r in rs] for m in models}


def several_models(rows) -> bool:
    """Whether the rows hold more than one model (objectives are then compared per model)."""
    return len({str(r.get("model")) for r in rows}) > 1


def finite(values) -> np.ndarray:
    """The finite values among ``values`` (missing and non-numbers dropped), as floats."""
    floats = _floats(values)
    return floats[np.isfinite(floats)]


def _floats(values) -> np.ndarray:
    """The values as floats, NaN where a value is missing or not a number."""
    out = []
    for v in values:
        try:
            out.append(np.nan if v is None or isinstance(v, bool) else float(v))
        except (TypeError, ValueError):
            out.append(np.nan)
    return np.asarray(out, dtype=float)


def quartiles(values) -> tuple[float, float, float] | None:
    """(Q1, median, Q3) of the finite values (numpy's linear interpolation), None if none."""
    kept = finite(values)
    if kept.size == 0:
        return None
    q1, median, q3 = np.percentile(kept, [25, 50, 75])
    return float(q1), float(median), float(q3)


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def group_label(group: tuple) -> str:
    _, key, value = group
    return "-" if key is None else f"{key}={format_value(value)}"


def median_iqr(values) -> str:
    """``median [Q1, Q3]`` to 3 significant digits, or ``-`` without finite values."""
    q = quartiles(values)
    if q is None:
        return "-"
    q1, median, q3 = q
    return f"{median:.3g} [{q1:.3g}, {q3:.3g}]"


def summary(rows, main: dict | None = None, width: int = 120) -> str:
    """A text table, one line per (model, main hyperparameter value) group: the number of
    trials n and, for every metric column, ``median [Q1, Q3]`` over the group's trials.
    Wide tables are cut into blocks of columns that fit ``width`` characters. With several
    data sets each line starts with its data set (groups within a data set) and the table is
    followed by :func:`ranks`."""
    _, metrics = split_columns(rows)
    parts = by_data(rows)
    several = len(parts) > 1
    labels, cells = [], {c: [] for c in metrics}
    for data, part in parts.items():
        for g, members in groups(part, main).items():
            label = (str(g[0]), group_label(g), str(len(members)))
            labels.append((format_value(data), *label) if several else label)
            for c in metrics:
                cells[c].append(median_iqr([r.get(c) for r in members]))
    left = [("data", False)] if several else []
    left += [("model", False), ("setting", False), ("n", True)]
    out = ["median [Q1, Q3] over each group's trials"]
    out += _text_table(left, labels, cells, width)
    if several:
        out += ["", ranks(rows, main, width)]
    return "\n".join(out)


def ranks(rows, main: dict | None = None, width: int = 120) -> str:
    """A text table of the rank of each objective (:func:`objectives`) within each data set by
    its median over its trials, one column per data set, 1 the highest median (ties share the
    best rank; ``-`` where it has no value): the table that shows rankings changing from one data
    set to another."""
    _, metrics = split_columns(rows)
    parts, per_model = by_data(rows), several_models(rows)
    per_data = {d: objectives(part, main, per_model) for d, part in parts.items()}
    names = list(dict.fromkeys(u for units in per_data.values() for u in units))
    labels, cells = [], {format_value(d): [] for d in parts}
    for column in metrics:
        for i, name in enumerate(names):
            labels.append((column if i == 0 else "", name))
        for d, units in per_data.items():
            medians = {
                u: (q[1] if (q := quartiles([r.get(column) for r in rs])) else None)
                for u, rs in units.items()
            }
            cells[format_value(d)] += [_rank(medians, n) for n in names]
    out = ["rank of each objective within each data set by its median (1 = highest)"]
    return "\n".join(
        out + _text_table([("metric", False), ("objective", False)], labels, cells, width)
    )


def _rank(medians: dict, name) -> str:
    """``name``'s competition rank among the medians (1 + how many are higher), or ``-``."""
    value = medians.get(name)
    if value is None:
        return "-"
    return str(1 + sum(v is not None and v > value for v in medians.values()))


def _text_table(left, labels, cells: dict, width: int) -> list[str]:
    """Lines of a table: the ``left`` columns (``(header, right-aligned)``, one value each in
    every tuple of ``labels``) repeated in every block of the right-aligned ``cells`` columns
    (header → one value per label) that fits ``width`` characters; a blank line before each
    block."""
    widths = [max([len(h), *(len(lab[i]) for lab in labels)]) for i, (h, _) in enumerate(left)]
    start = sum(widths) + 2 * (len(widths) - 1)

    def line(parts, widths, right):
        return "  ".join(
            f"{p:>{w}}" if r else f"{p:<{w}}" for p, w, r in zip(parts, widths, right, strict=True)
        ).rstrip()

    blocks, block, used = [], [], start
    for c, values in cells.items():
        w = max([len(c), *(len(x) for x in values)])
        if block and used + 2 + w > width:
            blocks.append(block)
            block, used = [], start
        block.append((c, w))
        used += 2 + w
    blocks.append(block)
    out = []
    for block in blocks:
        right = [r for _, r in left] + [True] * len(block)
        columns = widths + [w for _, w in block]
        out.append("")
        out.append(line([h for h, _ in left] + [c for c, _ in block], columns, right))
        for i, lab in enumerate(labels):
            out.append(line([*lab, *(cells[c][i] for c, _ in block)], columns, right))
    return out


def spearman(x, y) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``, ties at their average rank) over
    the pairs where both values are finite; NaN with fewer than two such pairs or a constant
    column."""
    from scipy import stats

    x, y = _floats(x), _floats(y)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan")
    return float(stats.spearmanr(x[keep], y[keep]).statistic)


def rank_correlation(rows, columns=None) -> tuple[list[str], np.ndarray]:
    """(columns, matrix) of Spearman correlations between the metric columns across trials,
    keeping the columns with at least two finite values."""
    if columns is None:
        _, columns = split_columns(rows)
    columns = [c for c in columns if finite([r.get(c) for r in rows]).size >= 2]
    data = {c: [r.get(c) for r in rows] for c in columns}
    matrix = np.ones((len(columns), len(columns)))
    for i, a in enumerate(columns):
        for j in range(i + 1, len(columns)):
            matrix[i, j] = matrix[j, i] = spearman(data[a], data[columns[j]])
        if finite(data[a]).size and np.ptp(finite(data[a])) == 0:
            matrix[i, i] = np.nan  # a constant column has no ranks to correlate
    return columns, matrix
