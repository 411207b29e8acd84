"""Evaluation progress reaches a log file (a stream that is not a terminal), throttled there."""

from __future__ import annotations

import io

from trex.eval.progress import LOG_INTERVAL_S, progress


def test_progress_is_written_to_a_log_stream_at_the_log_interval():
    log = io.StringIO()  # not a terminal, like `trex eval ... > log`
    bar = progress(range(5), desc="scoring options", unit="batch", file=log)
    assert list(bar) == list(range(5))
    assert "scoring options" in log.getvalue() and "5/5" in log.getvalue()
    assert bar.mininterval == LOG_INTERVAL_S


def test_a_terminal_keeps_the_fast_refresh():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = progress(range(2), file=Terminal())
    list(bar)
    assert bar.mininterval == 0.1
