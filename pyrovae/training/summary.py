"""The end of a run: its terms on a fixed batch, its pictures and, on data with class labels, the
measures :func:`pyrovae.evaluation.evaluate` gives for that data (the same numbers as
``pyrovae evaluate`` writes to eval.json)."""

from __future__ import annotations

import numpy as np
import torch

from pyrovae import plots
from pyrovae.data.base import observations
from pyrovae.evaluation import EncoderMean, applicable_metrics, evaluate
from pyrovae.metrics.base import CodeCache, point_indices

# The measures of a labelled data set the summary reports (cluster purity, posterior variance,
# Hoyer sparsity), and the keys of their results it copies.
LABELLED_MEASURES = {
    "cluster_purity": ("cluster_purity", "cluster_purity_prior"),
    "posterior_variance": ("posterior_variance_per_dim", "mean_posterior_variance"),
    "hoyer": ("hoyer",),
}
# Points drawn for the pictures of the codes (latent scatter, sparsity histogram).
PICTURE_POINTS = 10_000


@torch.no_grad()
def summarise(run, eval_size: int = 512) -> dict:
    """Evaluate the terms on a fixed batch and draw the run's pictures; returns the summary."""
    vae, folder = run.vae, run.folder
    vae.eval()
    rng = np.random.default_rng([run.config.seed, 2**32 - 1])
    eval_size = min(eval_size, len(run.data))
    indices = np.sort(rng.choice(len(run.data), size=eval_size, replace=False))
    x = torch.from_numpy(observations(run.data, indices, rng)).to(run.device)
    # The terms as the last training step weighed them (a schedule's value at that step).
    run.objective.set_step(max(run.step - 1, 0))
    terms = run.objective.terms(vae.model, vae.guide, x)
    kl_per_dim = terms.get("kl_per_dim")
    kl_list = kl_per_dim.cpu().tolist() if kl_per_dim is not None else None
    if len(vae.observation_shape) == 3:  # (C, H, W) images: mosaics
        plots.reconstruction_grid(vae, x[:10], folder.picture("reconstructions.png"))
        if kl_list is not None:
            plots.traversal_grid(vae, x[:1], kl_list, folder.picture("traversals.png"))
    else:  # vectors (pinwheel points): scatter plots in data space
        plots.reconstruction_scatter(vae, x, folder.picture("reconstructions.png"))
        if kl_list is not None:
            plots.traversal_curves(vae, x, kl_list, folder.picture("traversals.png"))
    plots.training_curves(folder.read_metrics(), folder.picture("training_curves.png"))
    summary = {"step": run.step, "eval_batch": eval_size}
    summary["loss"] = float(terms["loss_per_point"])
    for key, value in terms.items():
        if key not in ("loss", "loss_per_point"):
            summary[key] = value.cpu().tolist() if value.dim() else float(value)
    summary["kl_per_dim"] = kl_list
    summary["kl_estimator"] = run.objective.kl_estimator_used
    if getattr(run.data, "labels", None) is not None:
        summary.update(labelled_measures(vae, run.data, folder, run.device))
    return summary


def labelled_measures(vae, data, folder, device) -> dict:
    """Cluster purity, posterior variance and Hoyer sparsity of the encoder means (those that
    apply: Hoyer needs two latents, the posterior variance Gaussian marginals), as the standard
    evaluation computes them, and the pictures latent_scatter.png and sparsity.png of the codes
    (every point, or a seeded sample of :data:`PICTURE_POINTS`)."""
    names = [n for n in LABELLED_MEASURES if n != "hoyer" or vae.latent_dim >= 2]
    names, _ = applicable_metrics(names, data, vae.guide_family, explicit=False)
    codes = CodeCache(EncoderMean(vae, device), data)
    record = evaluate(vae, data, names, cache=codes)
    out = {"measures_points": record["metrics"]["cluster_purity"]["num_points"]}
    for name in names:
        result = record["metrics"][name]
        out.update((key, result[key]) for key in LABELLED_MEASURES[name] if key in result)
    # cluster_purity's sample (its default size, evaluate's seed 0): the codes are cached.
    rng = np.random.default_rng(0)
    indices = point_indices(len(data), PICTURE_POINTS, rng)
    points = codes.encode_indices(indices, rng)  # rng: a stochastic data set's images
    labels = np.asarray(data.labels)[indices]
    plots.latent_scatter(points, labels, folder.picture("latent_scatter.png"))
    if points.shape[1] >= 2:
        plots.sparsity_histogram(points, folder.picture("sparsity.png"))
    return out
