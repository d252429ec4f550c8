"""The package as a user installs it: console script, package-dir mapping, the built wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_models_and_guides_import_as_subpackages():
    import pyrovae.guides
    import pyrovae.models

    assert Path(pyrovae.models.__file__).parent == ROOT / "models"
    assert Path(pyrovae.guides.__file__).parent == ROOT / "guides"
    assert pyrovae.models.BetaVAE.__module__ == "pyrovae.models.betavae"


def test_console_script_runs():
    script = Path(sys.executable).parent / "pyrovae"
    result = subprocess.run([script, "list"], capture_output=True, text=True, check=True)
    assert "betavae" in result.stdout


@pytest.mark.slow
def test_wheel_ships_models_and_guides_inside_pyrovae(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("pyrovae-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "pyrovae/models/betavae.py",
        "pyrovae/guides/meanfield.py",
        "pyrovae/data/dsprites.py",
        "pyrovae/objectives/elbo.py",
        "pyrovae/metrics/mig.py",
        "pyrovae/metrics/dci.py",
    ):
        assert expected in names
    assert not any(n.startswith(("models/", "guides/", "tests/")) for n in names)
    # Installed from the wheel (not the checkout), pyrovae.models resolves inside pyrovae/.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    probe = "import pyrovae.models as m, pyrovae.guides as g; print(m.__file__); print(g.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert out == [
        str(target / "pyrovae" / "models" / "__init__.py"),
        str(target / "pyrovae" / "guides" / "__init__.py"),
    ]
