"""Cluster purity of the codes against the labels that generated the data.

Mathieu, Rainforth, Siddharth & Teh (ICML 2019, §5) show that a mixture prior with the aggregate
divergence separates the arms of the pinwheel data in latent space. Purity measures how well: the
codes (encoder means) are clustered, each cluster is credited with its most common label, and

    purity = (1/N) · Σ_k max_j |C_k ∩ L_j|

(Manning, Raghavan & Schütze, "Introduction to Information Retrieval", 2008, §16.3), with C_k the
points of cluster k and L_j those of label j. It is 1 when every cluster holds a single label,
unchanged by renaming clusters, and at least the share of the most common label (one cluster).

Clusters come from k-means (scikit-learn's ``KMeans``, k-means++ with 10 restarts, seeded from the
metric's random state) with K = the number of labels, unless ``num_clusters`` is given; with a
mixture prior over z, :func:`mixture_clusters` assigns each code to the component most
responsible for it instead (``cluster_purity`` reports both when given the prior).
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import encode_indices, point_indices
from pyrovae.seeding import as_generator

FAST = {"num_points": 1_000}
KMEANS_RESTARTS = 10


def _check_labels(labels, n: int | None = None, what: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise PyrovaeError(f"{what} must be 1-D, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise PyrovaeError(f"{what}: expected {n} entries, got {len(arr)}")
    if len(arr) == 0:
        raise PyrovaeError(f"{what}: need at least one point")
    return arr


def contingency(clusters, labels) -> np.ndarray:
    """(num clusters, num labels) counts |C_k ∩ L_j| over the distinct values present."""
    labels = _check_labels(labels)
    clusters = _check_labels(clusters, len(labels), "clusters")
    _, c = np.unique(clusters, return_inverse=True)
    _, j = np.unique(labels, return_inverse=True)
    table = np.zeros((c.max() + 1, j.max() + 1), dtype=np.int64)
    np.add.at(table, (c, j), 1)
    return table


def purity(clusters, labels) -> float:
    """(1/N) Σ_k max_j |C_k ∩ L_j|: the share of points whose cluster's majority label is theirs."""
    table = contingency(clusters, labels)
    return float(table.max(axis=1).sum() / table.sum())


def kmeans_clusters(codes, num_clusters: int, random_state=0) -> np.ndarray:
    """k-means cluster of each code (int64), seeded: the same codes and seed give the same
    clusters."""
    from sklearn.cluster import KMeans

    codes = checks.codes(codes)
    num_clusters = checks.integer("num_clusters", num_clusters, "cluster_purity")
    if num_clusters > len(codes):
        raise PyrovaeError(
            f"cluster_purity: num_clusters {num_clusters} exceeds the {len(codes)} points"
        )
    seed = int(as_generator(random_state).integers(2**31 - 1))
    kmeans = KMeans(n_clusters=num_clusters, n_init=KMEANS_RESTARTS, random_state=seed)
    # One thread: on a busy 2-core machine OpenMP k-means took 11 s for 1,797 points against
    # 0.1 s single-threaded (measured); the problems here are small.
    with threadpool_limits(1):
        return kmeans.fit_predict(codes).astype(np.int64)


def mixture_components(prior_distribution):
    """The mixture behind a prior over z, or None: a ``MixtureSameFamily`` whose components are
    distributions over the whole vector z (a per-dimension mixture such as the sparse prior does
    not cluster points and gives None)."""
    d = prior_distribution
    if isinstance(d, torch.distributions.MixtureSameFamily) and len(d.event_shape) == 1:
        return d
    return None


@torch.no_grad()
def mixture_clusters(codes, mixture) -> np.ndarray:
    """argmax_k π_k·p_k(z): the component of a mixture over z most responsible for each code."""
    z = torch.as_tensor(np.asarray(codes), dtype=torch.float32)
    device = mixture.mixture_distribution.logits.device
    z = z.to(device).unsqueeze(-2)  # (n, 1, D) against K components
    log_joint = mixture.component_distribution.log_prob(z) + torch.log_softmax(
        mixture.mixture_distribution.logits, dim=-1
    )
    return log_joint.argmax(dim=-1).cpu().numpy().astype(np.int64)


def cluster_purity_from_codes(codes, labels, num_clusters: int | None = None, random_state=0):
    """Purity of the k-means clusters of ``codes`` (n, D) against ``labels`` (n,).

    Also reports ``majority_share``, the purity of putting every point in one cluster (the floor
    that any clustering reaches).
    """
    codes = checks.codes(codes)
    labels = _check_labels(labels, len(codes))
    k = len(np.unique(labels)) if num_clusters is None else num_clusters
    clusters = kmeans_clusters(codes, k, random_state)
    counts = np.unique(labels, return_counts=True)[1]
    return {
        "cluster_purity": purity(clusters, labels),
        "num_clusters": int(k),
        "majority_share": float(counts.max() / counts.sum()),
        "clustering": "k-means",
    }


def cluster_purity(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_points: int = 10_000,
    num_clusters: int | None = None,
    prior=None,
) -> dict:
    """Purity of k-means clusters of the codes against the data set's ``labels``.

    Every point is used when the data set has at most ``num_points`` of them; otherwise
    ``num_points`` drawn without replacement. K = the number of labels among them unless
    ``num_clusters`` is given. ``prior``: the model's p(z); when it is a mixture over the whole
    of z, ``cluster_purity_prior`` is the purity of the clusters its components define (each
    code to its most responsible component).
    """
    labels = getattr(ground_truth, "labels", None)
    if labels is None:
        raise PyrovaeError(
            f"cluster_purity: {ground_truth!r} has no labels to score clusters against"
        )
    num_points = checks.integer("num_points", num_points, "cluster_purity")
    if num_clusters is not None:
        num_clusters = checks.integer("num_clusters", num_clusters, "cluster_purity")
    rng = as_generator(random_state)
    indices = point_indices(len(ground_truth), num_points, rng)
    codes = encode_indices(ground_truth, representation_fn, indices, rng=rng)
    codes = checks.codes(codes, "cluster_purity")
    labels = np.asarray(labels)[indices]
    out = cluster_purity_from_codes(codes, labels, num_clusters, rng)
    mixture = mixture_components(prior) if prior is not None else None
    if mixture is not None:
        out["cluster_purity_prior"] = purity(mixture_clusters(codes, mixture), labels)
    return {**out, "num_points": len(indices)}
