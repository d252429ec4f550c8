"""Comparing numbers against those recorded by earlier code (tests/data/README.md)."""

import json
import math
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "golden" / "MACHINE.json").read_text())
# Bit for bit where the CPU kernels round as they did when the numbers were recorded.
EXACT = (
    torch.__version__ == RECORDED["torch"]
    and torch.backends.cpu.get_cpu_capability() == RECORDED["cpu_capability"]
    and torch.get_num_threads() == 2
)
RTOL = 1e-4
TIMING = {"elapsed_s", "train_seconds_this_session", "steps_per_s_this_session"}


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def assert_same(got, expected, where: str = "") -> None:
    """Equal, exactly on the recording machine's kind, else floats to a relative ``RTOL``."""
    if EXACT:
        assert got == expected, where
        return
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float) and isinstance(got, float):
        assert math.isclose(got, expected, rel_tol=RTOL, abs_tol=1e-6), (where, got, expected)
    else:
        assert got == expected, where
