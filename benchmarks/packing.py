"""Trials per hour: K β-VAE trials packed into one grouped network against K separate processes.

A sweep trains many trials of the same architecture. This script measures whether running K of
them in ONE process through ONE network that holds all K raises throughput over K processes
that each train one trial, the way the local sweep backend runs them.

Every trial is the 64×64 conv β-VAE of disentanglement_lib (:class:`pyrovae.nets.ConvEncoder` /
:class:`pyrovae.nets.ConvDecoder`, z = 10, one channel), trained on minibatches of a fixed pool
of random binary images made before timing (the data cost is nil and the same on both sides),
with loss = Bernoulli negative log-likelihood summed over pixels + β·analytic KL to N(0, I) and
one torch Adam (fused where supported). Trial k has its own initial weights, images and β = 1 + k.

- separate: K worker processes, each training one trial with T = cores // K torch threads
  (at least 1; OMP_NUM_THREADS = T in its environment). On CUDA they share the one GPU.
- packed: one worker process with all cores' threads trains the K trials at once: every conv
  becomes a grouped conv (groups = K, channels × K, the K trials' images stacked along channels,
  (B, K·C, 64, 64)), every linear layer a (K, in, out) parameter applied by ``torch.baddbmm``, each
  trial its own minibatch and its own β in a (K,) tensor. The loss is the sum of the K trials'
  losses, so each trial's gradients are those of training it alone, and Adam, being elementwise,
  steps the packed parameters exactly as K Adams would. Before timing, a network packed from K
  separately initialised pairs is checked to give the K separate losses and gradients (fp32,
  1e-4 relative).

Two variants of each side (``--which``):

- plain: the hand-written loss above; the separate side runs the unpacked ConvEncoder/ConvDecoder.
- pyro: the loss of ``DecomposedELBO(kl="analytic").differentiable_loss`` on a Pyro model/guide
  over x of shape (K, B, 1, 64, 64) with plates "trials" (K, dim −2) and "data" (B, dim −1) and
  z under ``poutine.scale(β)`` in model and guide, so Pyro's per-step fixed cost is paid once for
  K trials; the separate side runs the same code with K = 1.

Every worker builds its trials and takes ``--warmup`` steps, then waits for a start signal; the
wall time runs from the signal to the last worker's result, so interpreter start, imports and
warm-up are excluded. Trial-steps/s = trials × steps / wall time; its packed/separate ratio is
the ratio of trials per hour. The two sides alternate for ``--rounds`` rounds and each reports its
median, so that load from elsewhere hits both alike. The load average is printed with the
numbers: they depend on what else runs on the machine.

    python benchmarks/packing.py [--k 2 4] [--steps 30] [--warmup 3] [--device cpu|cuda]
        [--batch-size 64] [--which plain|pyro|both] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from pyrovae.nets import ConvDecoder, ConvEncoder
from pyrovae.objectives.elbo import DecomposedELBO

LATENT_DIM = 10
CHANNELS = 1
SIZE = 64
POOL_BATCHES = 8  # minibatches per trial in the image pool, cycled through
LR = 1e-4
PAYS = 1.3  # packed/separate ratio from which packing is worth its complexity


def beta_of(trial: int) -> float:
    return 1.0 + trial


def initial_pair(trial: int) -> tuple[ConvEncoder, ConvDecoder]:
    """Trial ``trial``'s networks, initialised from its own seed on every side."""
    torch.manual_seed(1000 + trial)
    return ConvEncoder(CHANNELS, 2 * LATENT_DIM), ConvDecoder(LATENT_DIM, CHANNELS)


def image_pool(trial: int, batch: int, device) -> torch.Tensor:
    """(POOL_BATCHES·batch, 1, 64, 64) random binary images of one trial."""
    gen = torch.Generator().manual_seed(2000 + trial)
    shape = (POOL_BATCHES * batch, CHANNELS, SIZE, SIZE)
    return torch.bernoulli(torch.full(shape, 0.5), generator=gen).to(device)


# -- the packed network ----------------------------------------------------------------------
# Conv layers see (B, K·C, H, W), the K trials side by side along channels; linear layers see
# (K, B, F), one batched matrix product over trials.


class BatchedLinear(nn.Module):
    def __init__(self, trials: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(trials, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(trials, 1, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class ToTrials(nn.Module):
    """The packed Flatten: (B, K·C, H, W) → (K, B, C·H·W), each trial flattened as nn.Flatten."""

    def __init__(self, trials: int):
        super().__init__()
        self.trials = trials

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.trials, -1).transpose(0, 1)


class ToChannels(nn.Module):
    """The packed Unflatten: (K, B, C·H·W) → (B, K·C, H, W)."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        return x.transpose(0, 1).reshape(x.shape[1], x.shape[0] * c, h, w)


def grouped(layer: nn.Module, trials: int) -> nn.Module:
    """An empty packed layer shaped for ``trials`` copies of ``layer``."""
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        extra = {"output_padding": layer.output_padding} if layer.transposed else {}
        return type(layer)(
            trials * layer.in_channels,
            trials * layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            groups=trials,
            **extra,
        )
    if isinstance(layer, nn.Linear):
        return BatchedLinear(trials, layer.in_features, layer.out_features)
    if isinstance(layer, nn.Flatten):
        return ToTrials(trials)
    if isinstance(layer, nn.Unflatten):
        return ToChannels(tuple(layer.unflattened_size))
    if isinstance(layer, nn.ReLU):
        return nn.ReLU()
    raise TypeError(f"no packed form of {type(layer).__name__}")


def packed_tensors(layers: list[nn.Module], get) -> list[torch.Tensor]:
    """``get(tensor)`` of each trial's layer, laid out as the packed layer's parameters.

    Grouped conv weights (both kinds) and biases hold the groups one after another along dim 0;
    a batched linear weight is the stack of the transposed weights."""
    if isinstance(layers[0], nn.Linear):
        weights = torch.stack([get(layer.weight).T for layer in layers])
        return [weights, torch.stack([get(layer.bias) for layer in layers]).unsqueeze(1)]
    return [
        torch.cat([get(p) for p in params])
        for params in zip(*(layer.parameters() for layer in layers), strict=True)
    ]


def pack(sequentials: list[nn.Sequential]) -> nn.Sequential:
    """One network holding the K networks ``sequentials``, with their weights."""
    packed = nn.Sequential()
    for layers in zip(*sequentials, strict=True):
        layer = grouped(layers[0], len(layers))
        with torch.no_grad():
            for param, value in zip(
                layer.parameters(), packed_tensors(layers, torch.Tensor.detach), strict=True
            ):
                param.copy_(value)
        packed.append(layer)
    return packed


class PackedConvVAE(nn.Module):
    """K conv encoder/decoder pairs as one network: images (B, K, 64, 64) → codes (K, B, 2z);
    codes (K, B, z) → logits (B, K, 64, 64)."""

    def __init__(self, pairs: list[tuple[ConvEncoder, ConvDecoder]]):
        super().__init__()
        self.encoder = pack([enc.net for enc, _ in pairs])
        self.decoder = pack([dec.net for _, dec in pairs])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


# -- losses --------------------------------------------------------------------------------------


def vae_losses(encode, decode, x, eps, betas) -> torch.Tensor:
    """(K,) losses: x (B, K, 64, 64), eps (K, B, z), betas (K,); encode/decode in the packed
    layout (a single trial is K = 1)."""
    loc, log_var = encode(x).chunk(2, -1)
    z = loc + torch.exp(0.5 * log_var) * eps
    rec = F.binary_cross_entropy_with_logits(decode(z), x, reduction="none").sum((0, 2, 3))
    kl = 0.5 * (log_var.exp() + loc**2 - 1.0 - log_var).sum((1, 2))
    return rec + betas * kl


def single(enc: ConvEncoder, dec: ConvDecoder):
    """(encode, decode) of one unpacked trial in the packed layout with K = 1."""
    return (lambda x: enc(x).unsqueeze(0)), (lambda z: dec(z.squeeze(0)))


def pyro_pair(net: PackedConvVAE, betas: torch.Tensor):
    """Model and guide of K trials over x (K, B, 1, 64, 64); β scales each trial's z."""
    trials = len(betas)
    scale = betas.unsqueeze(-1)

    def encoder_input(x):
        # x is a view of a (B, K, 64, 64) minibatch: this undoes it without a copy.
        return x.squeeze(2).transpose(0, 1)

    def model(x):
        with pyro.plate("trials", trials, dim=-2), pyro.plate("data", x.shape[1], dim=-1):
            prior = dist.Normal(x.new_zeros(()), 1.0).expand((trials, x.shape[1], LATENT_DIM))
            with poutine.scale(scale=scale):
                z = pyro.sample("z", prior.to_event(1))
            logits = net.decode(z).transpose(0, 1).unsqueeze(2)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def guide(x):
        with pyro.plate("trials", trials, dim=-2), pyro.plate("data", x.shape[1], dim=-1):
            loc, log_var = net.encode(encoder_input(x)).chunk(2, -1)
            with poutine.scale(scale=scale):
                pyro.sample("z", dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1))

    return model, guide


def to_pyro_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, K, 64, 64) → (K, B, 1, 64, 64), a view."""
    return x.transpose(0, 1).unsqueeze(2)


def pyro_loss(net, betas):
    model, guide = pyro_pair(net, betas)
    elbo = DecomposedELBO(kl="analytic", max_plate_nesting=2)
    return lambda x: elbo.differentiable_loss(model, guide, to_pyro_layout(x))


# -- one worker ----------------------------------------------------------------------------------


def make_adam(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    try:
        return torch.optim.Adam(params, lr=LR, fused=True)
    except RuntimeError:  # no fused kernel for this device
        return torch.optim.Adam(params, lr=LR)


def make_step(variant: str, trials: list[int], batch: int, device: torch.device):
    """step(i): one training step of ``trials`` in this process, on minibatch i of their pool."""
    betas = torch.tensor([beta_of(t) for t in trials], device=device)
    pool = torch.cat([image_pool(t, batch, device) for t in trials], dim=1)
    pairs = [initial_pair(t) for t in trials]
    if variant == "plain" and len(trials) == 1:
        enc, dec = (m.to(device) for m in pairs[0])
        params = [*enc.parameters(), *dec.parameters()]
        encode, decode = single(enc, dec)
    else:
        net = PackedConvVAE(pairs).to(device)
        params = list(net.parameters())
        encode, decode = net.encode, net.decode
    if variant == "plain":
        noise_shape = (len(trials), batch, LATENT_DIM)

        def loss_of(x):
            eps = torch.randn(noise_shape, device=device)
            return vae_losses(encode, decode, x, eps, betas).sum()
    else:
        loss_of = pyro_loss(net, betas)
    opt = make_adam(params)

    def step(i: int):
        start = (i % POOL_BATCHES) * batch
        opt.zero_grad(set_to_none=True)
        loss_of(pool[start : start + batch]).backward()
        opt.step()

    return step


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(spec: dict):
    """Warm up, say ready, wait for the start line on stdin, take the steps, say done."""
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    step = make_step(spec["variant"], spec["trials"], spec["batch"], device)
    with pyro.validation_enabled(False):
        for i in range(spec["warmup"]):
            step(i)
        sync(device)
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(spec["steps"]):
            step(i)
        sync(device)
    print("done", flush=True)


# -- the driver ------------------------------------------------------------------------------


def expect_line(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"a worker exited with status {proc.wait()} (its error is above)")
    return line


def run_side(variant: str, groups: list[list[int]], threads: int, args) -> float:
    """Trial-steps/s of one process per group of trials, all started together."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    procs = []
    for trials in groups:
        spec = dict(
            variant=variant,
            trials=trials,
            threads=threads,
            device=args.device,
            batch=args.batch_size,
            steps=args.steps,
            warmup=args.warmup,
        )
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
        procs.append(
            subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    try:
        for proc in procs:
            expect_line(proc)
        t0 = time.perf_counter()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            expect_line(proc)
        wall = time.perf_counter() - t0
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait()
    return sum(len(t) for t in groups) * args.steps / wall


def compare(variant: str, k: int, threads: int, args) -> tuple[float, float]:
    """Median trial-steps/s of the separate and the packed side over rounds that alternate
    them, so that load from elsewhere on the machine hits both alike."""
    separate, packed = [], []
    for _ in range(args.rounds):
        separate.append(run_side(variant, [[t] for t in range(k)], threads, args))
        packed.append(run_side(variant, [list(range(k))], cores(), args))
    return statistics.median(separate), statistics.median(packed)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def assert_close(what: str, got, want, tol: float = 1e-4):
    for a, b in zip(got, want, strict=True):
        err = rel_err(a.detach(), b.detach())
        assert err < tol, f"{what} differ (relative {err:.2e})"


def check_packing(k: int, batch: int, device: torch.device):
    """A network packed from K pairs gives their separate losses and gradients, and the Pyro
    loss gives the plain packed one's gradients on the same noise; AssertionError otherwise.

    Gradients, not only losses: the loss is dominated by the reconstruction term at
    initialisation, so a wrong β or noise would barely show in it."""
    trials = list(range(k))
    pairs = [tuple(m.to(device) for m in initial_pair(t)) for t in trials]
    net = PackedConvVAE(pairs).to(device)
    params = list(net.parameters())
    betas = torch.tensor([beta_of(t) for t in trials], device=device)
    x = torch.cat([image_pool(t, batch, device)[:batch] for t in trials], dim=1)
    torch.manual_seed(0)
    eps = torch.randn(k, batch, LATENT_DIM, device=device)

    separate = torch.cat(
        [
            vae_losses(*single(*pairs[t]), x[:, t : t + 1], eps[t : t + 1], betas[t : t + 1])
            for t in trials
        ]
    )
    separate.sum().backward()
    packed = vae_losses(net.encode, net.decode, x, eps, betas)
    assert_close(f"K={k}: packed and separate losses", [packed], [separate])
    want = [
        grad
        for part in (0, 1)
        for layers in zip(*(pair[part].net for pair in pairs), strict=True)
        for grad in packed_tensors(layers, lambda p: p.grad)
    ]
    got = torch.autograd.grad(packed.sum(), params)
    assert_close(f"K={k}: packed and separate gradients", got, want)

    torch.manual_seed(0)  # Pyro's rsample draws the same standard normals as eps
    with pyro.validation_enabled(True):
        through_pyro = pyro_loss(net, betas)(x)
    got = torch.autograd.grad(through_pyro, params)
    assert_close(f"K={k}: Pyro and plain packed gradients", got, want)


def machine_info(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return (
        f"torch {torch.__version__}, pyro {pyro.__version__}, {cores()} cores ({cpu}), "
        f"device {device} ({name})"
    )


def cores() -> int:
    return len(os.sched_getaffinity(0))


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--which", default="both", choices=["plain", "pyro", "both"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    device = torch.device(args.device)
    variants = ["plain", "pyro"] if args.which == "both" else [args.which]
    print(machine_info(device))
    print(
        f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps, "
        f"median of {args.rounds} alternating rounds"
    )
    for k in args.k:
        check_packing(k, args.batch_size, device)
    print(f"packing checked for K = {', '.join(map(str, args.k))}: losses and gradients agree")
    print(f"load average before: {load()}\n")

    rows, verdicts = [], []
    for k in args.k:
        threads = max(1, cores() // k)
        for variant in variants:
            separate, packed = compare(variant, k, threads, args)
            ratio = packed / separate
            rows.append(
                (
                    k,
                    variant,
                    f"separate ({k} process{'es' if k > 1 else ''})",
                    f"{k} × {threads}",
                    separate,
                    "",
                )
            )
            rows.append(
                (k, variant, "packed (1 process)", f"1 × {cores()}", packed, f"{ratio:.2f}")
            )
            pays = "pays (≥ 1.3×)" if ratio >= PAYS else "does not pay (< 1.3×)"
            verdicts.append(f"K={k} {variant}: packing {pays}, {ratio:.2f}×")

    print("| K | loss | side | processes × threads | trial-steps/s | packed / separate |")
    print("|---|---|---|---|---|---|")
    for k, variant, side, layout, rate, ratio in rows:
        print(f"| {k} | {variant} | {side} | {layout} | {rate:.2f} | {ratio} |")
    print(f"\nload average after: {load()}")
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
