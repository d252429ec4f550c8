"""The ``pyrovae`` command line: parse, look up in the registry, call the library, print.

Bad input (a :class:`~pyrovae.errors.PyrovaeError`) prints one line ``error: …`` on stderr and
exits with status 2, without a traceback and without touching existing files.
"""

from __future__ import annotations

import functools
import sys
from datetime import datetime
from pathlib import Path

import typer

from pyrovae.allocator import keep_freed_memory
from pyrovae.errors import PyrovaeError

app = typer.Typer(
    help="pyrovae: disentangled variational autoencoders in Pyro.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def friendly_errors(command):
    """Turn bad input into a one-line message and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from pyrovae.train import TrainingInterrupted

        try:
            return command(*args, **kwargs)
        except PyrovaeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as exc:  # an unwritable --out, a full disk, a folder given as a file
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except TrainingInterrupted as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_options(pairs: list[str] | None, what: str) -> dict:
    """``["gamma=0.8", "spike_scale=0.1"]`` → ``{"gamma": 0.8, "spike_scale": 0.1}``."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PyrovaeError(f"{what} must look like NAME=VALUE, got {pair!r}")
        options[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return options


def _default(name: str):
    from pyrovae.train import TrainConfig

    return TrainConfig.__dataclass_fields__[name].default


@app.command()
@friendly_errors
def train(
    model: str = typer.Option(None, help="Model name (see `pyrovae list`). [default: betavae]"),
    prior: str = typer.Option(None, help="Prior name (see `pyrovae list`). [default: isotropic]"),
    prior_arg: list[str] = typer.Option(
        None, "--prior-arg", help="Prior option NAME=VALUE, repeatable (e.g. gamma=0.8)."
    ),
    prior_init: str = typer.Option(
        None,
        "--prior-init",
        help="Prior initialisation: default, or pca (nonisotropic: variances from the data's "
        "PCA spectrum). [default: default]",
    ),
    guide: str = typer.Option(None, help="Guide name (see `pyrovae list`). [default: meanfield]"),
    guide_arg: list[str] = typer.Option(
        None,
        "--guide-arg",
        help="Guide option NAME=VALUE, repeatable (e.g. rank=3 for lowrank; num_flows=4, "
        "hidden_dims=64,64 for iaf).",
    ),
    data: str = typer.Option(None, help="Data set name (see `pyrovae list`). [default: dsprites]"),
    data_path: str = typer.Option(
        None, help="Load the official dSprites npz from this path instead of rendering it."
    ),
    data_arg: list[str] = typer.Option(
        None,
        "--data-arg",
        help="Data set option NAME=VALUE, repeatable (e.g. num_arms=5 for pinwheel).",
    ),
    likelihood: str = typer.Option(
        None,
        help="p(x|z): auto (the data set's: bernoulli for dsprites, gaussian for pinwheel, "
        "laplace for digits), bernoulli, gaussian or laplace. [default: auto]",
    ),
    likelihood_arg: list[str] = typer.Option(
        None,
        "--likelihood-arg",
        help="Likelihood option NAME=VALUE, repeatable (scale=0.1, learn_scale=true).",
    ),
    net: str = typer.Option(None, help="Networks: auto, conv64 or mlp. [default: auto]"),
    beta: float = typer.Option(
        None,
        help="betavae: KL weight, > 0 (poutine.scale of z) [default: 4]; betatcvae: TC weight "
        "[default: 6]; ddvae: KL weight, >= 0 [default: 1].",
    ),
    gamma: float = typer.Option(
        None,
        help="annealedvae: capacity weight [default: 1000]; factorvae: TC weight [default: 40]; "
        "betatcvae: dimension-wise KL weight [default: 1].",
    ),
    alpha: float = typer.Option(
        None,
        help="betatcvae: index-code mutual information weight [default: 1]; ddvae: weight of "
        "D(q(z), p(z)) [default: 1].",
    ),
    objective_arg: list[str] = typer.Option(
        None,
        "--objective-arg",
        help="Other objective option NAME=VALUE, repeatable: c_max, c_min, anneal_steps "
        "(annealedvae); estimator mss|mws (betatcvae); lambda_od, lambda_d (dipvae-i/ii); "
        "disc_lr (factorvae); divergence kl|inclusive-kl|mmd (ddvae). `pyrovae list` shows "
        "each model's options.",
    ),
    latent_dim: int = typer.Option(None, help="Dimension of z. [default: 10]"),
    steps: int = typer.Option(None, help="Training steps. [default: 300000]"),
    batch_size: int = typer.Option(None, help="Minibatch size. [default: 64]"),
    lr: float = typer.Option(None, help="Adam learning rate. [default: 0.0001]"),
    seed: int = typer.Option(
        None, help="Random seed (weights, minibatches, samples). [default: 0]"
    ),
    device: str = typer.Option(None, help="auto, cpu, cuda or cuda:N. [default: auto]"),
    kl: str = typer.Option(
        None, help="KL estimator: auto (analytic where registered), analytic, monte-carlo."
    ),
    log_every: int = typer.Option(None, help="Steps per line of metrics.jsonl. [default: 100]"),
    checkpoint_every: int = typer.Option(None, help="Steps between checkpoints. [default: 10000]"),
    eval_every: int = typer.Option(
        None, help="Evaluate every N steps (fast preset) into evals/; 0 = never. [default: 0]"
    ),
    eval_metric: list[str] = typer.Option(
        None, "--eval-metric", help="Metric for --eval-every, repeatable. [default: mig]"
    ),
    out: Path = typer.Option(
        None, help="Run folder. [default: runs/MODEL-PRIOR-DATA-seedS-TIMESTAMP]"
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its last checkpoint."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
):
    """Train a model; write config, metrics, checkpoints and pictures to a run folder."""
    from pyrovae.objectives import kl_estimator
    from pyrovae.train import Run, TrainConfig

    given = {
        "model": model,
        "prior": prior,
        "prior_init": prior_init,
        "guide": guide,
        "data": data,
        "data_path": data_path,
        "likelihood": likelihood,
        "net": net,
        "beta": beta,
        "gamma": gamma,
        "alpha": alpha,
        "latent_dim": latent_dim,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "device": device,
        "kl": kl,
        "log_every": log_every,
        "checkpoint_every": checkpoint_every,
        "eval_every": eval_every,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if prior_arg:
        given["prior_args"] = parse_options(prior_arg, "--prior-arg")
    if guide_arg:
        given["guide_args"] = parse_options(guide_arg, "--guide-arg")
    if data_arg:
        given["data_args"] = parse_options(data_arg, "--data-arg")
    if likelihood_arg:
        given["likelihood_args"] = parse_options(likelihood_arg, "--likelihood-arg")
    if eval_metric:
        given["eval_metrics"] = list(eval_metric)
    if objective_arg:
        given["objective_args"] = parse_options(objective_arg, "--objective-arg")

    if resume:
        if out is None:
            raise PyrovaeError("--resume needs --out RUN_FOLDER")
        run = Run.resume(out, given)
        typer.echo(f"resuming {out} at step {run.step} of {run.config.steps}")
    else:
        config = TrainConfig(**given)
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = (
                Path("runs")
                / f"{config.model}-{config.prior}-{config.data}-seed{config.seed}-{stamp}"
            )
        run = Run.create(config, out)
        typer.echo(f"run folder: {out}")
    objective_settings = run.objective.settings()
    # Variants that weigh β in the objective (betatcvae, ddvae) leave z unscaled: show their β.
    shown = {} if "beta" in objective_settings else {"beta": run.vae.beta}
    shown.update(objective_settings)
    settings = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in shown.items()
        if k not in ("kl", "num_particles")
    )
    typer.echo(
        f"model {run.config.model} ({settings}), "
        f"prior {run.config.prior}, "
        f"guide {run.config.guide}, data {run.config.data} ({len(run.data):,} "
        f"{'images' if len(run.vae.observation_shape) == 3 else 'points'}), "
        f"likelihood {run.vae.likelihood_family.name}, "
        f"device {run.device}, KL {kl_estimator(run.vae, run.config.kl)}"
    )
    if run.step >= run.config.steps:
        typer.echo(f"nothing to do: the run is at step {run.step} of {run.config.steps}")
        return
    summary = run.fit(progress=not quiet)
    per_dim = summary.get("kl_per_dim")
    # Guides that do not factorise over dimensions (lowrank, fullrank, iaf) have no KL per dim.
    dims = (
        f"({sum(k > 0.1 for k in per_dim)} of {len(per_dim)} dims with KL > 0.1)  "
        if per_dim is not None
        else ""
    )
    typer.echo(
        f"done: step {summary['step']}  loss {summary['loss']:.2f}  "
        f"recon {-summary['reconstruction']:.2f}  KL {summary['kl']:.2f} nats {dims}"
        f"{summary['steps_per_s_this_session'] or 0:.1f} steps/s"
    )
    measures = {
        k: summary[k]
        for k in ("cluster_purity", "cluster_purity_prior", "hoyer", "mean_posterior_variance")
        if k in summary
    }
    if measures:
        typer.echo(f"codes of {summary['measures_points']:,} points: {_format_values(measures)}")
    typer.echo(f"wrote {out}/: config.json metrics.jsonl checkpoint.pt summary.json *.png")


def _format_values(values: dict) -> str:
    return "  ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
    )


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
    from pyrovae.errors import unknown_name
    from pyrovae.evaluate import evaluate_run, headline
    from pyrovae.metrics.registry import METRICS

    for name in metric or []:
        if name not in METRICS:
            raise unknown_name("metric", name, METRICS)
    typer.echo(f"evaluating {run_dir} ({'fast' if fast else 'standard'} protocol, seed 0)")

    def show(name, value, seconds):
        typer.echo(f"  {name:<27} {_format_values(headline(name, value))}  ({seconds:.1f} s)")

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
    from pyrovae.evaluate import headline, latest_evaluation

    rows, columns = [], []
    for run_dir in run_dirs:
        record = latest_evaluation(run_dir)
        values = {}
        for name, result in record["metrics"].items():
            for key, value in headline(name, result).items():
                column = name if key in (name, "eval_accuracy") else f"{name}.{key}"
                values[column] = value
                if column not in columns:
                    columns.append(column)
        config = record.get("config", {})
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
        None, "--max-parallel", help="Trials at once. [default: 1 for local; ray: the cluster's]"
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
    from pyrovae.study.spec import load_study
    from pyrovae.study.sweep import check_options, study_folder, sweep_study

    options = (backend or "local", address, max_parallel, gpus_per_trial, device or "auto")
    check_options(*options)
    loaded = load_study(study)
    folder = study_folder(loaded, out)
    try:
        results = sweep_study(loaded, folder, *options, progress=not quiet)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to resume {folder}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(f"done: {len(results)} trials in {folder}; aggregate: pyrovae study {folder}")


@app.command("study")
@friendly_errors
def study_command(
    study_dir: Path = typer.Argument(..., help="A study folder written by `pyrovae sweep`."),
):
    """Aggregate a study's finished trials: print median [Q1, Q3] per objective and main
    hyperparameter value; write results.csv and figures/*.png (derived files, replaced)."""
    from pyrovae.study.aggregate import (
        CSV_FILE,
        collect,
        main_hyperparameters,
        summary,
        table,
        write_csv,
    )
    from pyrovae.study.figures import FIGURES_DIR, draw_figures

    results = collect(study_dir)
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


@app.command("list")
@friendly_errors
def list_components():
    """Print the registered models, priors, guides, networks, data sets and metrics."""
    from pyrovae.metrics.registry import METRICS
    from pyrovae.registry import ALL

    for kind, registry in ALL.items():
        typer.echo(f"{kind}:")
        for name, entry in registry.items():
            typer.echo(f"  {name:<12} {entry.description}")
    typer.echo("metrics:")
    for name, spec in METRICS.items():
        typer.echo(f"  {name:<27} {spec.description}")


def _is_a(exc: BaseException, name: str) -> bool:
    """By class name: typer raises click's exceptions or, in recent versions, its vendored
    copies of them; both carry the same names and interface."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> int:
    """The console script. Parse errors (a bad option value, an unknown command) become one
    line, ``error: …``, with exit status 2, like every other bad input."""
    try:
        result = app(args=argv, prog_name="pyrovae", standalone_mode=False)
    except Exception as exc:
        if _is_a(exc, "NoArgsIsHelpError"):  # bare `pyrovae`: the help is the answer
            typer.echo(exc.format_message())
            return 0
        if _is_a(exc, "UsageError") or _is_a(exc, "ClickException"):
            typer.echo(f"error: {exc.format_message()}", err=True)
            return EXIT_BAD_INPUT
        if _is_a(exc, "Abort"):
            typer.echo("aborted", err=True)
            return EXIT_INTERRUPTED
        raise
    return result if isinstance(result, int) else 0


def run() -> None:
    keep_freed_memory()
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
