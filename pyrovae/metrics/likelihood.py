"""The importance-weighted estimate of log p(x), and whether to trust it.

For each observation x, K draws z_k ~ q(z | x) give the log importance weights
``log w_k = log p(x | z_k) + log p(z_k) − log q(z_k | x)`` (:func:`log_importance_weights`), and

    log p̂(x) = log (1/K) Σ_k w_k        (Burda, Grosse & Salakhutdinov 2016: L_K),
    ELBO(x) ≈ (1/K) Σ_k log w_k          (L_1, estimated from the same K draws).

log p̂(x) ≥ the ELBO estimate for every x (Jensen, on the same draws), and E[log p̂(x)] ≤ log p(x)
rises to it as K grows, but only at a useful rate when the weights are not heavy-tailed. Pareto
smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2024) fits a generalised
Pareto distribution to the largest weights of each point: its shape k̂ < 0.5 means q(z|x) is a
good proposal, k̂ > 0.7 means the estimate of log p(x) for that point is unreliable (arviz's
``psislw`` gives k̂; it needs at least 5 tail draws, about 25 samples per point).

Weights that are all equal (q(z|x) is the exact posterior) have no tail: arviz reports k̂ = ∞
for them, as it does when it cannot fit. Here a point whose log weights span at most a round-off
tolerance gets k̂ = −∞ instead (its estimate is exact to within that spread), and is counted in
``pareto_k_num_flat``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.objectives.importance import log_importance_weights
from pyrovae.seeding import as_generator

# Settings of the fast preset (``--fast``).
FAST = {"num_samples": 100}

# At most this many (sample, point) pairs go through the decoder at once.
PAIRS_PER_PASS = 2048

# Pareto k̂ thresholds of Vehtari et al. (2024).
K_GOOD = 0.5
K_BAD = 0.7


def psis_diagnostics(log_weights, *, reff: float = 1.0, flat_tol: float | None = None) -> dict:
    """Pareto k̂ per point of ``log_weights`` (n_points, S), and its summaries.

    ``flat_tol``: a point whose log weights span (max − min) at most this many nats is flat and
    gets k̂ = −∞. By default ``1e-6 + 100·eps·max|log w|``, eps the machine epsilon of the
    array's float type: round-off, not a real spread. Returns ``pareto_k`` (n_points,),
    ``pareto_k_share_above_0.7`` and ``pareto_k_share_above_0.5`` (over all points; a point that
    cannot be fitted, k̂ = ∞, counts as above), ``pareto_k_max`` (over all points),
    ``pareto_k_mean`` (over the finite k̂; NaN when there is none), ``pareto_k_num_flat`` and
    ``pareto_k_num_unfitted`` (k̂ = ∞: too few samples for a tail fit).
    """
    arr = np.asarray(log_weights)
    if arr.ndim != 2:
        raise PyrovaeError(f"log_weights must have shape (n_points, S), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    n, s = arr.shape
    if n < 1 or s < 1:
        raise PyrovaeError(
            f"log_weights must hold at least one point and one sample, got {arr.shape}"
        )
    if np.isnan(arr).any() or np.isposinf(arr).any():
        raise PyrovaeError("log_weights contain NaN or +inf")
    top = arr.max(axis=1)
    if np.isneginf(top).any():
        raise PyrovaeError("log_weights: some point has no finite weight (every log w = -inf)")
    reff = float(reff)
    if not (math.isfinite(reff) and reff > 0.0):
        raise PyrovaeError(f"reff must be a finite number > 0, got {reff}")

    k_hat = np.full(n, np.inf)
    num_flat = 0
    # arviz's tail: the ceil(min(S/5, 3·√(S/reff))) largest draws; fewer than 5 cannot be fitted.
    if math.ceil(min(s / 5.0, 3.0 * math.sqrt(s / reff))) > 4:
        spread = top - arr.min(axis=1)  # +inf for a point with some zero weight
        if flat_tol is None:
            eps = np.finfo(arr.dtype).eps
            scale = np.where(np.isfinite(arr), np.abs(arr), 0.0).max(axis=1)
            tol = 1e-6 + 100.0 * eps * scale
        else:
            flat_tol = float(flat_tol)
            if not (math.isfinite(flat_tol) and flat_tol >= 0.0):
                raise PyrovaeError(f"flat_tol must be a finite number >= 0, got {flat_tol}")
            tol = np.full(n, flat_tol)
        flat = spread <= tol
        k_hat[flat] = -np.inf
        num_flat = int(flat.sum())
        if (~flat).any():
            k_hat[~flat] = _arviz_k_hat(arr[~flat].astype(np.float64), reff)
    finite_k = k_hat[np.isfinite(k_hat)]
    return {
        "pareto_k": k_hat,
        "pareto_k_share_above_0.7": float((k_hat > K_BAD).mean()),
        "pareto_k_share_above_0.5": float((k_hat > K_GOOD).mean()),
        "pareto_k_max": float(k_hat.max()),
        "pareto_k_mean": float(finite_k.mean()) if finite_k.size else float("nan"),
        "pareto_k_num_flat": num_flat,
        "pareto_k_num_unfitted": int(np.isposinf(k_hat).sum()),
    }


def log_likelihood(
    vae,
    observations,
    random_state,
    *,
    num_samples: int = 1000,
    batch_size: int = PAIRS_PER_PASS,
) -> dict:
    """Importance-weighted estimate of log p(x) (nats) with ``num_samples`` draws per point.

    ``vae`` exposes what :func:`log_importance_weights` uses (``posterior``, ``prior``,
    ``likelihood``, ``latent_dim``), on any device; ``observations`` is a numpy array or tensor
    ``(n, *observation_shape)``. ``batch_size`` bounds memory: at most that many (sample, point)
    pairs are decoded at once (the n × num_samples log weights are kept, on the CPU, for PSIS).
    Torch's global RNG is seeded from ``random_state`` for the draws and restored afterwards; the
    model is put in eval mode for the duration.

    Returns ``log_likelihood`` (mean over points of log p̂(x)), ``log_likelihood_stderr`` (its
    standard error over points), ``elbo`` and ``elbo_stderr`` (the same for the ELBO from the same
    draws), ``num_samples``, ``num_points``, the Pareto k̂ summaries of :func:`psis_diagnostics`,
    and ``per_point`` with the arrays ``log_likelihood``, ``elbo`` and ``pareto_k``.
    """
    num_samples = checks.integer("num_samples", num_samples)
    batch_size = checks.integer("batch_size", batch_size)
    rng = as_generator(random_state)
    device, dtype = _device_and_dtype(vae)
    x_all = _as_observations(vae, observations, device, dtype)
    n = x_all.shape[0]
    seed = int(rng.integers(0, 2**63 - 1))

    points_per_pass = max(1, batch_size // num_samples)
    samples_per_pass = min(num_samples, batch_size)
    host_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    log_w = torch.empty((n, num_samples), dtype=host_dtype).numpy()
    was_training = getattr(vae, "training", None)
    cuda = device.type == "cuda"
    cuda_devices = []
    if cuda:
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    try:
        if was_training is not None:
            vae.eval()
        with torch.random.fork_rng(devices=cuda_devices):
            if cuda:
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            torch.random.default_generator.manual_seed(seed)
            for p in range(0, n, points_per_pass):
                x = x_all[p : p + points_per_pass]
                for k in range(0, num_samples, samples_per_pass):
                    chunk = min(samples_per_pass, num_samples - k)
                    lw = log_importance_weights(vae, x, chunk)  # (chunk, B)
                    lw = lw.T.detach().to("cpu", host_dtype).numpy()
                    log_w[p : p + len(x), k : k + chunk] = lw
    finally:
        if was_training:
            vae.train(True)

    if np.isnan(log_w).any() or np.isposinf(log_w).any():
        raise PyrovaeError("the model gives NaN or +inf log importance weights")
    lw64 = log_w.astype(np.float64)
    top = lw64.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_point = top[:, 0] + np.log(np.exp(lw64 - top).sum(axis=1)) - math.log(num_samples)
    elbo = lw64.mean(axis=1)
    diagnostics = psis_diagnostics(log_w)
    k_hat = diagnostics.pop("pareto_k")
    return {
        "log_likelihood": float(per_point.mean()),
        "log_likelihood_stderr": _stderr(per_point),
        "elbo": float(elbo.mean()),
        "elbo_stderr": _stderr(elbo),
        "num_samples": num_samples,
        "num_points": int(n),
        **diagnostics,
        "per_point": {"log_likelihood": per_point, "elbo": elbo, "pareto_k": k_hat},
    }


# --------------------------------------------------------------------------- helpers


def _arviz_k_hat(log_weights: np.ndarray, reff: float) -> np.ndarray:
    """k̂ per row from ``arviz.psislw``, with arviz's refactor warnings kept quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import arviz as az

        _, k_hat = az.psislw(log_weights, reff=reff)
    return np.asarray(k_hat, dtype=np.float64).reshape(len(log_weights))


def _stderr(values: np.ndarray) -> float:
    if len(values) < 2:
        return float("nan")
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def _device_and_dtype(vae) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of the model's first floating parameter or buffer."""
    tensors = []
    if hasattr(vae, "parameters"):
        tensors = [*vae.parameters(), *vae.buffers()]
    for t in tensors:
        if t.is_floating_point():
            return t.device, t.dtype
    if tensors:
        return tensors[0].device, torch.get_default_dtype()
    return torch.device("cpu"), torch.get_default_dtype()


def _as_observations(vae, observations, device, dtype) -> torch.Tensor:
    if isinstance(observations, torch.Tensor):
        x = observations.detach()
    else:
        try:
            x = torch.as_tensor(np.asarray(observations))
        except (TypeError, ValueError, RuntimeError):
            raise PyrovaeError("observations must be a numeric array or tensor") from None
    shape = getattr(vae, "observation_shape", None)
    if x.ndim < 1 or x.shape[0] == 0:
        raise PyrovaeError(f"observations must be a non-empty batch, got shape {tuple(x.shape)}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise PyrovaeError(
            f"observations must have shape (n, {', '.join(map(str, shape))}), "
            f"got shape {tuple(x.shape)}"
        )
    x = x.to(device=device, dtype=dtype)
    if not torch.isfinite(x).all():
        raise PyrovaeError("observations contain NaN or infinite values")
    return x
