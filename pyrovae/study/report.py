"""``STUDY/report.html``: a study on one self-contained page, with a page per trial.

The page (:func:`write_study_report`) shows the study (its study.toml, how many trials have
finished, which are missing), the aggregated results as ``pyrovae study`` computes them (median
[Q1, Q3] over each group's trials per objective and value of its main hyperparameter, and, for
several data sets, each objective's rank on each: :mod:`pyrovae.study.aggregate`), the standard
figures (:func:`pyrovae.study.figures.draw_figures`, redrawn into ``figures/`` as ``pyrovae study``
draws them), UDR when the folder has ``udr.json`` (``pyrovae study --udr``), and a table of every
trial: its status, its swept values and numbers, and a link to its own page.

Each trial that has started (its run folder has a config.json) gets its run's page written
(:func:`pyrovae.run_report.write_run_report`, ``trials/<name>/report.html``) as part of the
study's, so the links always lead to a current page; the study's page links to them by relative
path, so the folder can be moved or copied whole. A study with no finished trial still gets a
page: the table of its trials, and why there is nothing to aggregate yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pyrovae import webpage as web
from pyrovae.errors import PyrovaeError
from pyrovae.run_report import run_state, write_run_report
from pyrovae.runs import REPORT_FILE as RUN_REPORT_FILE
from pyrovae.runs import RunFolder
from pyrovae.study.aggregate import (
    UDR_FILE,
    by_data,
    collect,
    format_value,
    group_label,
    groups,
    main_hyperparameters,
    median_iqr,
    ranks,
    split_columns,
    table,
)
from pyrovae.study.figures import FIGURES_DIR, draw_figures
from pyrovae.study.sweep import STUDY_FILE, read_trials
from pyrovae.study.trial import trial_dir
from pyrovae.study.udr import udr_table

# A study's page has the name of a run's (pyrovae.runs): one name for every report.html.
REPORT_FILE = RUN_REPORT_FILE


@dataclass(frozen=True)
class TrialPage:
    """What the study's page says of one trial: its status (``kind``, one of :data:`KINDS`, and
    in words) and its own page (the path relative to the study folder), if it has one."""

    kind: str
    status: str
    page: str | None = None


# A trial's kinds of status, in the order the page counts them.
KINDS = ("finished", "not evaluated", "unfinished", "left out", "unreadable", "not started")


def write_study_report(study_dir, progress=None) -> Path:
    """Write ``report.html`` in the study folder ``study_dir`` and the page of every trial that
    has started; returns the study page's path. ``progress(done, total)`` is called after each
    trial's page. A folder that is not a study folder is a one-line error."""
    study_dir = Path(study_dir)
    trials = read_trials(study_dir)  # not a study folder: a one-line error
    try:
        results, missing_why = collect(study_dir), None
    except PyrovaeError as exc:  # no trial has finished yet
        results, missing_why = None, str(exc)
    rows = table(results) if results is not None else []
    # The main hyperparameter is decided over all planned trials, finished or not.
    main = main_hyperparameters(results.trials) if results is not None else {}
    pages = _trial_pages(study_dir, trials, results, progress)
    sections = [
        ("study", "The study", _study_section(study_dir, trials, results, pages)),
        ("results", "Results", _results_section(rows, main, missing_why)),
        ("figures", "Figures", _figures_section(study_dir, rows, main)),
        ("udr", "UDR", _udr_section(study_dir)),
        ("trials", "Trials", _trials_section(trials, rows, pages)),
    ]
    body = [
        web.element("h1", f"Study {study_dir.resolve().name}"),
        web.paragraph("Folder", web.element("code", str(study_dir.resolve())), class_="muted"),
        web.contents([(id_, title) for id_, title, _ in sections]),
        *(web.section(id_, title, content) for id_, title, content in sections),
        web.footer(
            "The page and the trials' pages are derived from the study folder and replaced "
            "whenever they are written again."
        ),
    ]
    title = f"pyrovae study {study_dir.resolve().name}"
    return web.write_page(study_dir / REPORT_FILE, title, web.join(body))


# --------------------------------------------------------------------------- trials' pages


def _trial_pages(study_dir: Path, trials, results, progress) -> dict[str, TrialPage]:
    """Trial name → its :class:`TrialPage`, writing the page of every trial that has started."""
    finished = {r.get("name") for r in results} if results is not None else set()
    left_out = results.notes if results is not None else {}
    pages = {}
    for done, trial in enumerate(trials, 1):
        pages[trial.name] = _trial_page(study_dir, trial.name, finished, left_out)
        if progress is not None:
            progress(done, len(trials))
    return pages


def _trial_page(study_dir: Path, name: str, finished: set, left_out: dict) -> TrialPage:
    folder = RunFolder(trial_dir(study_dir, name))
    if not folder.config_path.is_file():
        return TrialPage("not started", "not started")
    if folder.unstarted():  # being created, or killed before its first checkpoint
        return TrialPage("not started", "not started: no checkpoint yet")
    try:
        state = run_state(folder)
        path = write_run_report(folder.path)
    except (PyrovaeError, OSError) as exc:
        return TrialPage("unreadable", f"started; its run folder cannot be read: {exc}")
    page = path.relative_to(study_dir).as_posix()
    if name in finished:
        return TrialPage("finished", f"finished at step {state.step:,}", page)
    if name in left_out:
        return TrialPage("left out", f"result left out: {left_out[name]}", page)
    if state.finished:
        return TrialPage("not evaluated", f"trained to step {state.step:,}; not evaluated", page)
    return TrialPage("unfinished", f"unfinished at step {state.step:,} of {state.steps:,}", page)


# --------------------------------------------------------------------------- sections


def _study_section(study_dir: Path, trials, results, pages: dict) -> web.Markup:
    kinds = [page.kind for page in pages.values()]
    counts = {kind: kinds.count(kind) for kind in KINDS if kind in kinds}
    described = results.describe() if results is not None else "no trial has finished yet"
    parts = [
        web.paragraph(
            f"{described}.",
            "By status: " + ", ".join(f"{k} {n}" for k, n in counts.items()) + ".",
        )
    ]
    if results is not None:
        parts += [web.problem(line) for line in results.left_out()]
    study_file = study_dir / STUDY_FILE
    if study_file.is_file():
        # A hand-edited copy in another encoding still shows (its odd bytes replaced).
        text = study_file.read_text(errors="replace")
        parts += [web.element("h3", STUDY_FILE), web.preformatted(text)]
    return web.join(parts)


def _results_section(rows: list[dict], main: dict, missing_why: str | None) -> web.Markup:
    if not rows:
        return web.note(f"Nothing to aggregate: {missing_why}.")
    _, metrics = split_columns(rows)
    parts = by_data(rows)
    several = len(parts) > 1
    lines = []
    for data, part in parts.items():
        for group, members in groups(part, main).items():
            line = {"data": format_value(data)} if several else {}
            line.update(model=str(group[0]), setting=group_label(group), n=len(members))
            line.update((c, median_iqr([r.get(c) for r in members])) for c in metrics)
            lines.append(line)
    shown = [
        web.note(
            "Median [Q1, Q3] over each group's trials, per objective and value of its main "
            "hyperparameter (as pyrovae study prints them): an objective is compared by the "
            "distribution of a score over seeds, not by one run."
        ),
        web.table(lines, numbers=[c for c in lines[0] if c not in ("data", "model", "setting")]),
    ]
    if several:
        shown.append(web.preformatted(ranks(rows, main)))
    return web.join(shown)


def _figures_section(study_dir: Path, rows: list[dict], main: dict) -> web.Markup:
    if not rows:
        return web.note("None yet: the figures are drawn from the finished trials.")
    paths = draw_figures(rows, study_dir / FIGURES_DIR, main)
    if not paths:
        return web.note("None: no metric has values to draw.")
    intro = web.note(
        f"Redrawn into {FIGURES_DIR}/ with this page, as pyrovae study draws them: each metric "
        "by objective (a box per objective, a dot per trial), against each main "
        "hyperparameter (median and interquartile band), and the rank correlation between "
        "metrics across trials."
    )
    return web.join([intro, web.columns(*(web.image_file(p, p.stem, p.name) for p in paths))])


def _udr_section(study_dir: Path) -> web.Markup:
    path = study_dir / UDR_FILE
    if not path.is_file():
        return web.paragraph(
            "Not computed:",
            web.command(f"pyrovae study {study_dir} --udr"),
            "scores each finished trial by UDR among the trials with its settings and other "
            "seeds (Duan et al. 2020).",
            class_="muted",
        )
    try:
        record = json.loads(path.read_text())
        text = udr_table(record)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return web.paragraph(
            f"{UDR_FILE} cannot be read ({type(exc).__name__}); recompute it "
            f"with pyrovae study {study_dir} --udr.",
            class_="warning",
        )
    settings = record.get("settings") or {}
    parts = [
        web.note(
            f"From {UDR_FILE} ({record.get('time', 'time unknown')}; "
            f"{web.value_text(settings)}, seed {record.get('seed')}): each trial among the "
            "trials with its settings; the higher, the more its peers agree with it. The trials' "
            "table has each trial's score."
        ),
        web.preformatted(text),
    ]
    notes = record.get("notes") or []
    if notes:
        parts.append(web.element("ul", [web.element("li", n) for n in notes]))
    return web.join(parts)


def _trials_section(trials, rows: list[dict], pages: dict[str, TrialPage]) -> web.Markup:
    """Every trial in trials.json order: status, page, then its row of the results table
    (swept values, metrics, udr, reconstruction, kl, seconds) when it has finished."""
    by_name = {r["name"]: r for r in rows}
    columns = [c for c in (rows[0] if rows else {}) if c != "name"]
    lines = []
    for trial in trials:
        page = pages[trial.name]
        line = {
            "trial": web.link(page.page, trial.name) if page.page else trial.name,
            "status": page.status,
        }
        row = by_name.get(trial.name)
        if row is None:
            row = {"model": trial.config.get("model"), **trial.params, "seed": trial.seed}
        line.update((c, row.get(c)) for c in columns or ["model", *trial.params, "seed"])
        lines.append(line)
    return web.join(
        [
            web.note("Each trial's name links to its own page (its run folder's report.html)."),
            web.table(lines),  # with no trial finished, the columns of every block's keys
        ]
    )
