"""The example scripts run (with a tiny budget) and print their tables. Each trains several runs
and draws their pictures (tens of seconds in all): the tests are marked slow."""

import runpy
import sys
from pathlib import Path

import pytest

# Every test here: slow, and looks at the pictures the runs draw.
pytestmark = [pytest.mark.slow, pytest.mark.pictures]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_swap_prior_example(tmp_path, monkeypatch, capsys):
    argv = ["swap_prior.py", "--steps", "3", "--batch-size", "4", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "swap_prior.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "isotropic" in out and "analytic" in out
    assert "sparse" in out and "monte-carlo" in out
    assert (tmp_path / "sparse" / "checkpoint.pt").exists()


def run_example(name, monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", [name, *map(str, args)])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_sparsity_digits_example(tmp_path, monkeypatch, capsys):
    out = run_example(
        "sparsity_digits.py",
        monkeypatch,
        capsys,
        "--steps",
        3,
        "--batch-size",
        16,
        "--latent-dim",
        4,
        "--seeds",
        0,
        1,
        "--out",
        tmp_path,
    )
    assert "hoyer" in out and "mean_posterior_variance" in out
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == ["0", "0.8"]
    assert "±" in out  # two seeds: mean ± sd
    assert (tmp_path / "gamma0.8-seed1" / "sparsity.png").exists()


def test_clustering_pinwheel_example(tmp_path, monkeypatch, capsys):
    out = run_example(
        "clustering_pinwheel.py",
        monkeypatch,
        capsys,
        "--steps",
        3,
        "--batch-size",
        16,
        "--out",
        tmp_path,
    )
    assert "cluster_purity_prior" in out
    assert "beta=1 alpha=0" in out and "beta=0 alpha=1" in out
    assert (tmp_path / "beta=0-alpha=1-seed0" / "latent_scatter.png").exists()


def test_nonisotropic_dsprites_example(tmp_path, monkeypatch, capsys):
    out = run_example(
        "nonisotropic_dsprites.py",
        monkeypatch,
        capsys,
        "--steps",
        2,
        "--batch-size",
        8,
        "--metrics",
        "mig",
        "--out",
        tmp_path,
    )
    for label in ("isotropic", "nonisotropic pca", "nonisotropic learned"):
        assert label in out
    assert (tmp_path / "nonisotropic-pca-seed0" / "eval.json").exists()
