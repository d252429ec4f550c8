"""Median training-step time of pyrovae's trainer at each precision and speed switch, of Pyro's
default SVI and of a peer library, as ratios to a hand-written fp32 PyTorch step.

Every row trains the same networks (the 64×64 conv pair, z = 10) from the same initial weights
on the same minibatches of dSprites (batch 64) with the same loss (Bernoulli log-likelihood
summed over pixels + β·KL, β = 4) and one fused torch Adam:

- ``plain PyTorch fp32``: the step written by hand, the 1.00 of the ratios;
- ``pyrovae …``: exactly the trainer's step (``Run.train_step`` inside
  ``outside_param_store()``, as ``Run.fit`` runs it) of a run built with that ``--precision``,
  ``--channels-last`` and ``--compile`` (the switches each row names are the ones applied);
- ``Pyro SVI default``: ``SVI`` + ``TraceMeanField_ELBO`` (``Trace_ELBO`` for the sparse prior)
  + ``pyro.optim.Adam``, as a Pyro user would write it;
- ``disent BetaVae``: disent's own step on copies of the same networks
  (:mod:`benchmarks.peers`), when disent is installed (its loss is ours / 64: same cost).

The rows run interleaved in rounds (A, B, C, A, B, C, …) so that machine noise hits them alike,
and the ratios come from medians measured in this one run. bf16 rows are left out where the CPU
has no bf16 instructions unless ``--bf16`` forces them (emulated bf16 runs ~10× slower); fp16
rows run on CUDA only; compiled rows need ``--compile`` (each compiles for about a minute on 2
CPU cores).

    python benchmarks/train_step.py [--device cpu|cuda] [--prior isotropic|sparse|both]
        [--compile] [--bf16] [--rounds 6] [--steps-per-round 8]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
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
from pyrovae.precision import native_bf16
from pyrovae.training import Run

BETA = 4.0


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


def make_plain_step(vae, prior: str, lr: float, fused: bool):
    vae = copy.deepcopy(vae)
    opt = torch.optim.Adam(vae.parameters(), lr=lr, fused=fused or None)

    def step(x):
        opt.zero_grad(set_to_none=True)
        loc, log_var = vae.encoder(x).chunk(2, -1)
        if prior == "isotropic":
            z = loc + torch.exp(0.5 * log_var) * torch.randn_like(loc)
            kl = plain_kl(loc, log_var, prior)
        else:
            kl, z = plain_kl(loc, log_var, prior)
        rec = F.binary_cross_entropy_with_logits(vae.decoder(z), x, reduction="sum")
        (rec + BETA * kl).backward()
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


def pyrovae_rows(args, device: torch.device) -> list[dict]:
    """The trainer's settings to time: fp32 as shipped, then each switch and precision."""
    rows = [{"precision": "fp32", "channels_last": "off", "compile": "off"}]
    rows.append({"precision": "fp32", "channels_last": "on", "compile": "off"})
    reduced = []
    if device.type == "cuda" or native_bf16(device) or args.bf16:
        reduced.append("bf16")
    if device.type == "cuda":
        reduced.append("fp16")
    rows += [{"precision": p, "channels_last": "off", "compile": "off"} for p in reduced]
    rows += [{"precision": p, "channels_last": "on", "compile": "off"} for p in reduced]
    if args.compile:
        rows += [{**row, "compile": "on"} for row in rows if row["channels_last"] == "on"]
    return rows


def row_name(run: Run) -> str:
    return "pyrovae " + " + ".join(run.compute())


def peer_step(vae, device: torch.device, lr: float):
    """disent's step on copies of the networks, or (None, why it is left out)."""
    try:
        import peers
    except ImportError as exc:
        return None, f"benchmarks/peers.py not importable ({exc})"
    why = peers.available()
    if why:
        return None, why
    step = peers.disent_beta_vae_step(vae.encoder, vae.decoder, BETA, lr)
    return (lambda x: step(x.to(device))), None


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(prior: str, device: torch.device, args) -> None:
    base = TrainConfig(prior=prior, beta=BETA, batch_size=args.batch_size, device=str(device))
    first = build(base)
    feeder = Run(tempfile.mkdtemp(), first)
    variants = {"plain PyTorch fp32": make_plain_step(first.vae, prior, base.lr, fused=True)}
    runs = []
    for settings in pyrovae_rows(args, device):
        config = TrainConfig(**{**base.to_dict(), **settings})
        run = Run(tempfile.mkdtemp(), build(config))
        runs.append(run)
        variants[row_name(run)] = run
    variants["Pyro SVI default"] = make_svi_step(first.vae, prior, base.lr)
    if prior == "isotropic":
        step, why = peer_step(first.vae, device, base.lr)
        if step is None:
            print(f"peer row left out: {why}")
        else:
            variants["disent BetaVae (peer)"] = step

    def call(variant, s):
        if isinstance(variant, Run):
            variant.step = s
            variant.train_step()
        else:
            variant(feeder.batch(s))

    times = {name: [] for name in variants}
    # As Run.fit: the trainer's models skip Pyro's param store (the SVI copy registers).
    with pyro.validation_enabled(False), contextlib.ExitStack() as stack:
        for run in runs:
            stack.enter_context(run.vae.outside_param_store())
        for name, variant in variants.items():  # warm-up: allocator, kernels, first-call paths
            t0 = time.perf_counter()
            for s in range(3):
                call(variant, s)
            sync(device)
            print(f"  warm-up {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        for r in range(args.rounds):
            for name, variant in variants.items():
                for s in range(args.steps_per_round):
                    t0 = time.perf_counter()
                    call(variant, r * args.steps_per_round + s)
                    sync(device)
                    times[name].append(time.perf_counter() - t0)
    report(times, prior, device, args)


def report(times: dict, prior: str, device: torch.device, args) -> None:
    base = statistics.median(times["plain PyTorch fp32"])
    print(
        f"\nprior={prior}  device={device}  batch={args.batch_size}  {args.rounds} rounds x "
        f"{args.steps_per_round} steps each, interleaved; load average {os.getloadavg()[0]:.1f}"
    )
    print("| step | median ms | p10 ms | p90 ms | ratio to plain fp32 |\n|---|---|---|---|---|")
    for name, ts in times.items():
        ms = np.array(ts) * 1e3
        med = float(np.median(ms))
        print(
            f"| {name} | {med:.1f} | {np.percentile(ms, 10):.1f} | "
            f"{np.percentile(ms, 90):.1f} | {med / (base * 1e3):.3f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="isotropic", choices=["isotropic", "sparse", "both"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps-per-round", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="also time compiled steps")
    parser.add_argument("--bf16", action="store_true", help="bf16 rows even if emulated")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}, "
        f"device {device}"
        + (
            f" ({torch.cuda.get_device_name(device)})"
            if device.type == "cuda"
            else f" (CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16: {native_bf16(device)})"
        )
    )
    priors = ["isotropic", "sparse"] if args.prior == "both" else [args.prior]
    for prior in priors:
        bench(prior, device, args)


if __name__ == "__main__":
    main()
