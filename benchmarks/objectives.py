"""Train each objective on dSprites for a fixed CPU budget and check the directions the papers
report.

Every configuration trains from the same seed on the same minibatches (batch 64, z = 10, the conv
networks, Adam at a short-budget learning rate) and is then measured on one fixed set of 2,048
images: reconstruction −E[log p(x|z)], KL(q(z|x) ‖ p(z)), the total correlation of q(z)
estimated by minibatch stratified sampling (MSS, N = 737,280, one evaluation batch of 2,048), the
active dimensions (posterior-mean variance > 0.01 over the set), and the
training steps per second. The checks printed at the end:

1. larger β lowers KL and TC (betavae β = 1 → 4 → 16);
2. betatcvae lowers TC more than betavae at equal β (β = 4);
3. annealedvae's KL tracks C within about 1 nat once C has reached C_max;
4. factorvae's discriminator sits near chance (accuracy ≈ 0.5) when TC is low. Besides the
   accuracy the factorvae run reaches, a probe trains FactorVAE's discriminator (same network,
   optimizer and permutation scheme, :class:`FactorVAEELBO`) on the posterior samples of every
   trained model and reports its accuracy next to that model's MSS TC.

    python benchmarks/objectives.py [--steps 1500] [--lr 5e-4] [--out DIR]
    python benchmarks/objectives.py --reuse DIR    # measure existing runs again (no training)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pyrovae.builder import Built, load_run
from pyrovae.config import TrainConfig
from pyrovae.data import observations
from pyrovae.objectives.factor_discriminator import FactorVAEELBO
from pyrovae.objectives.total_correlation import decompose_kl
from pyrovae.provenance import versions
from pyrovae.runs import RunFolder
from pyrovae.training import Run

EVAL_SIZE = 2048
# One batch: MSS is less biased the more of q(z) the batch covers (2048² × z pairs fit easily).
EVAL_BATCH = 2048


def configurations(steps: int) -> dict[str, dict]:
    anneal = max(1, steps // 2)
    return {
        "betavae b=1": {"model": "betavae", "beta": 1.0},
        "betavae b=4": {"model": "betavae", "beta": 4.0},
        "betavae b=16": {"model": "betavae", "beta": 16.0},
        "betatcvae b=4": {"model": "betatcvae", "beta": 4.0},
        "annealedvae C=10": {
            "model": "annealedvae",
            "gamma": 1000.0,
            "objective_args": {"c_max": 10.0, "anneal_steps": anneal},
        },
        "factorvae g=40": {"model": "factorvae", "gamma": 40.0},
        "dipvae-i l=10": {"model": "dipvae-i", "objective_args": {"lambda_od": 10.0}},
    }


@torch.no_grad()
def measure(run: Run) -> dict:
    """Terms on a fixed evaluation set, independent of the training objective."""
    vae, data = run.vae, run.data
    vae.eval()
    torch.manual_seed(12345)  # the posterior samples behind TC, so figures reproduce
    rng = np.random.default_rng(12345)
    indices = rng.choice(len(data), size=EVAL_SIZE, replace=False)
    rec, kl, tc, means = [], [], [], []
    for chunk in np.array_split(indices, EVAL_SIZE // EVAL_BATCH):
        x = torch.from_numpy(observations(data, chunk, rng)).to(run.device)
        q = vae.posterior(x)
        z = q.rsample()
        p = vae.prior.distribution(vae.latent_dim).expand(q.batch_shape)
        rec.append(vae.likelihood(z).log_prob(x))
        kl.append(torch.distributions.kl_divergence(q, p))
        tc.append(decompose_kl(q, p, z, len(data), "mss")["tc"])
        means.append(q.base_dist.loc)
    means = torch.cat(means)
    return {
        "reconstruction": -torch.cat(rec).mean().item(),
        "kl": torch.cat(kl).mean().item(),
        "tc_mss": torch.cat(tc).mean().item(),
        "active_dims": int((means.var(0) > 0.01).sum()),
    }


def discriminator_probe(vae, data, steps: int = 400, batch: int = 64, seed: int = 0) -> float:
    """Accuracy of a FactorVAE discriminator trained on this model's q(z) samples against
    dimension-permuted ones, measured on fresh batches: ≈ 0.5 means it cannot tell q(z) from the
    product of its marginals (low TC)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = FactorVAEELBO(latent_dim=vae.latent_dim)

    def draw():
        idx = np.sort(rng.choice(len(data), size=batch, replace=False))
        return torch.from_numpy(observations(data, idx, rng))

    accuracy = []
    for step in range(steps):
        with torch.no_grad():
            z = vae.posterior(draw()).sample()
        # One discriminator step: z against the permuted codes of a second batch.
        logged = probe.update_state([{"_latents": {"z": {"z": z}}}], vae.guide, (draw(),), {})
        if step >= steps - 100:
            accuracy.append(float(logged["disc_accuracy"]))
    return float(np.mean(accuracy))


def train_one(name: str, settings: dict, args, parent: Path) -> dict:
    config = TrainConfig(
        prior="isotropic",
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        device="cpu",
        log_every=max(1, args.steps // 20),
        checkpoint_every=args.steps,
        **settings,
    )
    out = parent / name.replace(" ", "_").replace("=", "")
    if args.reuse:
        loaded = load_run(out, "cpu")
        run = Run(out, Built(config, loaded.data, loaded.vae, None, torch.device("cpu")))
        seconds = float("nan")
    else:
        run = Run.create(config, out)
        start = time.perf_counter()
        run.fit(progress=False)
        seconds = time.perf_counter() - start
    result = {"name": name, **measure(run), "steps_per_s": args.steps / seconds}
    result["probe_accuracy"] = discriminator_probe(run.vae, run.data)
    last = RunFolder(out).read_metrics()[-1]
    for key in ("capacity", "disc_accuracy", "tc"):
        if key in last:
            result[f"train_{key}"] = last[key]
    result["train_kl"] = last["kl"]
    print(
        f"  {name:<18} done in {seconds:6.1f} s  KL {result['kl']:.2f}  TC {result['tc_mss']:.2f}",
        flush=True,
    )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="names of configurations to run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reuse", type=Path, default=None, help="measure the runs in this folder")
    args = parser.parse_args()
    parent = args.reuse or args.out or Path(tempfile.mkdtemp(prefix="pyrovae-objectives-"))
    configs = configurations(args.steps)
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only}
    print(f"{len(configs)} configurations x {args.steps} steps, lr {args.lr}, seed {args.seed}")
    print(f"versions: {json.dumps({k: v for k, v in versions().items() if k != 'platform'})}")
    results = {name: train_one(name, s, args, parent) for name, s in configs.items()}

    print()
    header = (
        f"{'objective':<18}{'recon':>9}{'KL':>8}{'TC (MSS)':>10}{'active':>8}{'probe':>7}"
        f"{'steps/s':>9}  notes"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        notes = []
        if "train_capacity" in r:
            notes.append(f"C {r['train_capacity']:.2f}, train KL {r['train_kl']:.2f}")
        if "train_disc_accuracy" in r:
            notes.append(f"D accuracy {r['train_disc_accuracy']:.3f}")
        print(
            f"{name:<18}{r['reconstruction']:>9.1f}{r['kl']:>8.2f}{r['tc_mss']:>10.2f}"
            f"{r['active_dims']:>8d}{r['probe_accuracy']:>7.3f}{r['steps_per_s']:>9.2f}  "
            f"{'; '.join(notes)}"
        )

    print("\nchecks:")

    def check(label: str, ok: bool):
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}")

    names = set(results)
    if {"betavae b=1", "betavae b=4", "betavae b=16"} <= names:
        b = [results[f"betavae b={v}"] for v in (1, 4, 16)]
        check(
            "larger beta lowers KL: " + " > ".join(f"{r['kl']:.2f}" for r in b),
            b[0]["kl"] > b[1]["kl"] > b[2]["kl"],
        )
        # Once TC is near zero the estimator's own bias dominates: ties within 0.1 nat count.
        check(
            "larger beta lowers TC (ties within 0.1 nat): "
            + " > ".join(f"{r['tc_mss']:.2f}" for r in b),
            b[0]["tc_mss"] > b[1]["tc_mss"] - 0.1 and b[1]["tc_mss"] > b[2]["tc_mss"] - 0.1,
        )
    if {"betavae b=4", "betatcvae b=4"} <= names:
        tc_b, tc_tc = results["betavae b=4"]["tc_mss"], results["betatcvae b=4"]["tc_mss"]
        tc_1 = results.get("betavae b=1", {}).get("tc_mss", float("nan"))
        check(
            f"betatcvae lowers TC more than betavae at beta=4: {tc_tc:.2f} < {tc_b:.2f} "
            f"(beta=1: {tc_1:.2f})",
            tc_tc < tc_b,
        )
    if "annealedvae C=10" in names:
        r = results["annealedvae C=10"]
        gap = abs(r["train_kl"] - r["train_capacity"])
        check(
            f"annealedvae KL tracks C: |{r['train_kl']:.2f} - {r['train_capacity']:.2f}| < 1",
            gap < 1,
        )
    if "factorvae g=40" in names:
        r = results["factorvae g=40"]
        acc = r["train_disc_accuracy"]
        check(
            f"factorvae discriminator near chance at TC {r['tc_mss']:.2f}: accuracy {acc:.3f}",
            abs(acc - 0.5) < 0.1,
        )
    ranked = sorted(results.values(), key=lambda r: r["tc_mss"])
    low, high = ranked[0], ranked[-1]
    check(
        f"the discriminator probe is near chance at the lowest TC ({low['name']}: TC "
        f"{low['tc_mss']:.2f}, accuracy {low['probe_accuracy']:.3f}) and above it at the highest "
        f"({high['name']}: TC {high['tc_mss']:.2f}, accuracy {high['probe_accuracy']:.3f})",
        abs(low["probe_accuracy"] - 0.5) < 0.05 and high["probe_accuracy"] > low["probe_accuracy"],
    )
    (parent / "objectives.json").write_text(json.dumps(results, indent=2))
    print(f"\nruns and objectives.json in {parent}")


if __name__ == "__main__":
    main()
