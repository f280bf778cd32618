"""Python API: one run's cards, themes, categories and votes as pandas DataFrames.

    from pipeline import load_run
    run = load_run("outputs")          # `dvc repro`; or the --out folder of `innsikt run`
    run.cards.groupby("category_name").size()

`insights.json` (the report stage's validated document) is the source of truth for the themes,
categories and every card's assignment; the stage Parquet files add what it leaves out (the card
text as transcribed, its source file and row, the group votes one by one). Every frame has the
columns listed in `CARD_COLUMNS`, `THEME_COLUMNS`, ... below, always all of them and in that
order, also when a frame is empty. See docs/api.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.errors import InnsiktError
from pipeline.ids import EMERGENT
from pipeline.records import NORMALISED, VOTES, SchemaError, read_table


CARD_COLUMNS = {
    "card_id": "stable id of the card (from the input, or <workshop>-<content hash>)",
    "workshop_id": "workshop the card comes from",
    "group_id": "group within the workshop; None for individual cards",
    "card_type": "wish, postit, oracle, reflection or other",
    "text": "the card as the report shows it: redacted, and repaired unless rejected",
    "text_original": "the card as transcribed (redacted, not repaired)",
    "status": "assigned (in a theme), outlier (in no theme) or rejected",
    "reason": "why a rejected card was rejected; None otherwise",
    "theme_id": "its theme; None for outliers and rejected cards",
    "theme_label": "that theme's label",
    "subtheme_id": "its sub-theme within that theme; None when the theme has no sub-themes or none fits the card",
    "subtheme_label": "that sub-theme's label",
    "category_id": "the card's own taxonomy category, or 'emergent'; None when rejected",
    "category_name": "that category's name",
    "taxonomy_theme_id": "the card's own taxonomy theme; None when emergent or rejected",
    "taxonomy_theme_name": "that taxonomy theme's name",
    "confidence": "confidence of the card's category, 0-1; NaN when rejected",
    "emergent": "True when the card fits no taxonomy theme",
    "is_quote": "True when the report quotes the card for its theme",
    "duplicate_of": "first card of its exact or near duplicate group; None when not a duplicate",
    "duplicate_kind": "exact or near; None when not a duplicate",
    "language": "nb, nn, en, ... or und; None when rejected",
    "x": "position on the report's card map (NaN when rejected)",
    "y": "position on the report's card map (NaN when rejected)",
    "source_file": "input file the card was read from",
    "source_row": "its row there (spreadsheet style: the header is row 1)",
}

THEME_COLUMNS = {
    "theme_id": "id that survives reruns (models/themes.json)",
    "label": "short label",
    "keywords": "list of its most characteristic words, most characteristic first",
    "category_id": "taxonomy category, or 'emergent'",
    "category_name": "that category's name",
    "taxonomy_theme_id": "taxonomy theme it maps onto; None when emergent",
    "taxonomy_theme_name": "that taxonomy theme's name",
    "emergent": "True when no taxonomy theme fits",
    "confidence": "confidence of the mapping, 0-1",
    "size": "cards in the theme",
    "voices": "cards, counting a group of duplicates once",
    "workshops": "workshops that raised it",
    "groups": "distinct (workshop, group) pairs that raised it",
    "rank": "breadth rank (1 is the broadest)",
    "relevant_for_many": "raised in at least half of the workshops, and in at least two",
    "change": "new, grown, shrunk or unchanged since the previous run",
    "per_workshop": "dict: workshop id -> cards",
    "quote_card_ids": "list of the quoted cards, most representative first",
}

SUBTHEME_COLUMNS = {
    "subtheme_id": "id of the sub-theme",
    "theme_id": "the theme it belongs to",
    "label": "short label",
    "keywords": "list of its most characteristic words",
    "size": "cards in the sub-theme",
    "voices": "cards, counting a group of duplicates once",
    "per_workshop": "dict: workshop id -> cards",
    "quote_card_ids": "list of the quoted cards, most representative first",
}

CATEGORY_COLUMNS = {
    "category_id": "taxonomy category id, or 'emergent'",
    "name": "its name",
    "size": "assigned cards whose own category is this one",
    "themes": "number of themes in this category",
    "theme_ids": "list of those themes, broadest first",
    "per_workshop": "dict: workshop id -> cards",
}

VOTE_COLUMNS = {
    "workshop_id": "workshop of the voting group",
    "group_id": "the voting group",
    "taxonomy_theme_id": "taxonomy theme voted on",
    "taxonomy_theme_name": "its name",
    "category_id": "its category",
    "choice": "'1' / '2' (two opposed statements) or 'agree' / 'disagree'",
    "statement": "the statement chosen (or agreed or disagreed with); None when none is printed",
    "source_file": "votes file",
    "source_row": "row there",
}

TAXONOMY_COLUMNS = {
    "taxonomy_theme_id": "taxonomy theme id",
    "name": "its name",
    "category_id": "its category",
    "category_name": "the category's name",
    "statements": "list of its printed statements (statement 1, statement 2), may be empty",
}

CHANGE_COLUMNS = {
    "theme_id": "a theme of this run, or a previous theme that is gone",
    "label": "its label",
    "change": "new, grown, shrunk, unchanged, merged or retired",
    "size_before": "cards in the previous run",
    "size_after": "cards in this run",
    "merged_into": "merged: the theme that now holds most of its cards",
    "split_from": "new: list of the previous themes that held a third of its cards or more",
}


@dataclass(frozen=True)
class Run:
    """One run's results. Frames are fresh copies: change them freely."""

    path: Path
    insights: dict  # the whole insights.json document
    cards: pd.DataFrame  # one row per input card (rejected included), by workshop_id, card_id
    themes: pd.DataFrame  # one row per theme, in report order (category, then breadth)
    subthemes: pd.DataFrame  # one row per sub-theme, by theme in report order
    categories: pd.DataFrame  # taxonomy categories in official order, then 'emergent' if used
    votes: pd.DataFrame  # one row per group vote
    taxonomy: pd.DataFrame  # one row per taxonomy theme, in official order
    changes: pd.DataFrame  # one row per theme change since the previous run


class RunError(InnsiktError):
    """A folder that is not a complete run; names the missing or unreadable file."""


def _frame(rows: list[dict], columns: dict) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def read_insights(run_dir: Path) -> dict:
    path = run_dir / "report" / "insights.json"
    if not path.is_file():
        raise RunError(f"{path}: not found; expected the output folder of `innsikt run --out` or of `dvc repro` "
                       f"(outputs/), with the report stage done")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not readable as JSON ({exc}); rerun the report stage") from exc


def load_run(run_dir: str | Path = "outputs") -> Run:
    """Cards, themes, categories, votes, taxonomy and changes of the run in `run_dir` as DataFrames.

    `run_dir` holds `report/insights.json`, `normalise/cards.parquet` and `ingest/votes.parquet`
    (the layout of `innsikt run --out DIR` and of `outputs/` after `dvc repro`). Columns: see
    CARD_COLUMNS, THEME_COLUMNS, CATEGORY_COLUMNS, VOTE_COLUMNS, TAXONOMY_COLUMNS and CHANGE_COLUMNS.
    """
    run_dir = Path(run_dir)
    insights = read_insights(run_dir)
    taxonomy = _taxonomy(insights)
    category_name = {c["category_id"]: c["name"] for c in insights["categories"]}
    category_name.update(zip(taxonomy["category_id"], taxonomy["category_name"]))
    theme_name = dict(zip(taxonomy["taxonomy_theme_id"], taxonomy["name"]))
    themes = _themes(insights, category_name, theme_name)
    subthemes = _subthemes(insights)
    return Run(
        path=run_dir,
        insights=insights,
        cards=_cards(insights, run_dir, themes, subthemes, category_name, theme_name),
        themes=themes,
        subthemes=subthemes,
        categories=_frame([{**{k: c[k] for k in ("category_id", "name", "size", "theme_ids", "per_workshop")},
                            "themes": len(c["theme_ids"])} for c in insights["categories"]], CATEGORY_COLUMNS),
        votes=_votes(insights, run_dir, theme_name),
        taxonomy=taxonomy,
        changes=_frame(insights["changes"]["themes"], CHANGE_COLUMNS),
    )


def _taxonomy(insights: dict) -> pd.DataFrame:
    return _frame([{"taxonomy_theme_id": t["taxonomy_theme_id"], "name": t["name"], "category_id": c["category_id"],
                    "category_name": c["name"], "statements": list(t["statements"])}
                   for c in insights["taxonomy"]["categories"] for t in c["themes"]], TAXONOMY_COLUMNS)


def _themes(insights: dict, category_name: dict, theme_name: dict) -> pd.DataFrame:
    rows = []
    for t in insights["themes"]:
        rows.append({
            **{k: t[k] for k in ("theme_id", "label", "keywords", "category_id", "taxonomy_theme_id", "emergent",
                                 "confidence", "size", "voices", "change", "per_workshop")},
            "category_name": category_name.get(t["category_id"]),
            "taxonomy_theme_name": theme_name.get(t["taxonomy_theme_id"]),
            "workshops": t["breadth"]["workshops"],
            "groups": t["breadth"]["groups"],
            "rank": t["breadth"]["rank"],
            "relevant_for_many": t["breadth"]["relevant_for_many"],
            "quote_card_ids": [q["card_id"] for q in t["quotes"]],
        })
    return _frame(rows, THEME_COLUMNS)


def _subthemes(insights: dict) -> pd.DataFrame:
    return _frame([{"subtheme_id": s["theme_id"], "theme_id": t["theme_id"],
                    **{k: s[k] for k in ("label", "keywords", "size", "voices", "per_workshop")},
                    "quote_card_ids": [q["card_id"] for q in s["quotes"]]}
                   for t in insights["themes"] for s in t.get("subthemes", ())], SUBTHEME_COLUMNS)


def _cards(insights: dict, run_dir: Path, themes: pd.DataFrame, subthemes: pd.DataFrame, category_name: dict,
           theme_name: dict) -> pd.DataFrame:
    label = dict(zip(themes["theme_id"], themes["label"]))
    subtheme_label = dict(zip(subthemes["subtheme_id"], subthemes["label"]))
    quoted = {card_id for ids in themes["quote_card_ids"] for card_id in ids}
    rows = []
    for c in insights["cards"]:
        position = c["position"] or {}
        rows.append({
            **{k: c[k] for k in ("card_id", "workshop_id", "group_id", "card_type", "text", "status", "reason",
                                 "theme_id", "category_id", "taxonomy_theme_id", "confidence", "duplicate_of",
                                 "duplicate_kind", "language")},
            "theme_label": label.get(c["theme_id"]),
            "subtheme_id": c.get("subtheme_id"),
            "subtheme_label": subtheme_label.get(c.get("subtheme_id")),
            "category_name": category_name.get(c["category_id"]),
            "taxonomy_theme_name": theme_name.get(c["taxonomy_theme_id"]),
            "emergent": c["category_id"] == EMERGENT,
            "is_quote": c["card_id"] in quoted,
            "x": position.get("x"),
            "y": position.get("y"),
        })
    cards = _frame(rows, CARD_COLUMNS).drop(columns=["text_original", "source_file", "source_row"])
    source = _read(run_dir / "normalise" / "cards.parquet", NORMALISED)
    source = source[["card_id", "text", "source_file", "source_row"]]
    merged = cards.merge(source.rename(columns={"text": "text_original"}), on="card_id", how="left",
                         validate="one_to_one")
    if merged["source_file"].isna().any():
        missing = merged.loc[merged["source_file"].isna(), "card_id"].tolist()[:5]
        raise RunError(f"{run_dir / 'normalise' / 'cards.parquet'}: cards {missing} of insights.json missing; "
                       f"the report and normalise outputs are from different runs: rerun the pipeline")
    merged["confidence"] = merged["confidence"].astype(float)
    merged["x"], merged["y"] = merged["x"].astype(float), merged["y"].astype(float)
    return merged[list(CARD_COLUMNS)]


def _votes(insights: dict, run_dir: Path, theme_name: dict) -> pd.DataFrame:
    votes = _read(run_dir / "ingest" / "votes.parquet", VOTES)
    category_of = {t["taxonomy_theme_id"]: c["category_id"]
                   for c in insights["taxonomy"]["categories"] for t in c["themes"]}
    statement = {(v["taxonomy_theme_id"], s["choice"]): s["statement"]
                 for v in insights["votes"] for s in v["statements"]}
    rows = [{"workshop_id": v.workshop_id, "group_id": v.group_id, "taxonomy_theme_id": v.theme_id,
             "taxonomy_theme_name": theme_name.get(v.theme_id), "category_id": category_of.get(v.theme_id),
             "choice": v.choice, "statement": statement.get((v.theme_id, v.choice)),
             "source_file": v.source_file, "source_row": v.source_row}
            for v in votes.itertuples(index=False)]
    return _frame(rows, VOTE_COLUMNS)


def _read(path: Path, schema) -> pd.DataFrame:
    try:
        return read_table(path, schema)
    except SchemaError as exc:
        raise RunError(str(exc)) from exc
