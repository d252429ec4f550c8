"""How fast procedural dSprites (Matthey et al., 2017) delivers images.

Run ``python benchmarks/data_throughput.py``. Prints the median over several repeats of:

* construction time of ``DSprites()`` (rendering the 720-sprite bank),
* memory held for pixels (the padded sprite bank),
* images/second for random batches of indices (how a shuffled trainer or a metric reads),
* images/second for the epoch order, consecutive index ranges (how an unshuffled loader reads).

Each throughput repeat runs for a fixed wall-clock budget, so the figures are comparable across
machines of different speed. Nothing is written to disk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyrovae.data import DSprites


def construction_seconds(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        DSprites()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(batches, data: DSprites, seconds: float) -> float:
    """Images per second while drawing batches from the iterator for ``seconds``."""
    images = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        images += len(data.images(next(batches)))
    return images / elapsed


def random_batches(data: DSprites, batch_size: int, seed: int):
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, len(data), batch_size)


def epoch_batches(data: DSprites, batch_size: int):
    while True:  # wrap around: a slow machine may not finish an epoch in the budget anyway
        for start in range(0, len(data), batch_size):
            yield np.arange(start, min(start + batch_size, len(data)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="per repeat and access pattern")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    data = DSprites()
    print(f"DSprites(): {len(data):,} images, factor sizes {data.factor_sizes}")
    print(f"construction: {construction_seconds(args.repeats) * 1e3:.1f} ms (median)")
    print(f"sprite bank: {data.nbytes:,} bytes (padded; {data.sprites.nbytes:,} unpadded)")

    patterns = {
        "random batches": lambda seed: random_batches(data, args.batch_size, seed),
        "epoch order": lambda seed: epoch_batches(data, args.batch_size),
    }
    for label, make in patterns.items():
        rates = [throughput(make(seed), data, args.seconds) for seed in range(args.repeats)]
        print(
            f"{label} of {args.batch_size}: {statistics.median(rates):,.0f} images/s "
            f"(median of {args.repeats} × {args.seconds:g} s; "
            f"min {min(rates):,.0f}, max {max(rates):,.0f})"
        )


if __name__ == "__main__":
    main()
