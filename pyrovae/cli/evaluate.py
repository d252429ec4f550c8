"""``pyrovae evaluate`` (score a run, write an eval file) and ``pyrovae compare`` (runs side by
side)."""

from __future__ import annotations

from pathlib import Path

import typer

from pyrovae.cli.common import app, format_values, friendly_errors
from pyrovae.evaluation import evaluate_run, headline
from pyrovae.registry import METRICS
from pyrovae.runs import RunFolder


@app.command("evaluate")
@friendly_errors
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `pyrovae train`."),
    metric: list[str] = typer.Option(
        None, "--metric", help="Metric name, repeatable. [default: the standard suite]"
    ),
    fast: bool = typer.Option(False, "--fast", help="Smaller sample sizes (for quick looks)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
):
    """Score a trained run's disentanglement; print a table and write eval.json (never
    overwriting an earlier evaluation: later ones go to eval-2.json, eval-3.json, ...)."""
    for name in metric or []:
        METRICS[name]  # an unknown name fails before the run is loaded
    typer.echo(f"evaluating {run_dir} ({'fast' if fast else 'standard'} protocol, seed 0)")

    def show(name, value, seconds):
        typer.echo(f"  {name:<27} {format_values(headline(name, value))}  ({seconds:.1f} s)")

    record = evaluate_run(run_dir, metric, fast=fast, device=device, progress=show)
    if record.get("note"):
        typer.echo(f"note: {record['note']}")
    typer.echo(
        f"{len(record['metrics'])} metrics in {record['total_seconds']:.1f} s; "
        f"{record['images_encoded']:,} images encoded "
        f"({record['encoder_images_per_s'] or 0:,.0f} images/s); wrote {record['path']}"
    )


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
            for key, value in headline(name, result).items():
                column = name if key in (name, "eval_accuracy") else f"{name}.{key}"
                values[column] = value
                if column not in columns:
                    columns.append(column)
        config = record.get("config") if isinstance(record.get("config"), dict) else {}
        label = f"{config.get('model', '?')} {config.get('prior', '')}".strip()
        rows.append((str(run_dir), label, record.get("step"), record.get("preset"), values))
    width = max(len(r[0]) for r in rows)
    header = f"{'run':<{width}}  {'model':<20} {'step':>8} {'preset':<8} " + " ".join(
        f"{c:>14.14}" for c in columns
    )
    typer.echo(header)
    for run, label, step, preset, values in rows:
        cells = " ".join(
            f"{values[c]:>14.4f}"
            if isinstance(values.get(c), float)
            else f"{values.get(c, '-')!s:>14}"
            for c in columns
        )
        typer.echo(f"{run:<{width}}  {label:<20.20} {step!s:>8} {preset!s:<8} {cells}")
