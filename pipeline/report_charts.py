"""Every chart innsikt draws, drawn one way: SVG from the Jinja2 templates in pipeline/templates/charts/.

This module computes the geometry (positions and sizes as formatted numbers, colours) and renders
the templates; the report inlines the same charts into its page, report_plots writes them as files
beside it, and evaluate draws its confusion heat maps with them. The colours of the data (workshops,
categories, vote choices) are set in pipeline.colours and gathered here in COLOURS: the page's style
sheet gets its workshop swatch classes from it too.
"""
from __future__ import annotations

import html
from functools import lru_cache
from typing import Any, Mapping

import jinja2
from markupsafe import Markup

from pipeline.colours import (  # noqa: F401 (re-exported: the charts' colour functions)
    CATEGORY_PALETTE,
    NO_CATEGORY_COLOUR,
    PALETTE,
    VOTE_COLOURS,
    category_colours,
    workshop_colours,
)

__all__ = ["COLOURS", "workshop_colours", "category_colours", "theme_centres", "category_chart", "card_map",
           "confusion_svg", "category_chart_svg", "card_map_svg", "html_environment", "TemplateEnvironment"]

# The data colours come from pipeline.colours (shared with the exports' QDA codes); the charts add
# what they draw themselves, also where no style sheet of the page applies (the files in plots/).
COLOURS: dict[str, Any] = {
    "workshop": tuple(fill for fill, _ in PALETTE),
    "workshop_ink": tuple(ink for _, ink in PALETTE),
    "vote": VOTE_COLOURS,
    "category": CATEGORY_PALETTE,
    "no_category": NO_CATEGORY_COLOUR,
    "ink": "#1f2328",
    "track": "#eef1f4",
}


# --------------------------------------------------------------------------- templates


def _html_escaped(value: Any) -> Any:
    """The finalize of the HTML and SVG templates: every value printed is escaped as html.escape does
    (quotes as &quot; and &#x27;, as the report always had them); markup a template made passes as it is.
    Autoescape would escape a value anyway, with markupsafe's entities for the quotes."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


class TemplateEnvironment(jinja2.Environment):
    """Jinja2 over a view model of plain dicts: `card.text` looks up the key first. Jinja tries the
    attribute first and the key after a caught AttributeError, which took a third of the page's
    rendering time at 10k cards."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@lru_cache(maxsize=1)
def html_environment() -> jinja2.Environment:
    """The environment of every HTML and SVG template in pipeline/templates/: all autoescaped."""
    return TemplateEnvironment(loader=jinja2.PackageLoader("pipeline", "templates"), autoescape=True,
                              finalize=_html_escaped, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def _render(template: str, **context: Any) -> str:
    return html_environment().get_template(template).render(colours=COLOURS, **context)


# --------------------------------------------------------------------------- categories by workshop

# Chart geometry in SVG user units; the viewBox lets it scale down on narrow screens.
CHART_LABEL_W = 250
CHART_BAR_W = 560
CHART_TOTAL_W = 60
CHART_ROW_H = 30
CHART_BAR_H = 20
CHART_PAD = 6
CHART_LABEL_CHARS = 34
CHART_MIN_SEG_FOR_NUMBER = 22
CHART_LEGEND_H = 24  # a row of the legend, drawn in the file only (the page lists the workshops below)
CHART_LEGEND_PER_ROW = 4


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def category_chart(categories: list[dict], workshops: tuple[str, ...] | list[str]) -> dict:
    """Horizontal stacked bars: one bar per category, one segment per workshop (in `workshops` order)."""
    fills, inks = COLOURS["workshop"], COLOURS["workshop_ink"]
    largest = max([1] + [max(c["size"], sum(c["per_workshop"].values())) for c in categories])
    scale = CHART_BAR_W / largest
    rows = []
    for index, category in enumerate(categories):
        y = CHART_PAD + index * CHART_ROW_H
        mid = y + CHART_BAR_H / 2
        x = float(CHART_LABEL_W)
        segments = []
        for position, workshop in enumerate(workshops):
            count = category["per_workshop"].get(workshop)
            if not count:
                continue
            width = count * scale
            segments.append({"x": f"{x:.1f}", "width": f"{width:.1f}", "workshop": workshop, "count": count,
                             "fill": fills[position % len(fills)], "ink": inks[position % len(inks)],
                             "number_x": f"{x + width / 2:.1f}" if width >= CHART_MIN_SEG_FOR_NUMBER else None})
            x += width
        rows.append({"y": y, "mid": f"{mid:.1f}", "name": category["name"],
                     "short": _truncate(category["name"], CHART_LABEL_CHARS), "segments": segments,
                     "total_x": f"{x + 6:.1f}", "size": category["size"]})
    return {"label_w": CHART_LABEL_W, "label_x": CHART_LABEL_W - 10, "bar_w": CHART_BAR_W, "bar_h": CHART_BAR_H,
            "width": CHART_LABEL_W + CHART_BAR_W + CHART_TOTAL_W,
            "height": 2 * CHART_PAD + len(categories) * CHART_ROW_H - (CHART_ROW_H - CHART_BAR_H), "rows": rows}


def category_chart_svg(chart: Mapping[str, Any], workshops: list[str]) -> str:
    """The report's category chart (`category_chart`'s dict) as a standalone SVG file, with the
    workshops' legend below the bars, as long as every workshop has its own colour (past the palette a
    colour names no workshop)."""
    fills = COLOURS["workshop"]
    named = workshops if len(workshops) <= len(fills) else []
    top = chart["height"] + 8
    legend = [{"workshop": w, "fill": fills[i], "x": 10 + (i % CHART_LEGEND_PER_ROW) * 215,
               "y": top + (i // CHART_LEGEND_PER_ROW) * CHART_LEGEND_H} for i, w in enumerate(named)]
    rows = -(-len(named) // CHART_LEGEND_PER_ROW)
    return _render("charts/category_bars.svg.j2", chart=chart, standalone=True, legend=legend,
                   file_height=top + rows * CHART_LEGEND_H + 4)


# --------------------------------------------------------------------------- card map

# Card map geometry in SVG user units.
MAP_W = 1040
MAP_H = 600
MAP_PAD = 16
MAP_R = 4.5
MAP_LABELS = 12  # the largest themes are named on the map; more would cover the points


def _map_scale(points: list[tuple[float, float]]):
    """A function from data (x, y) to SVG (x, y) keeping the aspect ratio; y grows upwards."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x_span, y_span = max(max(xs) - min(xs), 1e-9), max(max(ys) - min(ys), 1e-9)
    # One scale for both axes: distances on the map mean the same in every direction.
    scale = min((MAP_W - 2 * MAP_PAD) / x_span, (MAP_H - 2 * MAP_PAD) / y_span)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return lambda x, y: (MAP_W / 2 + (x - cx) * scale, MAP_H / 2 - (y - cy) * scale)


def theme_centres(insights: Mapping[str, Any]) -> list[tuple[str, tuple[float, float]]]:
    """(label, centre on the card map) of the MAP_LABELS largest themes. The centre is the card nearest to
    the mean position of the theme's cards, so a label always sits on its own cards."""
    positions: dict[str, list[tuple[float, float]]] = {}
    for card in insights["cards"]:
        if card["position"] is not None and card["theme_id"] is not None:
            positions.setdefault(card["theme_id"], []).append((card["position"]["x"], card["position"]["y"]))
    largest = sorted(insights["themes"], key=lambda t: (-t["size"], t["theme_id"]))[:MAP_LABELS]
    centres = []
    for theme in largest:
        points = positions.get(theme["theme_id"])
        if points:
            mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
            centres.append((theme["label"], min(points, key=lambda p: ((p[0] - mx) ** 2 + (p[1] - my) ** 2, p))))
    return centres


def card_map(insights: Mapping[str, Any], category_names: Mapping[str, str]) -> dict | None:
    """Cards on the 2-D map, coloured by category, outliers hollow, the largest themes named; None when
    no card has a position."""
    placed = [c for c in insights["cards"] if c["position"] is not None]
    if not placed:
        return None
    colours = category_colours(c["category_id"] for c in insights["categories"])
    to_svg = _map_scale([(c["position"]["x"], c["position"]["y"]) for c in placed])
    points = []
    # Outliers first, so the coloured (assigned) points are drawn on top.
    for card in sorted(placed, key=lambda c: (c["status"] != "outlier", c["card_id"])):
        x, y = to_svg(card["position"]["x"], card["position"]["y"])
        colour = colours.get(card["category_id"] or "", COLOURS["no_category"])
        category = category_names.get(card["category_id"] or "", "uten kategori")
        points.append({"cx": f"{x:.1f}", "cy": f"{y:.1f}", "stroke": colour,
                       "fill": "none" if card["status"] == "outlier" else colour,
                       "workshop": card["workshop_id"], "group": card["group_id"],
                       "title": f"{card['card_id']} · {card['workshop_id']} · {category}: {card['text']}"})
    labels = []
    for label, centre in theme_centres(insights):
        x, y = to_svg(*centre)
        labels.append({"x": f"{x:.1f}", "y": f"{y:.1f}", "label": label})
    legend = [{"colour": colours[c["category_id"]], "name": c["name"],
               "cards": sum(1 for p in placed if p["category_id"] == c["category_id"])}
              for c in insights["categories"]]
    return {"width": MAP_W, "height": MAP_H, "r": MAP_R, "points": points, "labels": labels, "legend": legend}


def card_map_svg(chart: Mapping[str, Any] | None) -> str:
    """The report's card map (`card_map`'s dict, None without cards) as a standalone SVG file, with the
    categories' legend below the map; without the page's tooltips, so 10k cards stay a small file."""
    if chart is None:
        return _render("charts/card_map.svg.j2", chart={"width": MAP_W, "height": 60, "empty": True},
                       standalone=True, legend=[], file_height=60)
    items = [*chart["legend"], {"colour": COLOURS["no_category"], "name": "hul sirkel: uteligger", "cards": None}]
    legend = [item | {"x": 10 + (i % 3) * 345, "y": MAP_H + 8 + (i // 3) * CHART_LEGEND_H}
              for i, item in enumerate(items)]
    return _render("charts/card_map.svg.j2", chart=dict(chart, empty=False), standalone=True, legend=legend,
                   file_height=MAP_H + 8 + -(-len(legend) // 3) * CHART_LEGEND_H + 4)


# --------------------------------------------------------------------------- confusion heat map

CONFUSION_CELL, CONFUSION_LEFT, CONFUSION_TOP = 34, 230, 150


def confusion_svg(confusion: Mapping[str, Any], title: str) -> str:
    """A small self-contained heat map of gold (rows) against predicted (columns) categories."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    cell, left, top = CONFUSION_CELL, CONFUSION_LEFT, CONFUSION_TOP
    peak = max(max((int(v) for row in matrix for v in row), default=0), 1)
    columns = [{"x": left + j * cell + cell / 2, "label": label} for j, label in enumerate(labels)]
    rows = [{"y": top + i * cell, "label_y": top + i * cell + cell / 2 + 4, "label": label,
             "cells": [{"x": left + j * cell, "text_x": left + j * cell + cell / 2 - 1, "value": int(matrix[i][j]),
                        "shade": int(255 - 200 * int(matrix[i][j]) / peak)} for j in range(len(labels))]}
            for i, label in enumerate(labels)]
    return _render("charts/confusion.svg.j2", title=title, columns=columns, rows=rows, cell=cell, left=left,
                   top=top, width=left + cell * len(labels) + 20, height=top + cell * len(labels) + 20)
