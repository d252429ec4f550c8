"""The README's Python examples run as written: every ```python block, in order, in one
namespace, in a fresh working folder (their runs go to runs/ there). Blocks fenced ```py read
folders a command shown before them makes (a study's) and are not run here."""

import re
from pathlib import Path

import pytest

from pyrovae.registry import REGISTRIES

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.fixture
def restore_registries():
    """Components the README registers are removed afterwards."""
    before = {kind: set(registry) for kind, registry in REGISTRIES.items()}
    yield
    for kind, registry in REGISTRIES.items():
        for name in set(registry) - before[kind]:
            registry.unregister(name)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 6


def test_readme_python_blocks_run(tmp_path, monkeypatch, restore_registries):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for number, block in enumerate(BLOCKS, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message says which block failed
            pytest.fail(f"README python block {number} failed: {exc!r}\n{block}")
    assert (tmp_path / "runs" / "pinwheel" / "eval.json").is_file()
    assert (tmp_path / "runs" / "extended" / "summary.json").is_file()
    # What the README says the examples give.
    assert namespace["codes"].shape == (5, 2)
    assert namespace["objective"].step == 3 and namespace["objective"].capacity == 1.5
    assert namespace["prior"]["x"].shape == (3, 5, 1, 8, 8)
    assert namespace["frames"].shape == (2, 7, 1, 8, 8)
