"""Plots as files under outputs/report/plots/: PNG and SVG for documents, CSV for `dvc plots`.

The HTML report draws its own inline SVG (escaped, with tooltips); these files are the same
pictures for pasting into a document or a slide, drawn with matplotlib so the PNG needs no
browser. Output is deterministic: no dates or software versions in the metadata and a fixed
SVG id salt, so a rerun on the same data writes the same bytes.
"""
from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.records import atomic_path, write_csv
from pipeline.report_render import (
    NO_CATEGORY_COLOUR,
    PALETTE,
    category_colours,
    theme_centres,
    workshop_colours,
)

PNG_DPI = 144
CHART_FILES = ("categories_by_workshop", "card_map")


def _plain(text: str) -> str:
    """Matplotlib reads '$...$' as maths; data text must stay literal."""
    return str(text).replace("$", r"\$")


def _figure(width: float, height: float):
    # The object API (no pyplot) leaves matplotlib's global backend state alone.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, base: Path) -> None:
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "innsikt", "svg.fonttype": "path"}):
        for suffix, metadata in ((".svg", {"Date": None}), (".png", {"Software": None})):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=suffix[1:], dpi=PNG_DPI, metadata=metadata)
            _write_bytes(buffer.getvalue(), base.with_suffix(suffix))


def _write_bytes(data: bytes, target: Path) -> None:
    """Atomic, like every other stage output: a killed run never leaves half a PNG behind."""
    tmp = atomic_path(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _bars_per_workshop(axes, categories: list[dict], workshops: list[str], colours: dict[str, str]) -> list[int]:
    """A bar call per workshop, labelled for the legend; returns the categories' totals."""
    left = [0] * len(categories)
    for workshop in workshops:
        counts = [c["per_workshop"].get(workshop, 0) for c in categories]
        axes.barh(range(len(categories)), counts, left=left, color=colours[workshop], label=_plain(workshop))
        left = [a + b for a, b in zip(left, counts)]
    return left


def _bars_per_category(axes, categories: list[dict], workshops: list[str], colours: dict[str, str]) -> list[int]:
    """The same segments as one collection per category, drawn alike to the pixel: a patch per
    workshop and category (700 at a hundred workshops) took 1 s to build and 1 s per file."""
    totals = []
    for row, category in enumerate(categories):
        counts = [category["per_workshop"].get(w, 0) for w in workshops]
        starts = itertools.accumulate(counts[:-1], initial=0)
        segments = axes.broken_barh(list(zip(starts, counts)), (row - 0.4, 0.8),
                                    facecolors=[colours[w] for w in workshops])
        segments.sticky_edges.x.append(0)  # as barh does: no margin left of zero
        totals.append(sum(counts))
    return totals


def categories_figure(insights: Mapping[str, Any]):
    """Horizontal stacked bars: assigned cards per category, one colour per workshop."""
    categories = list(reversed(insights["categories"]))  # matplotlib draws the first bar at the bottom
    workshops = [w["workshop_id"] for w in insights["workshops"]]
    colours = workshop_colours(workshops)
    # Past the palette a colour names no workshop, so there is no legend, and it would not fit:
    # at a hundred workshops the layout gave up and cut off the category names.
    named = len(workshops) <= len(PALETTE)
    figure = _figure(9, 0.45 * len(categories) + 1.6)
    axes = figure.add_subplot()
    totals = (_bars_per_workshop if named else _bars_per_category)(axes, categories, workshops, colours)
    for row, total in enumerate(totals):
        axes.text(total, row, f" {total}", va="center", fontsize=9)
    axes.set_yticks(range(len(categories)), [_plain(c["name"]) for c in categories])
    axes.set_xlabel("Tildelte kort")
    axes.set_title("Kort per kategori og verksted")
    axes.spines[["top", "right"]].set_visible(False)
    if workshops and named:  # below the axes, where it cannot cover a bar
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(len(workshops), 4), fontsize=8,
                    frameon=False)
    return figure


def card_map_figure(insights: Mapping[str, Any]):
    """Cards on the report's 2-D map (seeded UMAP), coloured by category, outliers hollow; the largest
    themes named at their centres."""
    colours = category_colours([c["category_id"] for c in insights["categories"]])
    names = {c["category_id"]: c["name"] for c in insights["categories"]}
    placed = [c for c in insights["cards"] if c["position"] is not None]
    figure = _figure(9, 6.5)
    axes = figure.add_subplot()
    for category_id in [*colours, None]:
        for outlier in (False, True):
            points = [c for c in placed if c["category_id"] == category_id and (c["status"] == "outlier") == outlier]
            if not points:
                continue
            colour = colours.get(category_id, NO_CATEGORY_COLOUR)
            # Arrays, not lists: matplotlib checks a list for masked values point by point.
            xs, ys = np.array([p["position"]["x"] for p in points]), np.array([p["position"]["y"] for p in points])
            # rasterized: in the SVG the points are one image, not an element per card (1.4 MB and
            # 0.7 s to write at 10k cards); the PNG is the same either way.
            axes.scatter(xs, ys, s=28, facecolors="none" if outlier else colour, edgecolors=colour, linewidths=1.2,
                         label=None if outlier else _plain(names.get(category_id, "Uten kategori")), rasterized=True)
    for label, (x, y) in theme_centres(insights):
        axes.text(x, y, _plain(label), fontsize=7, ha="center", va="center",
                  bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.75, "linewidth": 0})
    axes.set_title("Kart over kortene (farge = kategori, hul sirkel = annet innspill)")
    axes.set_aspect("equal", adjustable="datalim")  # distances on the map mean the same in both directions
    axes.set_xticks([])
    axes.set_yticks([])
    if placed:
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return figure


def category_rows(insights: Mapping[str, Any]) -> list[list[Any]]:
    """Long format (one row per category and workshop), the shape DVC's bar templates expect.

    Workshop first: DVC reads the file as plain UTF-8, so the BOM sticks to the first column's
    name, and the first column must not be one that dvc.yaml plots (category, cards).
    """
    workshops = [w["workshop_id"] for w in insights["workshops"]]
    rows = [["workshop", "category", "cards"]]
    for category in insights["categories"]:
        rows += [[w, category["name"], category["per_workshop"].get(w, 0)] for w in workshops]
    return rows


def theme_rows(insights: Mapping[str, Any]) -> list[list[Any]]:
    """Themes by breadth rank, for `dvc plots` and for anyone who wants the ranking in a spreadsheet."""
    rows = [["rank", "theme", "category", "workshops", "groups", "voices", "cards", "relevant_for_many"]]
    names = {c["category_id"]: c["name"] for c in insights["categories"]}
    for theme in sorted(insights["themes"], key=lambda t: t["breadth"]["rank"]):
        b = theme["breadth"]
        rows.append([b["rank"], theme["label"], names.get(theme["category_id"], theme["category_id"]),
                     b["workshops"], b["groups"], theme["voices"], theme["size"], str(b["relevant_for_many"]).lower()])
    return rows


def write_plots(insights: Mapping[str, Any], out_dir: Path) -> None:
    """categories_by_workshop.{png,svg}, card_map.{png,svg}, categories.csv, themes.csv."""
    _save(categories_figure(insights), out_dir / "categories_by_workshop")
    _save(card_map_figure(insights), out_dir / "card_map")
    write_csv(category_rows(insights), out_dir / "categories.csv")
    write_csv(theme_rows(insights), out_dir / "themes.csv")
