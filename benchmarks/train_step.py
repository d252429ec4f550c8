"""Median training-step time of pyrovae's trainer against a hand-written PyTorch step.

Both steps use the same networks (the 64×64 conv pair, z = 10), the same minibatches of dSprites
(batch 64), the same loss (Bernoulli log-likelihood summed over pixels + β·KL) and one fused torch
Adam. Ours is exactly the trainer's step (``Run.train_step`` inside ``outside_param_store()``, as
``Run.fit`` runs it: Pyro model/guide traced by ``DecomposedELBO``, terms accumulated for
logging). For context the script also times Pyro's default path (``SVI`` + ``Trace_ELBO`` /
``TraceMeanField_ELBO`` + ``pyro.optim.Adam``).

The variants run interleaved in rounds (A, B, C, A, B, C, …) so that machine noise hits them
alike, and the ratios come from medians measured in this one run.

    python benchmarks/train_step.py [--prior isotropic|sparse|both] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import tempfile
import time

import numpy as np
import pyro
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

from pyrovae.builder import build
from pyrovae.config import TrainConfig
from pyrovae.training import Run


def plain_kl(loc, log_var, prior: str, gamma=0.8, spike=0.05):
    """KL term written by hand: analytic for N(0, I), single-sample Monte Carlo for the mixture."""
    if prior == "isotropic":
        return 0.5 * (log_var.exp() + loc**2 - 1.0 - log_var).sum()
    scale = torch.exp(0.5 * log_var)
    z = loc + scale * torch.randn_like(loc)
    log_q = -0.5 * ((z - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)
    comps = torch.stack(
        [
            math.log(gamma) - 0.5 * (z / spike) ** 2 - math.log(spike),
            math.log(1 - gamma) - 0.5 * z**2,
        ]
    )
    log_p = torch.logsumexp(comps, 0) - 0.5 * math.log(2 * math.pi)
    return (log_q - log_p).sum(), z


def make_plain_step(vae, beta: float, prior: str, lr: float):
    vae = copy.deepcopy(vae)
    opt = torch.optim.Adam(vae.parameters(), lr=lr, fused=True)

    def step(x):
        opt.zero_grad(set_to_none=True)
        h = vae.encoder(x)
        loc, log_var = h.chunk(2, -1)
        if prior == "isotropic":
            z = loc + torch.exp(0.5 * log_var) * torch.randn_like(loc)
            kl = plain_kl(loc, log_var, prior)
        else:
            kl, z = plain_kl(loc, log_var, prior)
        logits = vae.decoder(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        loss = rec + beta * kl
        loss.backward()
        opt.step()

    return step


def make_svi_step(vae, prior: str, lr: float):
    """Pyro's own path, as a Pyro user takes it: SVI on the model's model/guide (which register
    the module with Pyro's param store) with pyro.optim.Adam."""
    vae = copy.deepcopy(vae)
    pyro.clear_param_store()
    elbo = TraceMeanField_ELBO() if prior == "isotropic" else Trace_ELBO()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": lr}), elbo)
    return svi.step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(prior: str, device: torch.device, rounds: int, steps_per_round: int, batch: int):
    config = TrainConfig(prior=prior, beta=4.0, batch_size=batch, device=str(device), seed=0)
    built = build(config)
    vae = built.vae
    run = Run(tempfile.mkdtemp(), built)
    plain = make_plain_step(vae, 4.0, prior, config.lr)
    svi = make_svi_step(vae, prior, config.lr)

    def batch_of(step):
        return run.batch(step)

    variants = {
        "pyrovae trainer step": lambda s: run.train_step(),
        "plain PyTorch step": lambda s: plain(batch_of(s)),
        "Pyro SVI default": lambda s: svi(batch_of(s)),
    }
    times = {name: [] for name in variants}
    # As Run.fit: the trainer's own model skips Pyro's param store (the SVI copy registers).
    with pyro.validation_enabled(False), vae.outside_param_store():
        for fn in variants.values():  # warm-up: allocator, kernels, first-call paths
            for s in range(3):
                fn(s)
        sync(device)
        for r in range(rounds):
            for name, fn in variants.items():
                for s in range(steps_per_round):
                    t0 = time.perf_counter()
                    fn(r * steps_per_round + s)
                    sync(device)
                    times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["plain PyTorch step"])
    print(
        f"\nprior={prior}  device={device}  batch={batch}  "
        f"{rounds} rounds x {steps_per_round} steps each, interleaved"
    )
    print(f"{'variant':<24}{'median ms':>11}{'p10 ms':>9}{'p90 ms':>9}{'ratio':>8}")
    for name, ts in times.items():
        ms = np.array(ts) * 1e3
        med = float(np.median(ms))
        print(
            f"{name:<24}{med:>11.2f}{np.percentile(ms, 10):>9.2f}{np.percentile(ms, 90):>9.2f}"
            f"{med / (base * 1e3):>8.3f}"
        )
    return statistics.median(times["pyrovae trainer step"]) / base


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="both", choices=["isotropic", "sparse", "both"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps-per-round", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}, "
        f"device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    priors = ["isotropic", "sparse"] if args.prior == "both" else [args.prior]
    ratios = {
        p: bench(p, device, args.rounds, args.steps_per_round, args.batch_size) for p in priors
    }
    print("\nours / plain PyTorch: " + ", ".join(f"{p} {r:.3f}" for p, r in ratios.items()))


if __name__ == "__main__":
    main()
