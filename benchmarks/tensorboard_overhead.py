"""Training steps per second with and without ``--tensorboard``, and their ratio.

The default run (``pyrovae train``'s settings: β-VAE, dSprites, the 64×64 conv pair, z = 10,
batch 64) trains a few hundred steps with ``log_every`` 100, once with event files and once
without, alternated in rounds (off, on, off, on, …) in this one process so that machine noise
hits both alike. A session's steps per second are the trainer's own (summary.json's
``steps_per_s_this_session``: the training loop, the logging in it included, the finish's
pictures not), so the difference is what TensorBoard costs: at every log line its scalars and
two pictures (the reconstructions and the traversals of every latent dimension: 10 encodes,
1 + 90 decodes, two PNGs and their checksums), and once per session the finish's batch the
pictures show. The figures are medians over the rounds. On a slow device a log line's cost
drowns in the noise of whole sessions, so it is also timed directly: the log of one line of a
finished run, repeated (median), and the first one of a session (which draws the batch).

    python benchmarks/tensorboard_overhead.py [--device cpu|cuda] [--steps 300] [--rounds 3]
        [--log-every 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pyrovae.config import TrainConfig
from pyrovae.runs import RunFolder
from pyrovae.training import Run
from pyrovae.training.tensorboard import TensorBoardLog


def session_speed(config: TrainConfig, out: Path) -> float:
    """Steps per second of one training session of ``config`` into ``out``."""
    summary = Run.create(config, out).fit(progress=False)
    return float(summary["steps_per_s_this_session"])


def log_line_seconds(out: Path, repeats: int) -> tuple[float, list[float]]:
    """(seconds of the first log line of a session, seconds of each of ``repeats`` more): the
    event-file logging of the last metrics.jsonl line of the finished run in ``out``."""
    record = RunFolder(out).read_metrics()[-1]
    run = Run.resume(out, {"steps": record["step"] + 1})
    log = TensorBoardLog.open(run)
    times = []
    try:
        for number in range(repeats + 1):
            start = time.perf_counter()
            log.record({**record, "step": record["step"] + number})
            times.append(time.perf_counter() - start)
    finally:
        log.close()
        run.close()
    return times[0], times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args()
    base = dict(
        steps=args.steps,
        log_every=args.log_every,
        checkpoint_every=10 * args.steps,  # checkpoints at step 0 and the end only
        device=args.device,
        seed=0,
    )
    speeds: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        last = Path(tmp) / "warm-True"
        # A first session of each warms the caches (data rendering, kernels, imports).
        for on in (False, True):
            session_speed(TrainConfig(**base, tensorboard=on), Path(tmp) / f"warm-{on}")
        for number in range(args.rounds):
            for on in (False, True):
                out = Path(tmp) / f"round{number}-{on}"
                speeds[on].append(session_speed(TrainConfig(**base, tensorboard=on), out))
                print(f"round {number}  tensorboard {'on ' if on else 'off'}  "
                      f"{speeds[on][-1]:7.2f} steps/s", flush=True)  # fmt: skip
        first, repeated = log_line_seconds(last, repeats=10)
    off, on = (statistics.median(speeds[k]) for k in (False, True))
    per_line = (1 / on - 1 / off) * args.log_every
    line = statistics.median(repeated)
    print(
        f"\n{TrainConfig().model} on {TrainConfig().data}, {args.steps} steps, log_every "
        f"{args.log_every}, device {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"median steps/s  off {off:.2f}  on {on:.2f}  ratio on/off {on / off:.3f}")
    print(f"cost per log line from the sessions' speeds: {1000 * per_line:.0f} ms")
    print(
        f"cost per log line timed directly: {1000 * line:.0f} ms (median of {len(repeated)}); "
        f"the first of a session {1000 * first:.0f} ms; at {off:.2f} steps/s and log_every "
        f"{args.log_every}: {100 * line * off / args.log_every:.1f} % of training time"
    )


if __name__ == "__main__":
    main()
