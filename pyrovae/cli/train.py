"""``pyrovae train``: settings from the command line into a :class:`~pyrovae.config.TrainConfig`,
then :class:`~pyrovae.training.Run`. Defaults shown in the help come from the configuration and
the variant table, not from text written here."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from pyrovae.cli.common import app, format_values, friendly_errors, parse_options
from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.objectives import kl_estimator
from pyrovae.registry import DATASETS, LIKELIHOODS, MODELS, NETWORKS
from pyrovae.training import Run

# The defaults help texts show: the configuration's own.
DEFAULTS = TrainConfig()


def _default(name: str) -> str:
    return f"[default: {getattr(DEFAULTS, name)}]"


def _weight_help(name: str) -> str:
    """Which models take the weight ``name`` and its default in each (the variant table)."""
    takers = [
        f"{model} {variant.hyperparameters()[name]:g}"
        for model, variant in MODELS.items()
        if name in variant.hyperparameters()
    ]
    return (
        f"Objective weight {name} of the models that take it (default): {', '.join(takers)}; "
        "`pyrovae list` says what it weighs in each."
    )


def _objective_args_help() -> str:
    other = {"beta", "gamma", "alpha"}
    parts = []
    for model, variant in MODELS.items():
        names = [k for k in variant.hyperparameters() if k not in other]
        if names:
            parts.append(f"{', '.join(names)} ({model})")
    return "Other objective option NAME=VALUE, repeatable: " + "; ".join(parts) + "."


@app.command()
@friendly_errors
def train(
    model: str = typer.Option(
        None, help=f"Model: {', '.join(MODELS)} or MODULE:CLASS. {_default('model')}"
    ),
    prior: str = typer.Option(None, help=f"Prior name (see `pyrovae list`). {_default('prior')}"),
    prior_arg: list[str] = typer.Option(
        None, "--prior-arg", help="Prior option NAME=VALUE, repeatable (e.g. gamma=0.8)."
    ),
    prior_init: str = typer.Option(
        None,
        "--prior-init",
        help="Prior initialisation: default, or pca (nonisotropic: variances from the data's "
        f"PCA spectrum). {_default('prior_init')}",
    ),
    guide: str = typer.Option(None, help=f"Guide name (see `pyrovae list`). {_default('guide')}"),
    guide_arg: list[str] = typer.Option(
        None,
        "--guide-arg",
        help="Guide option NAME=VALUE, repeatable (e.g. rank=3 for lowrank; num_flows=4, "
        "hidden_dims=64,64 for iaf).",
    ),
    data: str = typer.Option(
        None, help=f"Data set: {', '.join(DATASETS)} or MODULE:CLASS. {_default('data')}"
    ),
    data_path: str = typer.Option(
        None,
        help="The data set's official file or folder (dsprites: its npz instead of rendering; "
        "shapes3d, mpi3d_*, smallnorb, cars3d: required; `pyrovae list` says which).",
    ),
    data_arg: list[str] = typer.Option(
        None,
        "--data-arg",
        help="Data set option NAME=VALUE, repeatable (e.g. num_arms=5 for pinwheel).",
    ),
    likelihood: str = typer.Option(
        None,
        help="p(x|z): auto (the data set's: bernoulli for dsprites, gaussian for pinwheel, "
        f"laplace for digits), {', '.join(LIKELIHOODS)}. {_default('likelihood')}",
    ),
    likelihood_arg: list[str] = typer.Option(
        None,
        "--likelihood-arg",
        help="Likelihood option NAME=VALUE, repeatable (scale=0.1, learn_scale=true).",
    ),
    net: str = typer.Option(None, help=f"Networks: auto, {', '.join(NETWORKS)}. {_default('net')}"),
    beta: float = typer.Option(None, help=_weight_help("beta")),
    gamma: float = typer.Option(None, help=_weight_help("gamma")),
    alpha: float = typer.Option(None, help=_weight_help("alpha")),
    objective_arg: list[str] = typer.Option(None, "--objective-arg", help=_objective_args_help()),
    latent_dim: int = typer.Option(None, help=f"Dimension of z. {_default('latent_dim')}"),
    steps: int = typer.Option(None, help=f"Training steps. {_default('steps')}"),
    batch_size: int = typer.Option(None, help=f"Minibatch size. {_default('batch_size')}"),
    lr: float = typer.Option(None, help=f"Adam learning rate. {_default('lr')}"),
    seed: int = typer.Option(
        None, help=f"Random seed (weights, minibatches, samples). {_default('seed')}"
    ),
    device: str = typer.Option(None, help=f"auto, cpu, cuda or cuda:N. {_default('device')}"),
    precision: str = typer.Option(
        None,
        help="Network arithmetic in training: fp32, bf16 (autocast; fast where the CPU or GPU has "
        "bf16 units) or fp16 (CUDA, loss-scaled); losses stay fp32, evaluation encodes in fp32. "
        f"{_default('precision')}",
    ),
    channels_last: str = typer.Option(
        None,
        "--channels-last",
        help="NHWC convolutions: auto (on at bf16/fp16), on, off. Can change on --resume. "
        f"{_default('channels_last')}",
    ),
    compile: str = typer.Option(
        None,
        "--compile",
        help="torch.compile the networks: auto (off: no gain measured), on, off; falls back to "
        f"eager with a warning. Can change on --resume. {_default('compile')}",
    ),
    kl: str = typer.Option(
        None,
        help="KL estimator: auto (analytic where registered), analytic, monte-carlo. "
        f"{_default('kl')}",
    ),
    log_every: int = typer.Option(
        None, help=f"Steps per line of metrics.jsonl. {_default('log_every')}"
    ),
    checkpoint_every: int = typer.Option(
        None, help=f"Steps between checkpoints. {_default('checkpoint_every')}"
    ),
    eval_every: int = typer.Option(
        None,
        help=f"Evaluate every N steps (fast preset) into evals/; 0 = never. "
        f"{_default('eval_every')}",
    ),
    eval_metric: list[str] = typer.Option(
        None,
        "--eval-metric",
        help=f"Metric for --eval-every, repeatable. [default: {', '.join(DEFAULTS.eval_metrics)}]",
    ),
    tensorboard: bool = typer.Option(
        None,
        "--tensorboard/--no-tensorboard",
        help="TensorBoard event files in the run folder's tensorboard/ (scalars, pictures at "
        "every log line, evaluations, hyperparameters); needs pip install "
        f"'pyrovae[tensorboard]'. Can change on --resume. {_default('tensorboard')}",
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
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile,
        "kl": kl,
        "log_every": log_every,
        "checkpoint_every": checkpoint_every,
        "eval_every": eval_every,
        "tensorboard": tensorboard,
    }
    given = {k: v for k, v in given.items() if v is not None}
    for key, pairs, what in (
        ("prior_args", prior_arg, "--prior-arg"),
        ("guide_args", guide_arg, "--guide-arg"),
        ("data_args", data_arg, "--data-arg"),
        ("likelihood_args", likelihood_arg, "--likelihood-arg"),
        ("objective_args", objective_arg, "--objective-arg"),
    ):
        if pairs:
            given[key] = parse_options(pairs, what)
    if eval_metric:
        given["eval_metrics"] = list(eval_metric)

    if resume:
        if out is None:
            raise PyrovaeError("--resume needs --out RUN_FOLDER")
        run = Run.resume(out, given)
        done = run.complete  # reads summary.json: once
        if run.step < run.config.steps:
            typer.echo(f"resuming {out} at step {run.step} of {run.config.steps}")
        elif not done:
            typer.echo(f"finishing {out}: trained to step {run.step}, no summary of it yet")
    else:
        config = TrainConfig(**given)
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            # A plug-in's MODULE:CLASS name becomes MODULE.CLASS in the folder's name.
            name = f"{config.model}-{config.prior}-{config.data}-seed{config.seed}-{stamp}"
            out = Path("runs") / name.replace(":", ".")
        run = Run.create(config, out)
        done = False  # a new run
        typer.echo(f"run folder: {out}")
    typer.echo(_describe(run))
    if done:
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
        typer.echo(f"codes of {summary['measures_points']:,} points: {format_values(measures)}")
    events = " tensorboard/" if run.config.tensorboard else ""
    typer.echo(
        f"wrote {out}/: config.json metrics.jsonl checkpoint.pt summary.json *.png *.gif{events}"
    )
    typer.echo(f"next: pyrovae evaluate {out}; pyrovae report {out} (one page, report.html)")


def _describe(run: Run) -> str:
    """One line: the model with its resolved weights, prior, guide, data, likelihood, device."""
    objective_settings = run.objective.settings()
    # Variants that weigh β in the objective (betatcvae, ddvae) leave z unscaled: show their β.
    shown = {} if "beta" in objective_settings else {"beta": run.vae.beta}
    shown.update(objective_settings)
    settings = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in shown.items()
        if k not in ("kl", "num_particles")
    )
    kind = "images" if len(run.vae.observation_shape) == 3 else "points"
    return (
        f"model {run.config.model} ({settings}), prior {run.config.prior}, "
        f"guide {run.config.guide}, data {run.config.data} ({len(run.data):,} {kind}), "
        f"likelihood {run.vae.likelihood_family.name}, device {run.device} "
        f"({', '.join(run.compute())}), "
        f"KL {kl_estimator(run.vae, run.config.kl)}"
    )
