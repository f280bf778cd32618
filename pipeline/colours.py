"""Colours shared by the report (HTML, PNG, SVG) and the exports (QDA codes).

Base module: imports nothing from pipeline/.
"""
from __future__ import annotations

from typing import Iterable

# Workshop colours (fill, text on fill). Text colour is chosen per fill so that the
# numbers printed inside the bars keep readable contrast on the light colours.
PALETTE = (
    ("#4e79a7", "#ffffff"),
    ("#f28e2b", "#1f2328"),
    ("#59a14f", "#ffffff"),
    ("#e15759", "#ffffff"),
    ("#76b7b2", "#1f2328"),
    ("#edc948", "#1f2328"),
    ("#b07aa1", "#ffffff"),
    ("#9c755f", "#ffffff"),
)
VOTE_COLOURS = ("#4e79a7", "#f28e2b", "#76b7b2", "#b07aa1")
# Category colours for the card map, a different set from the workshop colours so the two
# legends are never confused; taken by category position in the document.
CATEGORY_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4")
NO_CATEGORY_COLOUR = "#9aa4ae"


def workshop_colours(workshops: Iterable[str]) -> dict[str, str]:
    """Workshop id -> fill colour, by position (the same in the HTML, the PNG and the SVG)."""
    return {w: PALETTE[i % len(PALETTE)][0] for i, w in enumerate(workshops)}


def category_colours(category_ids: Iterable[str]) -> dict[str, str]:
    """Category id -> colour, by position in the document's category list."""
    return {c: CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)] for i, c in enumerate(category_ids)}
