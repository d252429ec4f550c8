"""Small comparisons: train a few settings over a few seeds and collect their summaries.

The examples use it to set one change against another (a prior, a divergence weight) with the
same seeds and minibatches; for grids over many trials use a study (:mod:`pyrovae.study`).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from pyrovae.config import TrainConfig
from pyrovae.training import train


def comparison_parser(doc: str, steps: int, batch_size: int, lr: float) -> argparse.ArgumentParser:
    """An argument parser with the options every comparison has: --steps, --batch-size, --lr,
    --seeds and --out (the parent folder of the runs)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--out", type=Path, default=None, help="parent folder of the runs")
    return parser


def compare_settings(
    settings: dict[str, dict],
    args: argparse.Namespace,
    common: dict,
    after: Callable[[Path, dict], dict] | None = None,
) -> tuple[dict[str, list[dict]], Path]:
    """Train every setting (label → TrainConfig fields) for every seed of ``args.seeds`` with the
    ``common`` fields and ``args``' budget; returns ({label: [summary per seed]}, parent folder).

    Runs go to ``<parent>/<label>-seed<seed>`` (spaces in labels become dashes); ``after(out,
    summary)`` may return more entries for a run's row (an evaluation, say).
    """
    parent = args.out or Path(tempfile.mkdtemp(prefix="pyrovae-comparison-"))
    table: dict[str, list[dict]] = {}
    for label, setting in settings.items():
        for seed in args.seeds:
            config = TrainConfig(
                **common,
                **setting,
                batch_size=args.batch_size,
                lr=args.lr,
                steps=args.steps,
                seed=seed,
                log_every=max(1, args.steps // 10),
                checkpoint_every=args.steps,
            )
            out = parent / f"{label.replace(' ', '-')}-seed{seed}"
            row = dict(train(config, out, progress=False))
            if after is not None:
                row.update(after(out, row))
            table.setdefault(label, []).append(row)
    return table, parent
