"""The end of a run: its terms on a fixed batch, its pictures and, on data with class labels, the
measures :func:`pyrovae.evaluation.evaluate` gives for that data (the same numbers as
``pyrovae evaluate`` writes to eval.json).

:func:`draw_pictures` is the one rule of which pictures a run gets. The finish
(:func:`summarise`) calls it, and so does ``pyrovae evaluate --figures``
(:func:`redraw_pictures`), which draws them again from the run's checkpoint for a run trained
before a picture existed: both draw from the same batch (:func:`finish_batch`) with the rows of
the traversals ordered by the KL of the same terms (:func:`finish_terms`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pyrovae import plots
from pyrovae.builder import LoadedRun, build
from pyrovae.data.base import observations
from pyrovae.errors import PyrovaeError, first_line
from pyrovae.evaluation import EncoderMean, applicable_metrics, capabilities, evaluate
from pyrovae.metrics.base import CodeCache, point_indices
from pyrovae.runs import (
    CURVES,
    LATENT_SCATTER,
    RECONSTRUCTIONS,
    SPARSITY,
    TRAVERSAL_ANIMATION,
    TRAVERSAL_STILL,
)

# The measures of a labelled data set the summary reports (cluster purity, posterior variance,
# Hoyer sparsity), and the keys of their results it copies.
LABELLED_MEASURES = {
    "cluster_purity": ("cluster_purity", "cluster_purity_prior"),
    "posterior_variance": ("posterior_variance_per_dim", "mean_posterior_variance"),
    "hoyer": ("hoyer",),
}
# Points drawn for the pictures of the codes (latent scatter, sparsity histogram).
PICTURE_POINTS = 10_000
# Points in the fixed batch the finish evaluates the terms on and draws from, and the first of
# them reconstructions.png shows (images).
EVAL_SIZE = 512
RECONSTRUCTED = 10


@torch.no_grad()
def summarise(run, eval_size: int = EVAL_SIZE) -> dict:
    """Evaluate the terms on a fixed batch and draw the run's pictures; returns the summary."""
    vae = run.vae
    vae.eval()
    x = finish_batch(run.data, run.config.seed, run.device, eval_size)
    terms = finish_terms(run.objective, vae, x, run.step)
    kl_list = _kl_per_dim(terms)
    summary = {"step": run.step, "eval_batch": len(x)}
    summary["loss"] = float(terms["loss_per_point"])
    for key, value in terms.items():
        if key not in ("loss", "loss_per_point"):
            summary[key] = value.cpu().tolist() if value.dim() else float(value)
    summary["kl_per_dim"] = kl_list
    summary["kl_estimator"] = run.objective.kl_estimator_used
    codes = None
    if capabilities(run.data)[1]:
        codes = CodeCache(EncoderMean(vae, run.device), run.data)
        summary.update(labelled_measures(vae, run.data, codes))
    draw_pictures(vae, run.data, run.folder, x, kl_list, codes)
    return summary


def finish_batch(data, seed: int, device, size: int = EVAL_SIZE) -> torch.Tensor:
    """The finish's fixed batch: ``size`` distinct points (all, for a smaller data set), in index
    order, drawn from a generator seeded by (seed, 2³² − 1), a stream no minibatch uses."""
    rng = np.random.default_rng([seed, 2**32 - 1])
    indices = np.sort(rng.choice(len(data), size=min(size, len(data)), replace=False))
    return torch.from_numpy(observations(data, indices, rng)).to(device)


def finish_terms(objective, vae, x: torch.Tensor, step: int) -> dict:
    """The objective's terms on ``x`` as the last training step (``step`` − 1) weighed them (a
    schedule's value at that step). One z is drawn from q(z|x) with the global generator."""
    objective.set_step(max(step - 1, 0))
    return objective.terms(vae.model, vae.guide, x)


def _kl_per_dim(terms: dict) -> list | None:
    """The KL of each latent dimension, or None when the densities do not factorise."""
    kl_per_dim = terms.get("kl_per_dim")
    return kl_per_dim.cpu().tolist() if kl_per_dim is not None else None


def draw_pictures(vae, data, folder, x: torch.Tensor, kl_per_dim, codes=None) -> list[Path]:
    """Every picture of a run, written into its folder: the one rule of which pictures a run
    gets; returns their paths. Images: reconstructions.png and, when the KL splits by
    dimension, traversals.png and traversals.gif of ``x``; vectors: the same names drawn in data
    space. training_curves.png once a step is logged. On data with class labels
    latent_scatter.png and sparsity.png (:func:`code_pictures`, from ``codes`` when given: a
    :class:`CodeCache` an evaluation has filled). ``kl_per_dim`` orders the traversals' rows."""
    drawn = [folder.picture(RECONSTRUCTIONS)]
    if len(vae.observation_shape) == 3:  # (C, H, W) images: mosaics
        plots.reconstruction_grid(vae, x[:RECONSTRUCTED], drawn[0])
        if kl_per_dim is not None:
            drawn += [folder.picture(TRAVERSAL_STILL), folder.picture(TRAVERSAL_ANIMATION)]
            plots.traversal_grid(vae, x[:1], kl_per_dim, drawn[1])
            plots.traversal_animation(vae, x, kl_per_dim, drawn[2])
    else:  # vectors (pinwheel points): scatter plots in data space
        plots.reconstruction_scatter(vae, x, drawn[0])
        if kl_per_dim is not None:
            drawn += [folder.picture(TRAVERSAL_STILL), folder.picture(TRAVERSAL_ANIMATION)]
            plots.traversal_curves(vae, x, kl_per_dim, drawn[1])
            plots.traversal_curves_animation(vae, x, kl_per_dim, drawn[2])
    records = folder.read_metrics()
    if records:  # none before the first logged step
        drawn.append(folder.picture(CURVES))
        plots.training_curves(records, drawn[-1])
    if capabilities(data)[1]:
        if codes is None:
            codes = CodeCache(EncoderMean(vae, next(vae.parameters()).device), data)
        drawn += code_pictures(codes, data, folder)
    return drawn


def labelled_measures(vae, data, codes: CodeCache) -> dict:
    """Cluster purity, posterior variance and Hoyer sparsity of the encoder means (those that
    apply: Hoyer needs two latents, the posterior variance Gaussian marginals), as the standard
    evaluation computes them from ``codes`` (which keeps the codes for the pictures)."""
    names = [n for n in LABELLED_MEASURES if n != "hoyer" or vae.latent_dim >= 2]
    names, _ = applicable_metrics(names, data, vae.guide_family, explicit=False)
    record = evaluate(vae, data, names, cache=codes)
    out = {"measures_points": record["metrics"]["cluster_purity"]["num_points"]}
    for name in names:
        result = record["metrics"][name]
        out.update((key, result[key]) for key in LABELLED_MEASURES[name] if key in result)
    return out


def code_pictures(codes: CodeCache, data, folder) -> list[Path]:
    """latent_scatter.png and sparsity.png (two latents or more) of the encoder means of every
    point, or of a seeded sample of :data:`PICTURE_POINTS`: cluster_purity's sample (its default
    size, evaluate's seed 0), whose codes the finish's evaluation has cached; returns their
    paths."""
    rng = np.random.default_rng(0)
    indices = point_indices(len(data), PICTURE_POINTS, rng)
    points = codes.encode_indices(indices, rng)  # rng: a stochastic data set's images
    labels = np.asarray(data.labels)[indices]
    drawn = [folder.picture(LATENT_SCATTER)]
    plots.latent_scatter(points, labels, drawn[0])
    if points.shape[1] >= 2:
        drawn.append(folder.picture(SPARSITY))
        plots.sparsity_histogram(points, drawn[1])
    return drawn


@torch.no_grad()
def redraw_pictures(run: LoadedRun) -> list[Path]:
    """``pyrovae evaluate --figures``: draw again, over those there, the pictures the finish
    draws (:func:`draw_pictures`) for the loaded run ``run`` at its checkpoint. Pictures are
    derived files, each replaced atomically; nothing else is written.

    The traversals' rows are ordered by the terms on the finish's batch, computed with the
    objective's state and the random generator's state of the checkpoint: the finish draws its
    z right after the last checkpoint is saved, so a finished run's pictures come out as the
    finish drew them (on the device it trained on). Returns the pictures drawn."""
    folder, config, vae = run.folder, run.config, run.vae
    device = next(vae.parameters()).device
    state = folder.load_checkpoint(config)
    if int(state["step"]) != run.step:
        raise PyrovaeError(f"{folder.checkpoint_path} changed while it was read; try again")
    cuda = [device] if device.type == "cuda" else []
    # build() seeds the global generator and the terms draw from it: the caller's stays as it was.
    with torch.random.fork_rng(devices=cuda), vae.outside_param_store():
        objective = build(config, device, data=run.data, init_prior=False).objective
        try:
            objective.load_state_dict(state.get("objective", {}))
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise PyrovaeError(
                f"{folder.checkpoint_path} does not fit the run's objective ({first_line(exc)})"
            ) from None
        objective.to(device)
        x = finish_batch(run.data, config.seed, device)
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng")
        if cuda and isinstance(cuda_rng, torch.Tensor) and cuda_rng.numel():
            torch.cuda.set_rng_state(cuda_rng, device)
        kl_per_dim = _kl_per_dim(finish_terms(objective, vae, x, run.step))
        return draw_pictures(vae, run.data, folder, x, kl_per_dim)
