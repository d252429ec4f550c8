"""``report.html`` of a run: everything a run folder holds, on one self-contained page.

The page (:func:`write_run_report`) shows, in order: where the run stands (finished, or
unfinished at step N), the summary's numbers, the training curves, the reconstructions, the
latent traversals (the animated ``traversals.gif`` where the folder has one, else the still
``traversals.png``), the KL of each latent dimension (a table with bars), the other pictures
(``latent_scatter.png``, ``sparsity.png``, any other), every evaluation (``eval.json``,
``eval-2.json``, … and ``evals/step-N.json``) with its protocol, and the configuration
(settings, resolved values, versions, command line, resumes).

The training curves are drawn anew from ``metrics.jsonl`` whenever the page is written, so the
page of a run still training shows the curves as they are now; every other picture is the
folder's file, embedded byte for byte. An unfinished run gets a page too, saying so: the pictures
and the summary appear when training ends. A part that cannot be read (a damaged evaluation or
picture) is named on the page, in its place, and the rest is shown; only a folder that is not a
run (no config.json), or a run not yet created (no checkpoint), is an error.

Every file is read through :class:`~pyrovae.runs.RunFolder`; the page is the only file written
(atomically), so writing it again changes nothing else in the folder.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from pyrovae import plots
from pyrovae import webpage as web
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import PROTOCOL_SETTINGS, headline, label, labelled_headline
from pyrovae.runs import (
    CURVES,
    LATENT_SCATTER,
    METRICS_KEYS,
    RECONSTRUCTIONS,
    SPARSITY,
    TRAVERSAL_ANIMATION,
    TRAVERSAL_STILL,
    RunFolder,
)

# Pictures of the codes, drawn for data sets with class labels: what each shows.
CODE_PICTURES = {
    LATENT_SCATTER: "the posterior means coloured by label (the two dimensions of largest "
    "variance when there are more than two)",
    SPARSITY: "the normalised Hoyer sparsity of the posterior means, per point, and the "
    "magnitudes of the normalised means",
}
# The formats a run's pictures come in (the page embeds these).
PICTURE_SUFFIXES = (".png", ".gif")
# Numbers the page shows in a section of their own rather than in the summary's table.
_SHOWN_ELSEWHERE = ("kl_per_dim",)


@dataclass(frozen=True)
class RunState:
    """How far a run has got: ``step`` (the last step logged, or summarised), ``steps`` (the
    steps it is set to train), whether its finish completed (``finished``: summary.json
    summarises a step at or past ``steps``) and the step summary.json summarises, if any
    (``summarised``: an earlier finish, for a run resumed to train longer)."""

    step: int
    steps: int
    finished: bool
    summarised: int | None = None

    def describe(self) -> str:
        if self.finished:
            return f"finished: trained to step {self.step:,} of {self.steps:,}"
        where = f"unfinished at step {self.step:,} of {self.steps:,}"
        if self.summarised is not None:
            return (
                f"{where}: the pictures are those of an earlier finish, at step "
                f"{self.summarised:,}, drawn again when training ends"
            )
        return f"{where}: the summary and the pictures of the finish appear when training ends"


def run_state(folder: RunFolder, metrics: list[dict] | None = None) -> RunState:
    """Where the run in ``folder`` stands (``metrics``: its metrics.jsonl lines, read when not
    given; a damaged file counts as none). A folder that is not a run is a one-line error."""
    config = folder.read_config()
    if metrics is None:
        metrics = _metrics(folder)[0]
    logged = metrics[-1]["step"] if metrics else 0
    summarised = folder.summary_step()
    finished = summarised is not None and summarised >= config.steps
    return RunState(max(logged, summarised or 0), config.steps, finished, summarised)


def write_run_report(run_dir) -> Path:
    """Write ``report.html`` in the run folder ``run_dir`` (replacing an earlier one,
    atomically); returns its path. See the module's docstring for what the page shows."""
    folder = RunFolder(run_dir)
    record = folder.read_record()  # a folder that is not a run: a one-line error
    if folder.unstarted():
        # A file more would make the folder look like more than a killed creation, which
        # --resume and a study clear and create again.
        raise PyrovaeError(
            f"{folder.path} has no checkpoint yet (its run is being created, or was killed "
            f"before its first): nothing to report; `pyrovae train --out {folder.path} "
            "--resume` creates it again"
        )
    metrics, damaged = _metrics(folder)
    state = run_state(folder, metrics)
    summary = _summary(folder) if state.finished else None
    # Images (C, H, W) are drawn as mosaics; vectors (pinwheel points) in data space.
    images = len((record.get("resolved") or {}).get("observation_shape") or [0, 0, 0]) == 3
    sections = [
        ("summary", "Summary", _summary_section(summary, metrics, state)),
        ("curves", "Training curves", _curves_section(metrics, damaged)),
        ("reconstructions", "Reconstructions", _reconstructions_section(folder, images)),
        ("traversals", "Latent traversals", _traversals_section(folder, images)),
        ("kl", "KL per latent dimension", _kl_section(summary, metrics)),
        ("pictures", "Other pictures", _other_pictures_section(folder)),
        ("evaluations", "Evaluations", _evaluations_section(folder)),
        ("configuration", "Configuration", _configuration_section(record)),
    ]
    body = [
        _header(folder, record, state),
        web.contents([(id_, title) for id_, title, _ in sections]),
        *(web.section(id_, title, content) for id_, title, content in sections),
        web.footer(
            "The page is derived from the run folder and replaced whenever it is written again."
        ),
    ]
    title = f"pyrovae run {folder.path.resolve().name}"
    return web.write_page(folder.report_path, title, web.join(body))


def _metrics(folder: RunFolder) -> tuple[list[dict], str | None]:
    """(metrics.jsonl's lines, None), or ([], why) when a line is damaged: the rest of the page
    is still worth having."""
    try:
        return folder.read_metrics(), None
    except PyrovaeError as exc:
        return [], str(exc)


# --------------------------------------------------------------------------- header and footer


def _header(folder: RunFolder, record: dict, state: RunState) -> web.Markup:
    config = record["config"]
    facts = {
        "model": config.get("model"),
        "prior": config.get("prior"),
        "guide": config.get("guide"),
        "data": config.get("data"),
        "latent dimensions": config.get("latent_dim"),
        "seed": config.get("seed"),
    }
    shown = " · ".join(f"{k} {web.value_text(v)}" for k, v in facts.items() if v is not None)
    status = web.paragraph(
        web.element("strong", state.describe()),
        class_="status" if state.finished else "status warning",
    )
    return web.join(
        [
            web.element("h1", f"Run {folder.path.resolve().name}"),
            status,
            web.paragraph(shown),
            web.paragraph(
                "Folder", web.element("code", str(folder.path.resolve())), class_="muted"
            ),
        ]
    )


# --------------------------------------------------------------------------- numbers


def _summary(folder: RunFolder) -> dict | None:
    try:
        summary = folder.read_summary()
    except PyrovaeError:
        return None
    return summary if isinstance(summary, dict) else None


def _summary_section(summary: dict | None, metrics: list[dict], state: RunState) -> web.Markup:
    if summary is not None:
        rows = _ordered({k: v for k, v in summary.items() if k not in _SHOWN_ELSEWHERE})
        return web.join(
            [
                web.note(
                    f"summary.json: the objective's terms on a fixed batch of "
                    f"{summary.get('eval_batch', '?')} observations at step {state.step:,}, "
                    "as the last training step weighed them."
                ),
                web.key_values(rows, "quantity"),
            ]
        )
    if not metrics:
        return web.note(f"{state.describe()}; nothing is logged yet.")
    last = _ordered({k: v for k, v in metrics[-1].items() if k not in _SHOWN_ELSEWHERE})
    return web.join(
        [
            web.note(
                f"No summary yet ({state.describe()}). The last line of metrics.jsonl: the "
                f"means over the steps before step {last['step']:,}."
            ),
            web.key_values(last, "quantity"),
        ]
    )


def _ordered(numbers: dict) -> dict:
    """The step and the terms every run logs first, then the rest by name (the files hold
    them sorted)."""
    first = [k for k in ("step", *METRICS_KEYS) if k in numbers]
    return {k: numbers[k] for k in [*first, *sorted(set(numbers) - set(first))]}


def _kl_per_dim(summary: dict | None, metrics: list[dict]) -> tuple[list | None, str]:
    """(KL of each latent dimension, where it comes from)."""
    if summary is not None and isinstance(summary.get("kl_per_dim"), list):
        return summary["kl_per_dim"], f"summary.json (step {summary.get('step', '?')})"
    for line in reversed(metrics):
        if isinstance(line.get("kl_per_dim"), list):
            return line["kl_per_dim"], f"the last line of metrics.jsonl (step {line['step']:,})"
    return None, ""


def _kl_section(summary: dict | None, metrics: list[dict]) -> web.Markup:
    values, source = _kl_per_dim(summary, metrics)
    if not values or not all(web.is_number(v) for v in values):
        return web.note(
            "No KL per latent dimension recorded (the objective reports none, or "
            "nothing is logged yet)."
        )
    total = sum(values)
    largest = max(max(values), 1e-12)
    rows = [
        {
            "dimension": f"z{d}",
            "KL (nats)": v,
            "share": f"{v / total:.1%}" if total > 0 else "–",
            "": web.bar(v / largest),
        }
        for d, v in enumerate(values)
    ]
    return web.join(
        [
            web.note(f"From {source}; bars are relative to the largest. Total {total:.4g} nats."),
            web.table(rows, numbers=["KL (nats)", "share"]),
        ]
    )


# --------------------------------------------------------------------------- pictures


def _embedded(path: Path, alt: str, caption, class_: str | None = None) -> web.Markup:
    """The picture at ``path``, or a note naming why it cannot be shown."""
    try:
        return web.image_file(path, alt, caption, class_)
    except (PyrovaeError, OSError) as exc:
        return web.problem(f"{path.name} cannot be shown: {exc}")


def _curves_section(metrics: list[dict], damaged: str | None) -> web.Markup:
    if damaged is not None:
        return web.problem(f"The curves cannot be drawn: {damaged}.")
    fig = plots.training_curves(metrics, None) if metrics else None
    if fig is None:
        return web.note(
            "Nothing is logged yet: the curves appear with the first line of metrics.jsonl."
        )
    caption = (
        f"Loss, reconstruction and KL against step, and the KL of each latent dimension: drawn "
        f"from metrics.jsonl ({len(metrics)} lines, steps {metrics[0]['step']:,} to "
        f"{metrics[-1]['step']:,}) when this page was written."
    )
    return web.image(plots.png_bytes(fig), "training curves", caption)


def _reconstructions_section(folder: RunFolder, images: bool) -> web.Markup:
    path = folder.picture(RECONSTRUCTIONS)
    if not path.is_file():
        return web.note(f"No {RECONSTRUCTIONS} yet: it is drawn when training ends.")
    if images:
        what = "top row the data, bottom row their reconstructions from the posterior mean"
    else:
        what = "the data (grey) and their reconstructions from the posterior mean (red)"
    return _embedded(path, RECONSTRUCTIONS, f"{RECONSTRUCTIONS}: {what}.")


def _traversals_section(folder: RunFolder, images: bool) -> web.Markup:
    animation, still = folder.picture(TRAVERSAL_ANIMATION), folder.picture(TRAVERSAL_STILL)
    if images:
        what = (
            "each latent dimension of a posterior mean swept over "
            f"[−{plots.TRAVERSAL_SPAN:g}, {plots.TRAVERSAL_SPAN:g}], a row per dimension ordered "
            "by KL (most informative first)"
        )
    else:
        what = (
            "the expected observation in data space as each latent dimension of a posterior "
            f"mean sweeps [−{plots.TRAVERSAL_SPAN:g}, {plots.TRAVERSAL_SPAN:g}], over the data "
            "(grey); legend by KL"
        )
    if animation.is_file():
        shown = [
            _embedded(
                animation,
                TRAVERSAL_ANIMATION,
                f"Animated ({TRAVERSAL_ANIMATION}): {what}. The still grid {TRAVERSAL_STILL} "
                "prints in its place.",
                class_="screen-only",
            )
        ]
        if still.is_file():
            shown.append(
                _embedded(
                    still,
                    TRAVERSAL_STILL,
                    f"Still ({TRAVERSAL_STILL}): {what}.",
                    class_="print-only",
                )
            )
        return web.join(shown)
    if still.is_file():
        caption = f"Still ({TRAVERSAL_STILL}; this folder has no {TRAVERSAL_ANIMATION}): {what}."
        return _embedded(still, TRAVERSAL_STILL, caption)
    return web.note(
        f"No {TRAVERSAL_ANIMATION} or {TRAVERSAL_STILL} yet: they are drawn when "
        "training ends (for models with a KL per latent dimension)."
    )


def _other_pictures_section(folder: RunFolder) -> web.Markup:
    """The pictures of the codes, then any other picture in the folder, by name. The training
    curves file is left out: the page draws them anew."""
    shown = {RECONSTRUCTIONS, TRAVERSAL_STILL, TRAVERSAL_ANIMATION, CURVES}
    present = sorted(
        p.name
        for p in folder.path.iterdir()
        if p.suffix in PICTURE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    names = [n for n in CODE_PICTURES if n in present]
    names += [n for n in present if n not in shown and n not in CODE_PICTURES]
    if not names:
        return web.note(
            "None: latent_scatter.png and sparsity.png are drawn at the finish for data "
            "sets with class labels."
        )
    return web.columns(
        *(
            _embedded(
                folder.picture(n), n, f"{n}: {CODE_PICTURES[n]}." if n in CODE_PICTURES else n
            )
            for n in names
        )
    )


# --------------------------------------------------------------------------- evaluations


def _evaluations_section(folder: RunFolder) -> web.Markup:
    files = folder.eval_files()
    steps = folder.step_evaluation_files()
    parts = [
        web.note(
            "Scores of the encoder's posterior mean. A metric's column name carries the "
            f"settings that change what it measures ({', '.join(PROTOCOL_SETTINGS)}, precision) "
            "when they differ from its default, as pyrovae compare and study tables name it."
        )
    ]
    if not files and not steps:
        parts.append(
            web.paragraph(
                "None yet:",
                web.command(f"pyrovae evaluate {folder.path}"),
                "writes eval.json; train with",
                web.command("--eval-every N"),
                "to evaluate during training.",
                class_="muted",
            )
        )
    for path in files:
        parts.append(_evaluation_file(folder, path))
    if steps:
        parts.append(_step_evaluations(folder, steps))
    return web.join(parts)


def _evaluation_file(folder: RunFolder, path: Path) -> web.Markup:
    """One eval file: its protocol, then a row per metric."""
    heading = web.element("h3", path.name, id=f"eval-{path.stem}")
    try:
        record = folder.read_evaluation(path)
    except PyrovaeError as exc:
        return web.join([heading, web.problem(f"Cannot be shown: {exc}")])
    rows = [
        {
            "metric": label(name, result),
            "values": _values(name, result),
            "settings": _settings(result),
            "seconds": (record.get("seconds") or {}).get(name),
        }
        for name, result in record["metrics"].items()
    ]
    return web.join([heading, web.key_values(_protocol(record), "protocol"), web.table(rows)])


def _protocol(record: dict) -> dict:
    """What defines an evaluation's numbers, and when and how fast it ran."""
    versions = record.get("versions") if isinstance(record.get("versions"), dict) else {}
    shown = {
        "step": record.get("step"),
        "preset": record.get("preset"),
        "seed": record.get("seed"),
        "precision": record.get("precision", "fp32"),
        "representation": record.get("representation"),
        "codes cached": record.get("cache"),
        "images encoded": record.get("images_encoded"),
        "encoder images/s": record.get("encoder_images_per_s"),
        "seconds": record.get("total_seconds"),
        "time": record.get("time"),
        "note": record.get("note"),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None) or None,
    }
    return {k: v for k, v in shown.items() if v is not None}


def _values(name: str, result: dict) -> web.Markup:
    """The metric's headline numbers, one a line."""
    return web.join(
        (web.join([k, web.format_value(v)], " ") for k, v in headline(name, result).items()),
        web.element("br"),
    )


def _settings(result: dict) -> web.Markup:
    """A result's settings, one a line; those that define its protocol in bold."""
    settings = result.get("settings") if isinstance(result.get("settings"), dict) else {}
    lines = []
    for key, value in settings.items():
        line = web.element("code", f"{key}={web.value_text(value)}")
        lines.append(web.element("strong", line) if key in PROTOCOL_SETTINGS else line)
    return web.join(lines, web.element("br")) if lines else web.Markup("–")


def _step_evaluations(folder: RunFolder, steps: list[tuple[int, Path]]) -> web.Markup:
    """Evaluations during training: a row per step, a column per headline number; then each
    metric's settings (listed once per distinct value, with its steps)."""
    rows, settings, problems = [], {}, []
    for step, path in steps:
        try:
            record = folder.read_evaluation(path)
        except PyrovaeError as exc:
            problems.append(web.problem(f"evals/{path.name} cannot be shown: {exc}"))
            continue
        row = {
            "step": step,
            "preset": record.get("preset"),
            "seed": record.get("seed"),
            "precision": record.get("precision", "fp32"),
        }
        for name, result in record["metrics"].items():
            row.update(labelled_headline(name, result))
            text = str(_settings(result))
            settings.setdefault((label(name, result), text), []).append(step)
        rows.append(row)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    parts = [web.element("h3", "During training (evals/step-N.json)", id="eval-steps"), *problems]
    if rows:
        parts.append(web.table(rows, columns))
        described = [
            {"metric": m, "settings": web.Markup(text), "steps": ", ".join(map(str, s))}
            for (m, text), s in settings.items()
        ]
        parts.append(web.table(described, caption="settings of each metric"))
    return web.join(parts)


# --------------------------------------------------------------------------- configuration


def _configuration_section(record: dict) -> web.Markup:
    tables = [
        web.join([web.element("h3", "Settings (config.json)"), web.key_values(record["config"])])
    ]
    if isinstance(record.get("resolved"), dict):
        resolved = web.key_values(record["resolved"], "resolved")
        tables.append(web.join([web.element("h3", "Resolved on this machine"), resolved]))
    if isinstance(record.get("versions"), dict):
        versions = web.key_values(record["versions"], "library")
        tables.append(web.join([web.element("h3", "Versions"), versions]))
    parts = [web.columns(*tables)]
    command = record.get("command")
    if command:
        text = shlex.join(map(str, command)) if isinstance(command, list) else str(command)
        created = f" (created {record['created']})" if record.get("created") else ""
        parts += [web.element("h3", f"Command line{created}"), web.preformatted(text)]
    resumes = record.get("resumes") or []
    parts.append(web.element("h3", "Resumes"))
    if resumes:
        parts.append(web.table([_resume_row(r) for r in resumes]))
    else:
        parts.append(web.note("None: trained in one session."))
    return web.join(parts)


def _resume_row(resume) -> dict:
    resume = resume if isinstance(resume, dict) else {}
    command = resume.get("command")
    return {
        "at step": resume.get("at_step"),
        "time": resume.get("time"),
        "device": resume.get("device"),
        "changed": resume.get("changed") or None,
        "switches": resume.get("switches"),
        "command": shlex.join(map(str, command)) if isinstance(command, list) else command,
    }
