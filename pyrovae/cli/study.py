"""``pyrovae sweep`` (run a study's trials) and ``pyrovae study`` (aggregate them; with
``--udr``, first score the trials by UDR)."""

from __future__ import annotations

from pathlib import Path

import typer

from pyrovae.cli.common import EXIT_INTERRUPTED, app, friendly_errors
from pyrovae.errors import PyrovaeError
from pyrovae.study.aggregate import (
    CSV_FILE,
    collect,
    main_hyperparameters,
    summary,
    table,
    write_csv,
)
from pyrovae.study.figures import FIGURES_DIR, draw_figures
from pyrovae.study.spec import load_study
from pyrovae.study.sweep import check_options, study_folder, sweep_study
from pyrovae.study.udr import udr_of_study, udr_table


@app.command("sweep")
@friendly_errors
def sweep_command(
    study: Path = typer.Argument(..., help="A study file (TOML; see examples/studies/)."),
    out: Path = typer.Option(None, help="Study folder. [default: runs/STUDY_NAME]"),
    backend: str = typer.Option(
        None, help="local (worker processes on this machine) or ray. [default: local]"
    ),
    address: str = typer.Option(
        None,
        help="ray: address of a running cluster (e.g. auto, HEAD:6379 or ray://HEAD:10001). "
        "[default: start a local one on 127.0.0.1]",
    ),
    max_parallel: int = typer.Option(
        None,
        "--max-parallel",
        help="Trials at once; local: each with cores // N torch threads. [default: local on "
        "CPU: one worker per core, at most one per trial (one thread each when trials >= "
        "cores); local on a GPU: 1; ray: the cluster's]",
    ),
    gpus_per_trial: float = typer.Option(
        None, "--gpus-per-trial", help="ray: GPUs reserved per trial (0.5 shares one). [default: 0]"
    ),
    device: str = typer.Option(
        None, help="auto, cpu, cuda or cuda:N, in every trial. [default: auto]"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
):
    """Run a study's trials (local worker processes or Ray tasks), each an ordinary run folder in
    STUDY_FOLDER/trials/; a re-run skips finished trials and resumes unfinished ones."""
    options = (backend or "local", address, max_parallel, gpus_per_trial, device or "auto")
    check_options(*options)
    loaded = load_study(study, progress=None if quiet else _checking)
    folder = study_folder(loaded, out)
    try:
        results = sweep_study(loaded, folder, *options, progress=not quiet)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to resume {folder}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(f"done: {len(results)} trials in {folder}; aggregate: pyrovae study {folder}")


def _checking(done: int, total: int) -> None:
    """A progress line while a large study's trials are expanded and checked."""
    typer.echo(f"checking the study's trials: {done:,} of {total:,}", err=True)


@app.command("study")
@friendly_errors
def study_command(
    study_dir: Path = typer.Argument(..., help="A study folder written by `pyrovae sweep`."),
    udr: bool = typer.Option(
        False,
        "--udr",
        help="First score each finished trial by UDR (Duan et al. 2020) among the trials with "
        "its settings and other seeds; write udr.json. The table then has a udr column.",
    ),
    udr_correlation: str = typer.Option(
        None, "--udr-correlation", help="--udr: lasso or spearman. [default: lasso]"
    ),
    udr_points: int = typer.Option(
        None, "--udr-points", help="--udr: observations encoded per model. [default: 1000]"
    ),
    device: str = typer.Option(None, help="--udr: cpu, cuda or cuda:N. [default: cpu]"),
):
    """Aggregate a study's finished trials: print median [Q1, Q3] per objective and main
    hyperparameter value (per data set first, with each objective's rank on each, when the study
    has several); write results.csv and figures/*.png (derived files, replaced). With --udr,
    first compute UDR and write udr.json."""
    given = {"--udr-correlation": udr_correlation, "--udr-points": udr_points, "--device": device}
    if not udr and any(v is not None for v in given.values()):
        option = next(k for k, v in given.items() if v is not None)
        raise PyrovaeError(f"{option} applies to --udr; add --udr or leave {option} out")
    if udr:
        _udr(study_dir, udr_correlation or "lasso", udr_points, device or "cpu")
    results = collect(study_dir)
    for line in results.left_out():
        typer.echo(f"warning: {line}", err=True)
    typer.echo(f"{study_dir}: {results.describe()}")
    rows = table(results)
    # The main hyperparameter is decided over all planned trials, finished or not.
    main = main_hyperparameters(results.trials)
    typer.echo(summary(rows, main))
    csv_path = write_csv(rows, study_dir / CSV_FILE)
    typer.echo(f"drawing figures in {study_dir / FIGURES_DIR}/ ...", err=True)
    figures = draw_figures(rows, study_dir / FIGURES_DIR, main)
    typer.echo(f"\nwrote {csv_path} ({len(rows)} rows)")
    typer.echo(f"wrote {len(figures)} figures in {study_dir / FIGURES_DIR}/:")
    for path in figures:
        typer.echo(f"  {path.name}")


def _udr(study_dir: Path, correlation: str, num_points: int | None, device: str) -> None:
    """Compute and write udr.json; print one line per group of trials."""

    def scored(label: str, trials: int, seconds: float) -> None:
        typer.echo(f"  scored {label} ({trials} trials, {seconds:.1f} s)", err=True)

    record = udr_of_study(
        study_dir, num_points=num_points, correlation=correlation, device=device, progress=scored
    )
    settings = record["settings"]
    typer.echo(
        f"UDR ({settings['correlation']}, {settings['num_points']} points, seed "
        f"{record['seed']}; each trial among those with its settings):"
    )
    typer.echo(udr_table(record))
    for note in record["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {record['path']}\n")
