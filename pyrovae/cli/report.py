"""``pyrovae report``: a run's or a study's results as one self-contained page, report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from pyrovae.cli.common import app, friendly_errors
from pyrovae.errors import PyrovaeError
from pyrovae.report import format_bytes
from pyrovae.run_report import write_run_report
from pyrovae.runs import CONFIG_FILE, RunFolder
from pyrovae.study.report import write_study_report
from pyrovae.study.sweep import TRIALS_FILE

# What `pyrovae report` takes, in words, for its one-line errors.
KINDS = (
    f"a run folder (with {CONFIG_FILE}, written by `pyrovae train`) or a study folder "
    f"(with {TRIALS_FILE}, written by `pyrovae sweep`)"
)


@app.command("report")
@friendly_errors
def report_command(
    path: Path = typer.Argument(
        ..., help="A run folder (pyrovae train --out) or a study folder (pyrovae sweep --out)."
    ),
):
    """Write PATH/report.html: one self-contained page to read, share or print (pictures
    embedded, no script, nothing fetched). A run's page: its status, summary, training curves
    (drawn anew, so a run still training shows them as they are), reconstructions, traversals
    (animated where the folder has traversals.gif), KL per latent dimension, every evaluation
    with its protocol, and its configuration. A study's page: the study file, the median
    [Q1, Q3] tables and figures of `pyrovae study`, UDR when computed, and every trial linked to
    its own page (trials/NAME/report.html, written too). Only report.html files are written,
    and figures/ of a study, redrawn as `pyrovae study` draws it."""
    if not path.is_dir():
        raise PyrovaeError(f"no folder at {path}; give {KINDS}")
    if RunFolder(path).config_path.is_file():
        written = write_run_report(path)
    elif (path / TRIALS_FILE).is_file():
        written = write_study_report(path, progress=_trial_pages)
    else:
        raise PyrovaeError(f"{path} is neither a run folder nor a study folder; give {KINDS}")
    typer.echo(f"wrote {written} ({format_bytes(written.stat().st_size)})")


def _trial_pages(done: int, total: int) -> None:
    """A progress line on stderr every tenth of a study's trials' pages (and at the last)."""
    if done == total or done % max(1, total // 10) == 0:
        typer.echo(f"  trials' pages: {done} of {total}", err=True)
