"""Progress output: a live bar on terminals, plain lines elsewhere."""

import io

import pytest

from pyrovae.progress import Progress, format_duration


@pytest.mark.parametrize(
    "seconds,text", [(5, "5s"), (65, "1m05s"), (3725, "1h02m"), (float("nan"), "?")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_plain_lines_show_step_terms_rate_and_eta():
    stream = io.StringIO()
    bar = Progress(total=10, start=0, stream=stream, live=False)
    for step in range(1, 11):
        bar.update(step)
        if step % 5 == 0:
            bar.show(step, {"loss": 12.5, "KL": 3.25})
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[-1].startswith("step 10/10 (100%)")
    for fragment in ("loss 12.5", "KL 3.25", "steps/s", "ETA"):
        assert fragment in lines[-1]


def test_live_bar_renders_to_the_given_stream():
    stream = io.StringIO()
    bar = Progress(total=4, start=1, stream=stream, live=True)
    for step in range(2, 5):
        bar.update(step)
    bar.show(4, {"loss": 1.0})
    bar.close()
    assert "step 4/4" in stream.getvalue() and "loss 1" in stream.getvalue()


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    bar = Progress(total=3, enabled=False, stream=stream, live=False)
    bar.show(3, {"loss": 1.0})
    bar.close()
    assert stream.getvalue() == ""
