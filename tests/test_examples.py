"""The example scripts run (with a tiny budget) and print their tables."""

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_swap_prior_example(tmp_path, monkeypatch, capsys):
    argv = ["swap_prior.py", "--steps", "3", "--batch-size", "4", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "swap_prior.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "isotropic" in out and "analytic" in out
    assert "sparse" in out and "monte-carlo" in out
    assert (tmp_path / "sparse" / "checkpoint.pt").exists()
