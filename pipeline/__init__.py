"""innsikt: themes, taxonomy mapping and quotes from transcribed Norwegian workshop cards.

`from pipeline import load_run` gives a run's results as pandas DataFrames (docs/api.md).
Imported on first use, so `import pipeline` (and every stage process) stays cheap.
"""
from __future__ import annotations

__all__ = ["load_run", "Run"]


def __getattr__(name: str):
    if name in __all__:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
