import io
import logging

from pipeline.progress import progress


def test_a_bar_with_counts_and_time_left_on_a_terminal(caplog):
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    with progress("embed", 512, stream=stream, force_terminal=True) as advance:
        advance(256)
        advance(256)
    drawn = stream.getvalue()
    assert "innsikt: embed" in drawn and "512/512" in drawn and "left" in drawn


def test_silent_when_not_a_terminal_or_quiet(caplog):
    caplog.set_level(logging.INFO)
    stream = io.StringIO()  # not a tty: DVC, CI, a log file
    with progress("embed", 10, stream=stream) as advance:
        advance(10)
    assert stream.getvalue() == ""
    caplog.set_level(logging.WARNING)  # innsikt -q
    with progress("embed", 10, stream=stream, force_terminal=True) as advance:
        advance(10)
    assert stream.getvalue() == ""
