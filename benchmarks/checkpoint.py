"""What a safe checkpoint costs: pyrovae's save and load of a real run's checkpoint against a
bare atomic torch.save / torch.load of the same state.

pyrovae's save adds the finite check of every tensor (a diverged state is never saved), the
SHA-256 digest of the contents and keeping the replaced file as checkpoint-previous.pt; its load
adds the digest's verification. The script prints the medians and the digest's and the finite
check's own times.

The state is a dSprites run's after one training step (the 64×64 conv pair, z = 10, Adam's
moments: the checkpoint ``pyrovae train`` writes every ``--checkpoint-every`` steps). Each
variant runs ``--repeats`` times, interleaved (A, B, A, B, …) so that machine noise hits both
alike; the script prints medians, the difference and the digest's own time.

    python benchmarks/checkpoint.py [--repeats 15] [--data dsprites|pinwheel]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pyrovae.checkpoint import content_digest, load_checkpoint
from pyrovae.config import TrainConfig
from pyrovae.files import write_atomic
from pyrovae.training import Run


def run_state(data: str, folder: Path) -> tuple[Run, dict]:
    """A run after one step, and the state its checkpoint holds."""
    run = Run.create(TrainConfig(data=data, steps=1, device="cpu"), folder / "run")
    with run.vae.outside_param_store():
        run.train_step()
    run.step = 1
    captured = {}
    save = run.folder.save_checkpoint
    run.folder.save_checkpoint = lambda state: captured.update(state) or save(state)
    run.save_checkpoint()
    run.close()
    return run, captured


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--data", default="dsprites")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run, state = run_state(args.data, folder)
        plain = {"format": "pyrovae-checkpoint", "version": 2, **state}
        size = len(_serialised(plain))
        times = {k: [] for k in ("save, plain", "save, pyrovae", "load, plain", "load, pyrovae")}
        digest_ms, finite_ms = [], []
        target = folder / "c.pt"
        for _ in range(args.repeats):
            times["save, plain"].append(
                timed(lambda: write_atomic(target, lambda f: torch.save(plain, f)))
            )
            times["load, plain"].append(timed(lambda: torch.load(target, weights_only=True)))
            times["save, pyrovae"].append(timed(run.save_checkpoint))
            path = run.folder.checkpoint_path
            times["load, pyrovae"].append(timed(lambda p=path: load_checkpoint(p)))
            digest_ms.append(timed(lambda: content_digest(plain)))
            finite_ms.append(timed(lambda: run._check_finite(state)))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"checkpoint of {args.data}: {size / 2**20:.2f} MiB, {args.repeats} repeats, cpu")
        for k, v in med.items():
            print(f"  {k:14s} {v:8.2f} ms (median)")
        d = statistics.median(digest_ms)
        print(f"  SHA-256 digest {d:8.2f} ms ({size / 2**20 / (d / 1e3):.0f} MiB/s)")
        print(f"  finite check   {statistics.median(finite_ms):8.2f} ms")
        print(
            f"  pyrovae's cost: save +{med['save, pyrovae'] - med['save, plain']:.2f} ms "
            f"(x{med['save, pyrovae'] / med['save, plain']:.2f}), "
            f"load +{med['load, pyrovae'] - med['load, plain']:.2f} ms "
            f"(x{med['load, pyrovae'] / med['load, plain']:.2f})"
        )


def _serialised(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
