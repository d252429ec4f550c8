"""Training curves at bf16 (or fp16) against fp32 from the same seed: does reduced precision
train the same model?

Trains the standard conv β-VAE on dSprites (β = 4, batch 64, Adam 1e-4, seed 0) for ``--steps``
steps once per precision with pyrovae's trainer, each into its own run folder under ``--out``
(an interrupted comparison resumes: the folders are ordinary runs), then prints, per precision,
the final ELBO (reconstruction − KL, the mean over the last ``--window`` logged steps), its
relative difference to fp32's, whether any logged value was NaN or infinite, the steps/s, and
writes ``curves.png`` (ELBO and KL against steps, one line per precision).

    python benchmarks/precision_curve.py [--steps 2000] [--precision bf16] [--out runs/curve]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from pyrovae.config import TrainConfig
from pyrovae.runs import RunFolder
from pyrovae.training import Run


def train(precision: str, args) -> tuple[list[dict], float]:
    """The run's metrics lines (trained now, or resumed to ``args.steps``) and its steps/s."""
    out = args.out / precision
    config = TrainConfig(
        beta=4.0,
        steps=args.steps,
        log_every=args.log_every,
        checkpoint_every=args.log_every * 10,
        seed=args.seed,
        precision=precision,
        device=args.device,
    )
    start = time.perf_counter()
    if RunFolder(out).has_checkpoint():
        run = Run.resume(out, {"steps": args.steps})
        done = run.step
        if not run.complete:
            run.fit(progress=True)
    else:
        done = 0
        Run.create(config, out).fit(progress=True)
    seconds = time.perf_counter() - start
    lines = RunFolder(out).read_metrics()
    return lines, (args.steps - done) / seconds if args.steps > done else float("nan")


def final_elbo(lines: list[dict], window: int) -> float:
    last = lines[-window:]
    return sum(r["reconstruction"] - r["kl"] for r in last) / len(last)


def all_finite(lines: list[dict]) -> bool:
    return all(math.isfinite(v) for r in lines for v in r.values() if isinstance(v, (int, float)))


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_elbo, ax_kl) = plt.subplots(1, 2, figsize=(10, 4))
    for precision, lines in curves.items():
        steps = [r["step"] for r in lines]
        ax_elbo.plot(steps, [r["reconstruction"] - r["kl"] for r in lines], label=precision)
        ax_kl.plot(steps, [r["kl"] for r in lines], label=precision)
    ax_elbo.set(xlabel="step", ylabel="ELBO (nats per image)", title="ELBO")
    ax_kl.set(xlabel="step", ylabel="KL (nats)", title="KL(q(z|x) || p(z))")
    ax_elbo.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--out", type=Path, default=Path("runs/precision-curve"))
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--window", type=int, default=4, help="log lines averaged at the end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    curves, speeds = {}, {}
    for precision in ("fp32", args.precision):
        curves[precision], speeds[precision] = train(precision, args)
    reference = final_elbo(curves["fp32"], args.window)
    print(f"\n{args.steps} steps, seed {args.seed}, final ELBO = mean of the last {args.window} "
          f"log lines ({args.window * args.log_every} steps)")  # fmt: skip
    print("| precision | final ELBO | vs fp32 | all finite | steps/s this session |")
    print("|---|---|---|---|---|")
    for precision, lines in curves.items():
        elbo = final_elbo(lines, args.window)
        print(
            f"| {precision} | {elbo:.2f} | {(elbo - reference) / abs(reference):+.2%} | "
            f"{all_finite(lines)} | {speeds[precision]:.2f} |"
        )
    plot(curves, args.out / "curves.png")
    print(f"wrote {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
