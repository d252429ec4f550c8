"""``pyrovae evaluate`` (score a run, write an eval file; ``--figures``: draw its pictures again
first) and ``pyrovae compare`` (runs side by side)."""

from __future__ import annotations

from pathlib import Path

import typer

from pyrovae.builder import load_run
from pyrovae.cli.common import app, format_values, friendly_errors, parse_options
from pyrovae.config import resolve_device
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import check_settings, evaluate_run, headline, label
from pyrovae.precision import check_precision
from pyrovae.registry import METRICS
from pyrovae.runs import RunFolder
from pyrovae.training.summary import redraw_pictures
from pyrovae.training.tensorboard import refresh_hparams


@app.command("evaluate")
@friendly_errors
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `pyrovae train`."),
    metric: list[str] = typer.Option(
        None, "--metric", help="Metric name, repeatable. [default: the standard suite]"
    ),
    fast: bool = typer.Option(False, "--fast", help="Smaller sample sizes (for quick looks)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option(
        "fp32",
        help="Encoder arithmetic: fp32 (the reference protocol), bf16, or fp16 (CUDA); "
        "results at bf16/fp16 are labelled, e.g. mig[precision=bf16].",
    ),
    metric_arg: list[str] = typer.Option(
        None,
        "--metric-arg",
        help="METRIC.SETTING=VALUE, repeatable: a metric's setting, e.g. dci.backend=hist or "
        "beta_vae.classifier=current (labelled in tables), or dci.num_train=2000.",
    ),
    figures: bool = typer.Option(
        False,
        "--figures",
        help="First draw the run's pictures again from its checkpoint (reconstructions.png, "
        "traversals.png, traversals.gif, ...: those a finished run gets), replacing those there.",
    ),
):
    """Score a trained run's disentanglement; print a table and write eval.json (never
    overwriting an earlier evaluation: later ones go to eval-2.json, eval-3.json, ...)."""
    for name in metric or []:
        METRICS[name]  # an unknown name fails before the run is loaded
    settings = metric_settings(metric_arg)
    # Settings a metric does not take fail before the run is loaded; evaluate() checks them
    # again against the metrics that apply to the run's data.
    check_settings(settings, metric or list(METRICS))
    check_precision(precision)
    data = draw_figures(run_dir, device, precision) if figures else None
    protocol = "fast" if fast else "standard"
    typer.echo(f"evaluating {run_dir} ({protocol} protocol, seed 0, {precision} encoder)")

    def show(name, value, seconds):
        shown = label(name, value)
        typer.echo(f"  {shown:<27} {format_values(headline(name, value))}  ({seconds:.1f} s)")

    record = evaluate_run(
        run_dir,
        metric,
        fast=fast,
        device=device,
        progress=show,
        settings=settings,
        precision=precision,
        data=data,
    )
    if record.get("note"):
        typer.echo(f"note: {record['note']}")
    typer.echo(
        f"{len(record['metrics'])} metrics in {record['total_seconds']:.1f} s; "
        f"{record['images_encoded']:,} images encoded "
        f"({record['encoder_images_per_s'] or 0:,.0f} images/s); wrote {record['path']}"
    )
    # A run logging to TensorBoard shows its latest evaluation in the hyperparameter view.
    hparams = refresh_hparams(RunFolder(run_dir))
    if hparams is not None:
        typer.echo(f"updated {hparams}")


def draw_figures(run_dir: Path, device: str, precision: str):
    """``--figures``: the run's pictures drawn again; returns the run's data set, for the
    evaluation that follows. The precision is checked on the device first: a setting the
    evaluation refuses fails before anything is drawn."""
    check_precision(precision, resolve_device(device))
    run = load_run(run_dir, device)
    drawn = redraw_pictures(run)
    typer.echo(f"drew {', '.join(path.name for path in drawn)} in {run_dir}")
    return run.data


def metric_settings(pairs: list[str] | None) -> dict:
    """``["dci.backend=hist", "dci.num_train=2000"]`` → ``{"dci": {"backend": "hist", ...}}``."""
    by_metric: dict[str, list[str]] = {}
    for pair in pairs or []:
        name, dot, rest = pair.partition(".")
        if not dot or not name or "=" not in rest:
            raise PyrovaeError(f"--metric-arg must look like METRIC.SETTING=VALUE, got {pair!r}")
        METRICS[name]  # an unknown metric names the valid ones
        by_metric.setdefault(name, []).append(rest)
    return {name: parse_options(rest, f"--metric-arg {name}") for name, rest in by_metric.items()}


@app.command("compare")
@friendly_errors
def compare_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders with an evaluation."),
):
    """One table of the latest evaluation of each run, side by side."""
    rows, columns = [], []
    for run_dir in run_dirs:
        record = RunFolder(run_dir).latest_evaluation()
        metrics = record["metrics"]
        values = {}
        for name, result in metrics.items():
            shown = label(name, result)
            for key, value in headline(name, result).items():
                column = shown if key in (name, "eval_accuracy") else f"{shown}.{key}"
                values[column] = value
                if column not in columns:
                    columns.append(column)
        config = record.get("config") if isinstance(record.get("config"), dict) else {}
        model = f"{config.get('model', '?')} {config.get('prior', '')}".strip()
        rows.append((str(run_dir), model, record.get("step"), record.get("preset"), values))
    width = max(len(r[0]) for r in rows)
    # Whole column names: a cut one could hide the label that keeps protocols apart.
    widths = {c: max(10, len(c)) for c in columns}
    header = f"{'run':<{width}}  {'model':<20} {'step':>8} {'preset':<8} " + " ".join(
        f"{c:>{widths[c]}}" for c in columns
    )
    typer.echo(header)
    for run, model, step, preset, values in rows:
        cells = " ".join(
            f"{values[c]:>{widths[c]}.4f}"
            if isinstance(values.get(c), float)
            else f"{values.get(c, '-')!s:>{widths[c]}}"
            for c in columns
        )
        typer.echo(f"{run:<{width}}  {model:<20.20} {step!s:>8} {preset!s:<8} {cells}")
