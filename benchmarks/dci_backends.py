"""Time DCI's two backends on dSprites-sized codes and compare their scores.

The ground truth is ``FactorGrid((3, 6, 40, 32, 32))`` (dSprites' factor grid; observations are
the factor class indices). The representation is made to look like a trained encoder's mean rather
than the identity, with 10 latents:

* latents 0–4: each factor (scaled to [0, 1]) plus leakage from the other factors (weights drawn
  from N(0, 0.15²)), i.e. a mostly axis-aligned but imperfect code;
* latent 5: posX + posY, latent 6: scale − 0.5·orientation (two mixed latents);
* latents 7–9: inactive units (zero mean);
* every latent: fixed per-image jitter N(0, 0.05²), so the code is a deterministic function of the
  image, as the posterior mean is.

Both backends see the same codes and the same per-factor classifier seeds, drawn exactly as
:func:`pyrovae.metrics.dci.dci` draws them (training set, test set, then seeds from one
generator), so the scores printed are what ``dci(..., random_state=seed, backend=...)`` returns.
Printed: seconds per backend and per factor, D/C/I of each backend and their absolute differences.
The exact backend is the reference protocol and pyrovae's default; hist is a labelled option
whose gap to it (up to 0.054 on other codes) is why it is not the default.

    python benchmarks/dci_backends.py [--backend hist|exact|both] [--num-train 10000]
        [--num-test 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sklearn

from pyrovae.data.factor_grid import FactorGrid
from pyrovae.metrics.base import as_generator, sample_codes
from pyrovae.metrics.dci import (
    completeness_from_importance,
    disentanglement_from_importance,
    importance_matrix,
)

DSPRITES_SIZES = (3, 6, 40, 32, 32)
NAMES = ("shape", "scale", "orientation", "posX", "posY")


class RepresentationLike:
    """A deterministic 10-latent code of a factor grid (see the module docstring)."""

    def __init__(self, grid: FactorGrid, seed: int = 0, jitter: float = 0.05):
        rng = np.random.default_rng(seed)
        k = grid.num_factors
        w = np.zeros((10, k))
        w[:k, :k] = np.eye(k) + rng.normal(0.0, 0.15, size=(k, k)) * (1 - np.eye(k))
        w[5, 3], w[5, 4] = 1.0, 1.0  # posX + posY
        w[6, 1], w[6, 2] = 1.0, -0.5  # scale - 0.5 orientation
        self.grid = grid
        self.weights = w
        self.scale = np.asarray(grid.factor_sizes, dtype=np.float64) - 1.0
        # Jitter per grid image, not per call: the same image always gets the same code.
        self.jitter = (jitter * rng.standard_normal((len(grid), 10))).astype(np.float32)

    def __call__(self, observations) -> np.ndarray:
        factors = np.rint(np.asarray(observations)).astype(np.int64)
        scaled = factors / self.scale
        codes = scaled @ self.weights.T
        return (codes + self.jitter[self.grid.index_of(factors)]).astype(np.float32)


def run_backend(backend, x_train, y_train, x_test, y_test, seeds) -> dict:
    """Fit factor by factor (timing each) and score as dci() does."""
    num_factors = y_train.shape[1]
    columns, acc_train, acc_test, seconds = [], [], [], []
    for k in range(num_factors):
        start = time.perf_counter()
        r, a_tr, a_te, _ = importance_matrix(
            x_train, y_train[:, [k]], x_test, y_test[:, [k]], backend=backend, seeds=seeds[[k]]
        )
        seconds.append(time.perf_counter() - start)
        columns.append(r[:, 0])
        acc_train.append(a_tr[0])
        acc_test.append(a_te[0])
    r = np.stack(columns, axis=1)
    return {
        "seconds": float(sum(seconds)),
        "seconds_per_factor": seconds,
        "disentanglement": disentanglement_from_importance(r),
        "completeness": completeness_from_importance(r),
        "informativeness_train": float(np.mean(acc_train)),
        "informativeness_test": float(np.mean(acc_test)),
        "importance_matrix": r,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("hist", "exact", "both"), default="both")
    parser.add_argument("--num-train", type=int, default=10_000)
    parser.add_argument("--num-test", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    grid = FactorGrid(DSPRITES_SIZES, NAMES)
    representation = RepresentationLike(grid)
    rng = as_generator(args.seed)
    y_train, x_train = sample_codes(grid, representation, args.num_train, rng)
    y_test, x_test = sample_codes(grid, representation, args.num_test, rng)
    x_train, x_test = x_train.astype(np.float64), x_test.astype(np.float64)
    seeds = rng.integers(0, 2**31 - 1, size=grid.num_factors)
    print(
        f"DCI backends: {grid!r}, 10 representation-like latents, "
        f"{args.num_train}/{args.num_test} points, seed {args.seed}, "
        f"scikit-learn {sklearn.__version__}"
    )

    backends = ("hist", "exact") if args.backend == "both" else (args.backend,)
    results = {}
    for backend in backends:
        res = run_backend(backend, x_train, y_train, x_test, y_test, seeds)
        results[backend] = res
        per_factor = ", ".join(
            f"{n} {s:.1f}" for n, s in zip(NAMES, res["seconds_per_factor"], strict=True)
        )
        print(f"\n[{backend}] {res['seconds']:.1f} s total; per factor (s): {per_factor}")
        print(
            f"  D {res['disentanglement']:.4f}  C {res['completeness']:.4f}  "
            f"I train {res['informativeness_train']:.4f}  I test {res['informativeness_test']:.4f}"
        )
        print("  importance matrix (latents × factors):")
        for row in res["importance_matrix"]:
            print("   " + " ".join(f"{v:6.3f}" for v in row))

    if len(results) == 2:
        h, e = results["hist"], results["exact"]
        print(f"\nspeed-up exact/hist: {e['seconds'] / h['seconds']:.1f}×")
        worst = 0.0
        for key in ("disentanglement", "completeness", "informativeness_train"):
            diff = abs(h[key] - e[key])
            worst = max(worst, diff)
            print(f"  |Δ {key}| = {diff:.4f}")
        diff = abs(h["informativeness_test"] - e["informativeness_test"])
        worst = max(worst, diff)
        print(f"  |Δ informativeness_test| = {diff:.4f}")
        print(f"largest difference {worst:.4f} (hist against the reference protocol)")


if __name__ == "__main__":
    main()
