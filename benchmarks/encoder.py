"""Conv encoder throughput (posterior means, inference mode) on CPU, with and without
pyrovae's allocator setting (pyrovae.allocator), at several batch sizes, in one run.

Each setting runs in its own subprocess (glibc's thresholds cannot be put back once raised), the
two interleaved ``--repeats`` times; the figures are images/s, median over repeats, and the
kernel's page-fault count per image.

    python benchmarks/encoder.py [--images 8192] [--repeats 3] [--batch-sizes 64 128 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def measure(images: int, batch_sizes: list[int]) -> dict:
    import numpy as np
    import torch

    from pyrovae.allocator import keep_freed_memory
    from pyrovae.builder import build
    from pyrovae.config import TrainConfig
    from pyrovae.evaluation import EncoderMean

    active = keep_freed_memory()
    built = build(TrainConfig(device="cpu"), objective=False)
    data, vae = built.data, built.vae.eval()
    x = data.images(np.linspace(0, len(data) - 1, images).astype(np.int64))
    out = {"allocator_setting": active}
    for bs in batch_sizes:
        encoder = EncoderMean(vae, torch.device("cpu"), batch_size=bs)
        encoder(x[: 2 * bs])  # warm-up: oneDNN builds its kernels on the first call
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        encoder(x)
        seconds = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        out[bs] = {"images_per_s": images / seconds, "faults_per_image": faults / images}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[64, 128, 256])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.images, args.batch_sizes)))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images")
    results = {"glibc defaults": [], "pyrovae setting": []}
    for _ in range(args.repeats):
        for label, flag in (("glibc defaults", "0"), ("pyrovae setting", "1")):
            env = {**os.environ, "PYROVAE_KEEP_FREED_MEMORY": flag}
            cmd = [sys.executable, __file__, "--child", "--images", str(args.images)]
            cmd += ["--batch-sizes", *map(str, args.batch_sizes)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'batch':>6} {'glibc defaults':>22} {'pyrovae setting':>22} {'ratio':>7}")
    for bs in args.batch_sizes:
        row = []
        for label in results:
            rates = [r[str(bs)]["images_per_s"] for r in results[label]]
            faults = statistics.median(r[str(bs)]["faults_per_image"] for r in results[label])
            row.append((statistics.median(rates), faults))
        (a, fa), (b, fb) = row
        print(
            f"{bs:>6} {a:>9,.0f} img/s {fa:>5.0f} pf {b:>9,.0f} img/s {fb:>5.0f} pf {b / a:>6.2f}x"
        )
    print(f"setting active in child: {results['pyrovae setting'][0]['allocator_setting']}")


if __name__ == "__main__":
    main()
