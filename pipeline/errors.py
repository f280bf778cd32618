"""The one base class of every error innsikt expects: bad input, params, taxonomy, a missing stage output.

Base module: imports nothing from pipeline/. Each module raises its own subclass (IngestError,
ParamsError, ...), whose message names the file, row, column or parameter and the value; the
CLI catches `InnsiktError` and prints that message in one line. Anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations


class InnsiktError(ValueError):
    """An expected failure, explained in its message. A ValueError, as every subclass was before."""
