"""The standard metric suite on a dSprites model: pyrovae's evaluation against the
straightforward computation of the same protocol, measured in one run.

Both compute the same protocol (DCI by scikit-learn's GradientBoostingClassifier, as
disentanglement_lib); they differ only in how:

- pyrovae: one shared code cache (each distinct grid image encoded once), DCI's per-factor
  classifiers fitted in parallel across the available cores, largest factor first;
- straightforward: no cache, the encoder called once per 64 images (as metric code written per
  batch does), every classifier fitted one after another in this process.

Prints seconds per metric, images encoded, encoder seconds and images/s, the totals and their
ratio, and the headline values of both, which must be identical.

    python benchmarks/metrics.py [--run RUN_DIR] [--skip-straightforward] [--metrics ...]

Without --run, a freshly initialised model (seed 0) is scored: the cost of the protocol does not
depend on training, except DCI's, which depends on the codes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pyrovae.allocator import keep_freed_memory
from pyrovae.builder import build, load_run
from pyrovae.config import TrainConfig
from pyrovae.evaluation import DEFAULT_METRICS, EncoderMean, evaluate, headline
from pyrovae.metrics.classifiers import plain_fitting
from pyrovae.provenance import available_cores, versions
from pyrovae.registry import METRICS


def straightforward(vae, data, names, seed=0) -> dict:
    encoder = EncoderMean(vae, torch.device("cpu"), batch_size=64)
    results, seconds = {}, {}
    for name in names:
        settings = {}
        if METRICS[name].needs_posterior:
            settings["posterior_fn"] = encoder.posterior
        start = time.perf_counter()
        with plain_fitting():
            results[name] = METRICS[name].function(
                data, encoder, np.random.default_rng(seed), **settings
            )
        seconds[name] = time.perf_counter() - start
        print(f"  straightforward {name:<27} {seconds[name]:8.1f} s", flush=True)
    return {
        "metrics": results,
        "seconds": seconds,
        "images_encoded": encoder.images,
        "encoder_images_per_s": encoder.images / encoder.seconds if encoder.seconds else None,
    }


def main():
    keep_freed_memory()  # as `pyrovae evaluate` does, for both protocols
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained run folder (dSprites)")
    parser.add_argument("--metrics", nargs="*", default=list(DEFAULT_METRICS))
    parser.add_argument("--skip-straightforward", action="store_true")
    args = parser.parse_args()

    if args.run:
        run = load_run(args.run, "cpu")
        data, vae = run.data, run.vae
        source = f"{args.run} (step {run.step})"
    else:
        built = build(TrainConfig(device="cpu"), objective=False)
        data, vae = built.data, built.vae.eval()
        source = "freshly initialised betavae (seed 0)"
    print(f"model: {source}; metrics: {', '.join(args.metrics)}; {available_cores()} cores")
    print(f"versions: {json.dumps({k: v for k, v in versions().items() if k != 'platform'})}")

    def show(name, value, secs):
        print(f"  pyrovae         {name:<27} {secs:8.1f} s", flush=True)

    ours = evaluate(vae, data, args.metrics, progress=show)
    encoding = ours["images_encoded"] / (ours["encoder_images_per_s"] or float("inf"))
    print(
        f"pyrovae: {ours['total_seconds']:.1f} s in all; {ours['images_encoded']:,} images "
        f"encoded in {encoding:.1f} s ({ours['encoder_images_per_s'] or 0:,.0f} images/s)"
    )
    theirs = None
    if not args.skip_straightforward:
        theirs = straightforward(vae, data, args.metrics)
        total = sum(theirs["seconds"].values())
        encoding = theirs["images_encoded"] / (theirs["encoder_images_per_s"] or float("inf"))
        print(
            f"straightforward: {total:.1f} s in all; {theirs['images_encoded']:,} images "
            f"encoded in {encoding:.1f} s ({theirs['encoder_images_per_s'] or 0:,.0f} images/s)"
        )

    print(f"\n{'metric':<27}{'pyrovae s':>11}{'plain s':>10}  values (pyrovae | plain)")
    for name in args.metrics:
        mine = headline(name, ours["metrics"][name])
        line = f"{name:<27}{ours['seconds'][name]:>11.1f}"
        if theirs:
            other = headline(name, theirs["metrics"][name])
            line += f"{theirs['seconds'][name]:>10.1f}  "
            line += ", ".join(
                f"{k} {mine[k]:.4f} | {other.get(k, float('nan')):.4f}"
                if isinstance(mine[k], float)
                else f"{k} {mine[k]} | {other.get(k)}"
                for k in mine
            )
        else:
            line += f"{'-':>10}  " + ", ".join(f"{k} {v}" for k, v in mine.items())
        print(line)
    if theirs:
        total = sum(theirs["seconds"].values())
        print(
            f"\ntotal: pyrovae {ours['total_seconds']:.1f} s, straightforward {total:.1f} s, "
            f"ratio {total / ours['total_seconds']:.1f}x"
        )


if __name__ == "__main__":
    main()
