"""Plots as files under outputs/report/plots/: SVG and PNG for documents, CSV for `dvc plots`.

The SVG files are the report page's own charts (pipeline/report_charts.py and its templates), drawn
from the same view model, with their legend and style inside the file; the PNG is that SVG rasterised
by resvg, so it needs no browser. Output is deterministic: nothing in the files depends on the date,
the run or the software version, so a rerun on the same data writes the same bytes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import resvg_py

from pipeline.records import write_bytes, write_csv
from pipeline.report_charts import card_map_svg, category_chart_svg
from pipeline.report_render import report_view

PNG_ZOOM = 1.5  # 1,300 to 1,560 px wide: sharp on a slide, as the 144 dpi of the earlier PNG
CHART_FILES = ("categories_by_workshop", "card_map")


def _save(svg: str, base: Path) -> None:
    write_bytes(svg.encode("utf-8"), base.with_suffix(".svg"))
    write_bytes(bytes(resvg_py.svg_to_bytes(svg_string=svg, zoom=PNG_ZOOM, background="#ffffff")),
                 base.with_suffix(".png"))


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
    """categories_by_workshop.{svg,png}, card_map.{svg,png}, categories.csv, themes.csv."""
    view = report_view(insights)
    _save(category_chart_svg(view["category_chart"], view["workshop_ids"]), out_dir / "categories_by_workshop")
    _save(card_map_svg(view["card_map"]), out_dir / "card_map")
    write_csv(category_rows(insights), out_dir / "categories.csv")
    write_csv(theme_rows(insights), out_dir / "themes.csv")
