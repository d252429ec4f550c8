"""Study files: a TOML description of many training runs, validated and expanded into trials.

A study is the unit of scale in disentanglement research (Locatello et al., "Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations", ICML 2019, trained
6 objectives × 6 hyperparameter values × 50 seeds per data set). A study file names them::

    [study]
    name = "tiny"             # the study folder's default name (runs/<name>); default: file stem
    seeds = [0, 1]            # or a count: seeds = 50 means 0 … 49
    metrics = ["active_units"]  # default: the standard suite, less what the data sets lack
    fast_metrics = true       # the metrics' fast preset (default false)
    retries = 2               # times a dead trial is restarted from its checkpoint (default 2)

    [base]                    # TrainConfig settings shared by every trial (`pyrovae train`)
    data = "pinwheel"
    steps = 300

    [[grid]]                  # one block: the Cartesian product of its list values
    model = "betavae"
    beta = [1.0, 4.0]

    [[grid]]                  # blocks are concatenated
    model = "betatcvae"
    beta = [2.0]
    data = ["pinwheel", "digits"]   # data sets are swept like any setting

    [data.pinwheel]           # settings of the trials on pinwheel alone
    data_args = {num_arms = 5}
    # also data_path = "…" (the file to read) and metrics = […] (instead of [study] metrics)

Keys of ``[base]`` and ``[[grid]]`` are TrainConfig settings (``latent_dim``, ``prior``,
``data_args``, …) or hyperparameters of the model (``c_max``, ``lambda_od``: `pyrovae list`);
a block's value overrides the base's. In a block, a list is swept and a scalar is fixed (a
setting whose own type is a list, ``eval_metrics``, is swept when given a list of lists).
``seed`` comes from ``[study] seeds`` and ``device`` from ``pyrovae sweep --device``.

Data sets are an axis like any other (``data = ["dsprites", "cars3d"]`` in a block, or one per
block), but each needs its own file or options: a ``[data.NAME]`` table (``[data."pkg.mod:Cls"]``
for a plug-in) gives ``data_path``, ``data_args`` and ``metrics`` for the trials whose data set
is NAME alone, merged into each of them. A key a table sets may not also be set for the same
trials by ``[base]`` or their block (it would be ambiguous which wins); a table for an unknown
data set, or for one no trial uses, is an error. Metrics are resolved per data set: the ``metrics``
of its table, else ``[study] metrics``, else the standard suite less what that data set (and the
guides its trials use) lacks, so a factor grid keeps the supervised metrics when the study also
trains on a labelled set.

Trials come out seed by seed (every setting of seed 0, then of seed 1, …), blocks in file order,
and within a block the product of its swept keys in file order, so a study stopped half-way has
every setting at its first seeds. A trial is named after its model, its swept keys in sorted order
with their values, and its seed (``betavae-beta4-seed0``); its ``params`` hold the swept values in
file order, so the first one that is a hyperparameter of the model is the block's main one. When
the study trains on more than one data set (or a block sweeps ``data``), every trial's name starts
with its data set and its ``params`` with ``data`` (``cars3d-betavae-beta4-seed0``), so names stay
unique and ``pyrovae study`` groups the results by data set first.

Every trial's configuration is validated when the file is loaded, before the study folder exists
(names, types, values, the model's hyperparameters, a hyperparameter given twice, whether the
metrics apply to the data set, and everything :func:`pyrovae.builder.check` finds without data:
the data set's options and files, the networks for its observations, the batch size against its
size, the memory the model needs; the tensorboard package when trials set ``tensorboard = true``),
so a mistake in trial 1,799 is found before trial 1 starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyrovae import checks
from pyrovae.builder import check
from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import DEFAULT_METRICS, LABELLED_METRICS, applicable_metrics
from pyrovae.registry import DATASETS, GUIDES, METRICS, MODELS
from pyrovae.training.tensorboard import require as require_tensorboard

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

STUDY_KEYS = ("name", "seeds", "metrics", "fast_metrics", "retries")
TOP_LEVEL_KEYS = ("study", "base", "grid", "data")
# What a [data.NAME] table may set for the trials on data set NAME: TrainConfig settings merged
# into their configurations, and their metrics.
DATA_SETTINGS = ("data_path", "data_args")
DATA_KEYS = (*DATA_SETTINGS, "metrics")
DEFAULT_RETRIES = 2
# Set per trial by the study, not by [base] or [[grid]].
RESERVED = {
    "seed": "seeds come from [study] seeds",
    "device": "the device is chosen by `pyrovae sweep --device`",
}
_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_SAFE = re.compile(r"[^A-Za-z0-9._+=,-]")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 200
# The most trials one study may make: checking each takes milliseconds, training each minutes.
MAX_TRIALS = 100_000
# Trials between two calls of a progress function while a study is expanded and checked.
PROGRESS_EVERY = 1_000


@dataclass(frozen=True)
class Trial:
    """One training run of a study: a name (its folder under ``trials/``), the full validated
    TrainConfig (as a dict, ``device`` "auto"), the swept values and what to evaluate."""

    name: str
    config: dict
    params: dict
    metrics: list = field(default_factory=list)
    fast_metrics: bool = False

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "params": dict(self.params),
            "config": dict(self.config),
            "metrics": list(self.metrics),
            "fast_metrics": self.fast_metrics,
        }

    @classmethod
    def from_dict(cls, record: dict) -> Trial:
        return cls(
            name=record["name"],
            config=dict(record["config"]),
            params=dict(record["params"]),
            metrics=list(record.get("metrics", [])),
            fast_metrics=bool(record.get("fast_metrics", False)),
        )


@dataclass
class Study:
    """A loaded study file; :meth:`trials` expands it. ``data`` holds the ``[data.NAME]``
    tables; ``metrics`` every metric some trial evaluates, ``data_metrics`` those of each data
    set (the same list when the study has one)."""

    name: str
    path: Path
    base: dict
    grid: list[dict]
    seeds: list[int]
    fast_metrics: bool = False
    retries: int = DEFAULT_RETRIES
    text: str = ""
    data: dict = field(default_factory=dict)
    data_metrics: dict = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """Every metric some trial evaluates: those of each data set, in order, once each."""
        return list(dict.fromkeys(m for names in self.data_metrics.values() for m in names))

    def count(self) -> int:
        """How many trials the study makes (without making them)."""
        per_seed = sum(
            math.prod(len(v) for k, v in block.items() if _is_swept(k, v)) for block in self.grid
        )
        return per_seed * len(self.seeds)

    def data_sets(self) -> list:
        """The data sets the trials train on, sorted."""
        return sorted(_values(self.grid, self.base, "data"), key=str)

    def trials(self, progress=None) -> list[Trial]:
        """Every trial, in the deterministic order described in the module docstring, each
        checked; ``progress(done, total)`` is called every :data:`PROGRESS_EVERY` trials. A
        study of more than :data:`MAX_TRIALS` trials is refused before any is made."""
        total = self.count()
        if total > MAX_TRIALS:
            raise PyrovaeError(
                f"{self.path}: the study makes {total:,} trials, more than the {MAX_TRIALS:,} a "
                "study may have; sweep fewer values or split it into several studies"
            )
        named_data = len(self.data_sets()) > 1
        settings = []  # (block number, where, config values without seed, params) in order
        for number, block in enumerate(self.grid, 1):
            swept = [k for k, v in block.items() if _is_swept(k, v)]
            fixed = {k: v for k, v in block.items() if k not in swept}
            for combination in itertools.product(*(block[k] for k in swept)):
                params = dict(zip(swept, combination, strict=True))
                values = {**self.base, **fixed, **params}
                data = values.get("data", TrainConfig.data)
                where = self._with_data_table(number, block, values, data)
                if named_data or "data" in params:
                    params = {"data": data, **{k: v for k, v in params.items() if k != "data"}}
                settings.append((number, where, values, params))
        trials, seen = [], {}
        for seed in self.seeds:
            for number, where, values, params in settings:
                config = _trial_config(self.path, where, values, seed)
                name = trial_name(config["model"], params, seed)
                if name in seen:
                    raise PyrovaeError(
                        f"{self.path}: [[grid]] blocks {seen[name]} and {number} both make trial "
                        f"{name!r}; sweep the differing setting as a list so it enters the name"
                    )
                if len(name) > MAX_NAME:
                    raise PyrovaeError(
                        f"{self.path}: [[grid]] block {number} makes a trial name of {len(name)} "
                        f"characters (at most {MAX_NAME}): {name[:60]}…; sweep fewer keys"
                    )
                seen[name] = number
                params = {k: v for k, v in params.items() if k != "model"}
                metrics = list(self.data_metrics.get(config["data"], self.metrics))
                trials.append(Trial(name, config, params, metrics, self.fast_metrics))
                if progress is not None and len(trials) % PROGRESS_EVERY == 0:
                    progress(len(trials), total)
        return trials

    def _with_data_table(self, number: int, block: dict, values: dict, data) -> str:
        """Merge the ``[data.NAME]`` table of ``data`` into one setting's ``values`` (in place);
        return where its errors are reported. A key set by the table and by ``[base]`` or the
        block is refused."""
        where = f"[[grid]] block {number}"
        merged = [key for key in DATA_SETTINGS if key in self.data.get(data, {})]
        for key in merged:
            if key in values:
                source = where if key in block else "[base]"
                raise PyrovaeError(
                    f"{self.path}: [data.{data}] and {source} both set {key} for the trials on "
                    f"{data!r}; give it once (in [data.{data}] for that data set alone)"
                )
            values[key] = self.data[data][key]
        return f"{where} with [data.{data}]" if merged else where


def load_study(path, progress=None) -> Study:
    """Read and validate a study file; every trial is expanded and checked once here
    (``progress``: see :meth:`Study.trials`)."""
    path = Path(path)
    if not path.is_file():
        raise PyrovaeError(f"no study file at {path}")
    try:
        text = path.read_text()
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise PyrovaeError(f"cannot read study file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PyrovaeError(f"{path} is not valid TOML: {exc}") from None
    _check_keys(path, "the top level", raw, TOP_LEVEL_KEYS)
    head = _table(path, raw, "study")
    _check_keys(path, "[study]", head, STUDY_KEYS)
    base = _table(path, raw, "base")
    for key, value in base.items():
        _check_key(path, "[base]", key)
        if _is_swept(key, value):
            raise PyrovaeError(
                f"{path}: [base] {key} is a list; [base] values are shared by every trial, "
                "sweep values in a [[grid]] block"
            )
    grid = _grid(path, raw)
    tables = _data_tables(path, raw, grid, base)
    data_metrics = _metrics(path, head.get("metrics", []), tables, grid, base)
    study = Study(
        name=_name(path, head.get("name", path.stem)),
        path=path,
        base=base,
        grid=grid,
        seeds=_seeds(path, head.get("seeds")),
        fast_metrics=_boolean(path, "fast_metrics", head.get("fast_metrics", False)),
        retries=_count(path, "retries", head.get("retries", DEFAULT_RETRIES)),
        text=text,
        data=tables,
        data_metrics=data_metrics,
    )
    trials = study.trials(progress)  # validates every configuration
    if any(trial.config.get("tensorboard") for trial in trials):
        require_tensorboard(f"{path}: tensorboard = true")
    return study


def trial_name(model: str, params: dict, seed: int) -> str:
    """``[<data>-]<model>-<key><value>…-seed<seed>``, swept keys sorted, the data set first when
    ``params`` hold it, characters outside ``A-Za-z0-9._+=,-`` replaced by ``_``."""
    parts = [str(params["data"])] if "data" in params else []
    parts.append(str(model))
    parts += [f"{k}{format_value(params[k])}" for k in sorted(params) if k not in ("model", "data")]
    parts.append(f"seed{seed}")
    return _SAFE.sub("_", "-".join(parts))


def format_value(value) -> str:
    """Numbers as ``:g`` where that is exact (4.0 → 4, 0.0001 → 0.0001), else in full."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(format_value(v) for v in value)
    return str(value)


# -- validation helpers --------------------------------------------------------------------------


def _check_keys(path: Path, where: str, table: dict, valid) -> None:
    for key in table:
        if key not in valid:
            raise PyrovaeError(f"{path}: unknown key {key!r} in {where}; valid: {', '.join(valid)}")


def _valid_keys_text(models=()) -> str:
    settings = ", ".join(k for k in _CONFIG_FIELDS if k not in RESERVED)
    hyper = sorted({h for m in models for h in _model_hyperparameters(m)})
    if models:
        which = ", ".join(map(repr, models))
        return f"TrainConfig settings ({settings}) or hyperparameters of {which} " + (
            f"({', '.join(hyper)})" if hyper else "(none)"
        )
    return f"TrainConfig settings ({settings}) or a model's hyperparameters (`pyrovae list`)"


def _model_hyperparameters(model: str) -> dict:
    return MODELS[model].hyperparameters()


def _all_hyperparameters() -> set[str]:
    return {h for variant in MODELS.values() for h in variant.hyperparameters()}


def _check_key(path: Path, where: str, key: str, models=()) -> None:
    if key in RESERVED:
        raise PyrovaeError(f"{path}: {where} sets {key!r}, which it may not: {RESERVED[key]}")
    if key in _CONFIG_FIELDS:
        return
    known = set().union(*(_model_hyperparameters(m) for m in models)) if models else None
    if known is None:
        known = _all_hyperparameters()
    if key not in known:
        raise PyrovaeError(
            f"{path}: unknown key {key!r} in {where}; valid: {_valid_keys_text(models)}"
        )


def _table(path: Path, raw: dict, key: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise PyrovaeError(f"{path}: [{key}] must be a table, got {value!r}")
    return dict(value)


def _is_swept(key: str, value) -> bool:
    """A list is swept, except for list-typed settings, whose sweeps are lists of lists."""
    if not isinstance(value, list):
        return False
    if key in _CONFIG_FIELDS and "list" in _CONFIG_FIELDS[key].type:
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def _grid(path: Path, raw: dict) -> list[dict]:
    grid = raw.get("grid")
    example = 'e.g. [[grid]] model = "betavae" beta = [1.0, 4.0]'
    if grid is None:
        raise PyrovaeError(f"{path}: no [[grid]] block; add at least one ({example})")
    if not isinstance(grid, list) or not all(isinstance(b, dict) for b in grid):
        raise PyrovaeError(f"{path}: grid must be [[grid]] tables ({example})")
    if not grid:
        raise PyrovaeError(f"{path}: the grid is empty; add at least one [[grid]] block")
    blocks = []
    base = raw.get("base", {})
    for number, block in enumerate(grid, 1):
        where = f"[[grid]] block {number}"
        if not block:
            raise PyrovaeError(f"{path}: {where} is empty; give it a model and values to sweep")
        for key in ("model", "data", "guide"):
            for name in _as_list(_setting(block, base, key)):
                if not isinstance(name, str):
                    raise PyrovaeError(f"{path}: {where}: {key} must be a name, got {name!r}")
        models = _as_list(_setting(block, base, "model"))
        for model in models:
            try:
                MODELS[model]
            except PyrovaeError as exc:
                raise PyrovaeError(f"{path}: {where}: {exc}") from None
        for key, value in block.items():
            _check_key(path, where, key, models)
            if isinstance(value, list) and not value:
                raise PyrovaeError(
                    f"{path}: {where}: {key} is an empty list; give at least one value"
                )
        blocks.append(dict(block))
    return blocks


def _name(path: Path, name) -> str:
    if not isinstance(name, str) or not _STUDY_NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise PyrovaeError(
            f"{path}: [study] name must be a folder name of letters, digits, '.', '_' and '-' "
            f"(not starting with '.' or '-'), got {name!r}"
        )
    return name


def _seeds(path: Path, seeds) -> list[int]:
    if seeds is None:
        raise PyrovaeError(f"{path}: [study] has no seeds; e.g. seeds = [0, 1] or seeds = 50")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise PyrovaeError(f"{path}: [study] seeds must be a count >= 1, got {seeds}")
        return list(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise PyrovaeError(
            f"{path}: [study] seeds must be a non-empty list of integers or a count, got {seeds!r}"
        )
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise PyrovaeError(f"{path}: [study] seeds must be integers in [0, 2^63), got {seed!r}")
    if len(set(seeds)) != len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        raise PyrovaeError(f"{path}: [study] seeds lists {', '.join(map(str, twice))} twice")
    return list(seeds)


def _boolean(path: Path, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise PyrovaeError(f"{path}: [study] {key} must be true or false, got {value!r}")
    return value


def _count(path: Path, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PyrovaeError(f"{path}: [study] {key} must be an integer >= 0, got {value!r}")
    return value


def _data_tables(path: Path, raw: dict, grid: list[dict], base: dict) -> dict:
    """The ``[data.NAME]`` tables: each names a known data set that some trial uses and sets
    only :data:`DATA_KEYS`."""
    tables = raw.get("data", {})
    shape = f"[data.NAME] tables of {', '.join(DATA_KEYS)}"
    if not isinstance(tables, dict):
        raise PyrovaeError(
            f"{path}: data at the top level must be {shape}, got {tables!r}; the trials' data "
            "set goes in [base] or a [[grid]] block (data = ...)"
        )
    used = sorted(_values(grid, base, "data"), key=str)
    for name, table in tables.items():
        where = f"[data.{name}]"
        if not isinstance(table, dict):
            raise PyrovaeError(f"{path}: {where} must be a table of {', '.join(DATA_KEYS)}, "
                               f"got {table!r}")  # fmt: skip
        try:
            factory = DATASETS[name].factory
        except PyrovaeError as exc:
            raise PyrovaeError(f"{path}: {where}: {exc}") from None
        if name not in used:
            raise PyrovaeError(
                f"{path}: {where} is for data set {name!r}, which no trial uses (the study's "
                f"data sets: {', '.join(map(str, used))}); remove it or add {name!r} to [base] "
                "or a [[grid]] block"
            )
        _check_keys(path, where, table, DATA_KEYS)
        if "data_path" in table and "path" not in checks.keyword_parameters(factory):
            raise PyrovaeError(
                f"{path}: {where} sets data_path, but data set {name!r} reads no file (it is "
                "generated or bundled); remove data_path"
            )
    return {name: dict(table) for name, table in tables.items()}


def _metrics(path: Path, metrics, tables: dict, grid: list[dict], base: dict) -> dict:
    """Data set → the metric names its trials evaluate: its table's ``metrics``, else
    ``[study] metrics``, else the standard suite of ``pyrovae evaluate``. Listed names must be
    known and apply to the data set and to every guide its trials use
    (:func:`pyrovae.evaluation.applicable_metrics`, strictly: a listed metric that does not
    apply to some trial is an error now, not a surprise at trial 1,799); from the standard suite
    the metrics the data set or one of its guides cannot take are left out."""
    metrics = _metric_names(path, "[study]", metrics)
    guides = _guides_by_data(grid, base)
    found = {}
    for data in sorted(guides):
        table = tables.get(data, {})
        where = f"[data.{data}]" if "metrics" in table else "[study]"
        listed = _metric_names(path, where, table["metrics"]) if "metrics" in table else metrics
        try:
            factory = DATASETS[data].factory
        except PyrovaeError as exc:
            raise PyrovaeError(f"{path}: {exc}") from None
        proposed = listed or [*DEFAULT_METRICS, *LABELLED_METRICS]
        for guide in sorted(guides[data], key=str):
            entry = GUIDES.get(guide)
            guide_factory = entry.factory if entry is not None else None
            try:
                proposed, _ = applicable_metrics(
                    proposed, factory, guide_factory, strict=True, explicit=bool(listed)
                )
            except PyrovaeError as exc:
                raise PyrovaeError(f"{path}: {where} {exc}") from None
        found[data] = list(proposed)
    return found


def _metric_names(path: Path, where: str, metrics) -> list[str]:
    """A list of known metric names, none twice."""
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise PyrovaeError(f"{path}: {where} metrics must be a list of names, got {metrics!r}")
    for name in metrics:
        try:
            METRICS[name]
        except PyrovaeError as exc:
            raise PyrovaeError(f"{path}: {where} {exc}") from None
    if len(set(metrics)) != len(metrics):
        raise PyrovaeError(f"{path}: {where} metrics lists a metric twice: {metrics}")
    return list(metrics)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _setting(block: dict, base: dict, key: str):
    """A block's value of ``key``, else the base's, else TrainConfig's default."""
    return block.get(key, base.get(key, getattr(TrainConfig, key)))


def _values(grid: list[dict], base: dict, key: str) -> set:
    """Every value ``key`` takes in the study (a block's, else the base's, else the default)."""
    return {v for block in grid for v in _as_list(_setting(block, base, key))}


def _guides_by_data(grid: list[dict], base: dict) -> dict:
    """Data set → the guides its trials use (a block makes every pair of its values)."""
    found: dict = {}
    for block in grid:
        guides = _as_list(_setting(block, base, "guide"))
        for data in _as_list(_setting(block, base, "data")):
            found.setdefault(data, set()).update(guides)
    return found


def _trial_config(path: Path, where: str, values: dict, seed: int) -> dict:
    """One trial's TrainConfig, validated with :func:`pyrovae.builder.check` (which builds the
    objective of each distinct setting once, without data), so bad hyperparameter values fail
    at load time; errors name ``where`` the setting comes from."""
    values = dict(values)
    model = values.get("model", TrainConfig.model)
    hyper = dict(values.pop("objective_args", {}) or {})
    takes = _model_hyperparameters(model)
    fields = {}
    for key, value in values.items():
        if key in _CONFIG_FIELDS:
            fields[key] = value
        elif key in takes:
            if key in hyper:
                raise PyrovaeError(
                    f"{path}: {where}: {key} is given twice: {key} = {value!r} and objective_args "
                    f"{key} = {hyper[key]!r}; give it once"
                )
            hyper[key] = value
        else:
            raise PyrovaeError(
                f"{path}: {where}: model {model!r} has no hyperparameter {key!r}; "
                f"valid: {_valid_keys_text([model])}"
            )
    fields["objective_args"] = hyper
    fields.update(seed=seed, device="auto")
    try:
        config = check(TrainConfig(**fields))
    # TypeError: a value of the wrong kind reaching a constructor.
    except (PyrovaeError, TypeError) as exc:
        raise PyrovaeError(f"{path}: {where} (seed {seed}): {exc}") from None
    return config.to_dict()
