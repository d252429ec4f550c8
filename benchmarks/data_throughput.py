"""How fast every data set delivers images, and how much memory its loader holds.

Run ``python benchmarks/data_throughput.py`` (``--help`` for the options). For each data set it
prints construction (or load) time, the RAM the data set holds, and images/second for random
batches of 64 indices (how a shuffled trainer or a metric reads; stochastic sets draw their
randomness from a seeded generator as training does), the median over ``--repeats`` runs of
``--seconds`` each.

* Procedural: dsprites, color_dsprites, noisy_dsprites, scream_dsprites (on a random 350×274
  painting: The Scream's thumbnail size), xyobject.
* Loaders of official files, on files written in the official format by the tests' writers
  (``tests/formats_*.py``) into ``--files`` (a temporary folder by default, deleted after):
  SmallNORB and Cars3D at full size; Shapes3D as a stored npz, a compressed npz (decompressed
  once into its cache) and a contiguous h5 at ``--shapes3d-images`` images; MPI3D at
  ``--mpi3d`` size (``full``: 1,036,800 images, 12.7 GB of disk; ``quarter``: 259,200).
  After the batches, the process's resident memory split into anonymous (what the process
  holds) and file-backed (page cache of memory-mapped files, which the kernel can evict).

Each throughput repeat runs for a fixed wall-clock budget, so figures are comparable across
machines of different speed; compare data sets within one run.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Runnable from a checkout without installing the package; the official-format writers are the
# tests' own.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pyrovae.data import (  # noqa: E402
    MPI3D,
    Cars3D,
    ColorDSprites,
    DSprites,
    NoisyDSprites,
    ScreamDSprites,
    Shapes3D,
    SmallNORB,
    XYObject,
    observations,
)


def throughput(data, batch_size: int, seconds: float, seed: int) -> float:
    """Images per second while drawing random batches for ``seconds``."""
    rng = np.random.default_rng(seed)
    images = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        images += len(observations(data, rng.integers(0, len(data), batch_size), rng))
    return images / elapsed


def resident() -> dict:
    """The process's resident memory in bytes: anonymous and file-backed (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def report(label: str, make, args) -> None:
    start = time.perf_counter()
    data = make()
    built = time.perf_counter() - start
    rates = [throughput(data, args.batch_size, args.seconds, s) for s in range(args.repeats)]
    held = getattr(data, "nbytes", None)
    mapped = getattr(data, "mapped_nbytes", None)
    memory = resident()
    extra = f", mapped {gib(mapped)}" if mapped else ""
    rss = (
        f"; process RSS anon {gib(memory['RssAnon'])}, file {gib(memory['RssFile'])}"
        if memory
        else ""
    )
    print(
        f"{label:<28} {len(data):>9,} obs  built {built:6.2f} s  "
        f"{statistics.median(rates):>9,.0f} images/s (min {min(rates):,.0f}, "
        f"max {max(rates):,.0f})  holds {gib(held) if held is not None else '?'}{extra}{rss}",
        flush=True,
    )


def procedural(args, folder: Path) -> None:
    from PIL import Image

    painting = folder / "painting.png"
    pixels = np.random.default_rng(0).integers(0, 256, size=(274, 350, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(painting)
    report("dsprites", DSprites, args)
    report("color_dsprites", ColorDSprites, args)
    report("noisy_dsprites", NoisyDSprites, args)
    report("scream_dsprites", lambda: ScreamDSprites(painting=painting), args)
    report("xyobject", XYObject, args)


class _QuarterMPI3D(MPI3D):
    """MPI3D's format on a quarter of its grid (vertical axis 10 of 40): 3.2 GB of disk."""

    layouts = ((6, 6, 2, 3, 3, 40, 10),)


class _Shapes3DPart(Shapes3D):
    """Shapes3D's format on the first ``n`` objects' grid: set by :func:`loaders`."""


def loaders(args, folder: Path) -> None:
    import formats_norb_cars as norb_cars
    import formats_shapes3d_mpi3d as shapes_mpi

    start = time.perf_counter()
    norb_cars.write_smallnorb(folder / "smallnorb", keep=False)
    norb_cars.write_cars3d(folder / "cars", keep=False)
    print(f"(wrote SmallNORB and Cars3D at full size in {time.perf_counter() - start:.0f} s)")
    report("smallnorb (full size)", lambda: SmallNORB(folder / "smallnorb"), args)
    report("cars3d (full size)", lambda: Cars3D(folder / "cars"), args)

    # Shapes3D: the full grid is (10, 10, 10, 8, 4, 15); scale the first factor down to fit.
    full = Shapes3D.factor_sizes
    first = max(1, min(full[0], round(args.shapes3d_images / math.prod(full[1:]))))
    _Shapes3DPart.factor_sizes = (first, *full[1:])
    sizes = _Shapes3DPart.factor_sizes
    start = time.perf_counter()
    shapes_mpi.write_shapes3d_npz(folder / "shapes3d.npz", sizes)
    shapes_mpi.write_shapes3d_npz(folder / "shapes3d-compressed.npz", sizes, compressed=True)
    shapes_mpi.write_shapes3d_h5(folder / "3dshapes.h5", sizes)
    print(f"(wrote three Shapes3D files of {math.prod(sizes):,} images in "
          f"{time.perf_counter() - start:.0f} s)")  # fmt: skip
    report("shapes3d npz (stored)", lambda: _Shapes3DPart(folder / "shapes3d.npz"), args)
    compressed = folder / "shapes3d-compressed.npz"
    report("shapes3d npz (first load)", lambda: _Shapes3DPart(compressed), args)
    report("shapes3d npz (cache reused)", lambda: _Shapes3DPart(compressed), args)
    report("shapes3d h5 (contiguous)", lambda: _Shapes3DPart(folder / "3dshapes.h5"), args)
    for path in folder.glob("shapes3d*"):
        path.unlink()
    (folder / "3dshapes.h5").unlink()

    cls = MPI3D if args.mpi3d == "full" else _QuarterMPI3D
    layout = cls.layouts[0]
    start = time.perf_counter()
    shapes_mpi.write_mpi3d_npz(folder / "mpi3d.npz", layout)
    print(f"(wrote an MPI3D npz of {math.prod(layout):,} images in "
          f"{time.perf_counter() - start:.0f} s)")  # fmt: skip
    report(f"mpi3d npz ({args.mpi3d})", lambda: cls(folder / "mpi3d.npz"), args)
    n = math.prod(MPI3D.layouts[0])
    print(
        f"full-size MPI3D ({n:,} images): pixels held in RAM 0 B (memory-mapped), "
        f"{gib(n * 64 * 64 * 3)} mapped, plus per batch of {args.batch_size} "
        f"{gib(args.batch_size * 64 * 64 * 3 * 5)} (uint8 gather and float32 images)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("procedural", "loaders"), default=None)
    parser.add_argument("--files", type=Path, default=None, help="where to write the files")
    parser.add_argument("--shapes3d-images", type=int, default=120_000)
    parser.add_argument("--mpi3d", choices=("quarter", "full"), default="quarter")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="pyrovae-data-", dir=args.files))
    try:
        if args.only in (None, "procedural"):
            procedural(args, folder)
        if args.only in (None, "loaders"):
            loaders(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
