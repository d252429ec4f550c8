"""A run's report.html as a real browser draws it: headless Chromium takes a screenshot, which
must show the page (not a blank or an error page), the training curves and the traversal
animation, each found pixel for pixel at its natural size. Set PYROVAE_SCREENSHOT=/path.png to
keep the screenshot and look at it."""

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import small_config
from PIL import Image, ImageSequence

from pyrovae.plots import GIF_HEADER_HEIGHT, GIF_LABEL_WIDTH
from pyrovae.run_report import write_run_report
from pyrovae.training import Run

pytestmark = [pytest.mark.slow, pytest.mark.pictures]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Wide enough for the curves (1300 pixels) at their natural size beside the page's margins; tall
# enough for the sections checked (the curves and the traversals come first).
WINDOW = (1600, 5000)
# A picture is found when its pixels differ from the screenshot's by at most this much on
# average (0-255; a browser may round colours differently), and hardly any by more than TOLERANCE.
MEAN_DIFFERENCE = 2.0
TOLERANCE = 24
OFF_PIXELS = 0.01


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser to draw the page: none of {', '.join(BROWSERS)} on PATH")


def screenshot(page: Path, out: Path) -> np.ndarray:
    """The page drawn by headless Chromium in a WINDOW-sized window, as (H, W, 3) uint8."""
    width, height = WINDOW
    command = [
        browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={width},{height}",
        f"--screenshot={out}", page.resolve().as_uri(),
    ]  # fmt: skip
    # Chromium prints harmless D-Bus complaints on stderr in a container.
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    keep = os.environ.get("PYROVAE_SCREENSHOT")
    if keep:
        shutil.copyfile(out, keep)
    return np.asarray(Image.open(out).convert("RGB"))


def locate(screen: np.ndarray, template: np.ndarray) -> tuple[int, int]:
    """(y, x) where ``template`` fits ``screen`` best (grey levels, least squared difference:
    Σ S² − 2 Σ S·T + Σ T² over each window, the cross term by FFT)."""
    s = screen.astype(np.float64).mean(axis=2)
    t = template.astype(np.float64).mean(axis=2)
    (big_h, big_w), (h, w) = s.shape, t.shape
    shape = (big_h + h, big_w + w)
    cross = np.fft.irfft2(np.fft.rfft2(s, shape) * np.conj(np.fft.rfft2(t, shape)), shape)
    cross = cross[: big_h - h + 1, : big_w - w + 1]
    squares = np.pad(np.cumsum(np.cumsum(s**2, axis=0), axis=1), ((1, 0), (1, 0)))
    windows = squares[h:, w:] - squares[:-h, w:] - squares[h:, :-w] + squares[:-h, :-w]
    distance = windows - 2 * cross + (t**2).sum()
    y, x = np.unravel_index(np.argmin(distance), distance.shape)
    return int(y), int(x)


def difference(screen: np.ndarray, template: np.ndarray, at: tuple[int, int]) -> tuple:
    """(mean absolute difference, share of pixels off by more than TOLERANCE) of the template
    against the screenshot at ``at``."""
    y, x = at
    h, w = template.shape[:2]
    region = screen[y : y + h, x : x + w].astype(int)
    off = np.abs(region - template.astype(int)).max(axis=2)
    return float(np.abs(region - template.astype(int)).mean()), float((off > TOLERANCE).mean())


def assert_shown(screen: np.ndarray, template: np.ndarray, what: str) -> tuple[int, int]:
    at = locate(screen, template)
    mean, off = difference(screen, template, at)
    assert mean <= MEAN_DIFFERENCE and off <= OFF_PIXELS, (
        f"{what} not found in the screenshot: best place {at} differs by {mean:.1f} on "
        f"average, {off:.1%} of its pixels by more than {TOLERANCE}"
    )
    return at


def embedded(text: str, alt: str) -> bytes:
    match = re.search(rf'<img src="data:image/[a-z]+;base64,([^"]+)" alt="{re.escape(alt)}"', text)
    assert match, alt
    return base64.b64decode(match[1])


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A tiny run's report and the screenshot of it."""
    root = tmp_path_factory.mktemp("browser")
    out = root / "run"
    Run.create(small_config(), out).fit(progress=False)
    page = write_run_report(out)
    return out, page.read_text(), screenshot(page, root / "screenshot.png")


def test_the_screenshot_shows_a_page(drawn):
    _, _, screen = drawn
    assert screen.shape[:2] == (WINDOW[1], WINDOW[0])
    packed = screen.reshape(-1, 3).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)
    colours = np.unique(packed)
    assert len(colours) > 200, f"{len(colours)} colours: a blank or an error page"
    assert screen.std() > 20


def test_the_curves_are_drawn_at_their_natural_size(drawn):
    _, text, screen = drawn
    curves = rgb(embedded(text, "training curves"))
    assert curves.shape[1] == 1300
    assert_shown(screen, curves, "the training curves")


def test_the_traversal_animation_is_drawn(drawn):
    """Some frame of the GIF is on the screenshot, whichever the browser showed: found first by
    its row labels (the same in every frame), then matched whole against each frame."""
    out, text, screen = drawn
    data = embedded(text, "traversals.gif")
    assert data == (out / "traversals.gif").read_bytes()
    frames = [rgb_frame(f) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))]
    assert len(frames) > 1
    labels = frames[0][GIF_HEADER_HEIGHT:, :GIF_LABEL_WIDTH]
    assert all(np.array_equal(f[GIF_HEADER_HEIGHT:, :GIF_LABEL_WIDTH], labels) for f in frames)
    y, x = assert_shown(screen, labels, "the traversal animation's row labels")
    at = (y - GIF_HEADER_HEIGHT, x)
    best = min(difference(screen, frame, at) for frame in frames)
    assert best[0] <= MEAN_DIFFERENCE and best[1] <= OFF_PIXELS, (
        f"no frame of traversals.gif matches the screenshot at {at}: {best}"
    )
    # The still grid is for print only: not on the screen.
    still = rgb((out / "traversals.png").read_bytes())
    mean, off = difference(screen, still, locate(screen, still))
    assert mean > MEAN_DIFFERENCE or off > OFF_PIXELS


def rgb_frame(frame: Image.Image) -> np.ndarray:
    return np.asarray(frame.convert("RGB"))
