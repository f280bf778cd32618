"""Progress bars for long loops: counts, rate and time left, on stderr, only for a person watching.

Silent when stderr is not a terminal (DVC, CI, a log file) and under `innsikt -q`, so logs and
captured output stay the same. Imports nothing from pipeline/.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO


@contextmanager
def progress(description: str, total: int, *, stream: TextIO | None = None,
             force_terminal: bool | None = None) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; draws a bar of `total` steps while the block runs, when someone watches."""
    stream = stream or sys.stderr
    terminal = force_terminal if force_terminal is not None else stream.isatty()
    if total <= 0 or not terminal or not logging.getLogger().isEnabledFor(logging.INFO):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    columns = (TextColumn(f"innsikt: {description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=stream, force_terminal=terminal), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
