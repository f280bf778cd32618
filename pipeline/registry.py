"""The theme registry (`models/themes.json`): topic ids that survive reclustering, and what changed since the last run.

Each run's clusters are matched one-to-one to the previous run's themes (`models/themes.json`,
tracked in git): by card overlap (Jaccard over the cards both runs have) and, for themes whose
cards were all edited or removed, by centroid similarity. A matched cluster keeps the theme's id
and label; an unmatched one gets a new id; a previous theme left unmatched is retired, or merged
when most of its cards now sit in one theme. Everything is sorted, so the same clusters and the
same registry always give the same ids.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InnsiktError

REGISTRY_FORMAT = 1
NEW, GROWN, SHRUNK, UNCHANGED, MERGED, RETIRED = "new", "grown", "shrunk", "unchanged", "merged", "retired"
CHANGE_COLUMNS = ["theme_id", "label", "change", "size_before", "size_after", "merged_into", "split_from"]
CENTROID_DECIMALS = 5  # enough to match on; keeps the tracked file small and its diffs stable


class RegistryError(InnsiktError):
    """A theme registry file that cannot be read; names the file and the problem."""


@dataclass(frozen=True)
class Topic:
    """One topic (a cluster with a stable id, "theme-<hash>") of a registry: members, centroid (L2-normalised
    raw embedding mean), label."""

    theme_id: str
    label: str
    cards: tuple[str, ...]
    centroid: tuple[float, ...]
    status: str = "active"  # active | retired


@dataclass(frozen=True)
class Registry:
    """The themes of the last run, and the changes that run reported (so a rerun reports them again)."""

    themes: tuple[Topic, ...] = ()
    changes: tuple[dict, ...] = ()
    outliers: tuple[str, ...] = ()  # cards of the last run in no theme: seen, so not new next time


@dataclass(frozen=True)
class Matching:
    theme_ids: dict[int, str]  # cluster -> theme id
    labels: dict[int, str]  # cluster -> label kept from the registry (matched clusters only)
    changes: pd.DataFrame  # one row per new, matched, merged or retired theme (records.THEME_CHANGES)
    registry: Registry  # to save for the next run


def new_theme_id(card_ids, taken: set[str]) -> str:
    """Id from the first members, so the same new cluster always gets the same id."""
    digest = hashlib.sha1("\n".join(sorted(card_ids)).encode("utf-8")).hexdigest()
    for start in range(0, len(digest) - 10):
        candidate = f"theme-{digest[start:start + 10]}"
        if candidate not in taken:
            return candidate
    raise RegistryError(f"no free theme id for a cluster of {len(card_ids)} cards")  # 30 collisions: never


def centroid(vectors: np.ndarray) -> tuple[float, ...]:
    mean = vectors.astype(np.float64).mean(axis=0)
    mean /= np.linalg.norm(mean) or 1.0
    return tuple(round(float(v), CENTROID_DECIMALS) for v in mean)


def match(clusters: dict[int, list[str]], centroids: dict[int, tuple[float, ...]], labels: dict[int, str],
          previous: Registry, *, min_overlap: float, min_centroid_similarity: float,
          merge_share: float, keep_labels: bool, outliers=()) -> Matching:
    """Ids for this run's clusters (cluster -> member card ids), given the previous registry.

    A matched cluster keeps the previous theme's label, unless `keep_labels` is false.

    A run whose themes are exactly the registry's (a rerun) reports the registry's own changes again,
    so rerunning the same inputs gives the same outputs.
    """
    from scipy.optimize import linear_sum_assignment

    order = sorted(clusters)
    active = [t for t in previous.themes if t.status == "active"]
    themed_now = {card for members in clusters.values() for card in members}
    # Cards no longer in a theme (removed, rejected, outliers) say nothing either way.
    overlap = jaccard([clusters[c] for c in order],
                      [[card for card in theme.cards if card in themed_now] for theme in active])
    similarity = (np.array([centroids[c] for c in order]).reshape(len(order), -1)
                  @ np.array([t.centroid for t in active]).reshape(len(active), -1).T
                  if len(order) and len(active) else np.zeros((len(order), len(active))))
    eligible = (overlap >= min_overlap) | ((overlap == 0) & (similarity >= min_centroid_similarity))
    matched: dict[int, int] = {}
    if len(order) and len(active):
        # Overlap decides; similarity only breaks ties and matches themes whose cards all changed.
        score = np.where(eligible, overlap + 0.01 * similarity + 1.0, 0.0)
        rows, cols = linear_sum_assignment(-score)
        matched = {order[i]: j for i, j in zip(rows, cols) if eligible[i, j]}

    taken = {t.theme_id for t in previous.themes}
    theme_ids: dict[int, str] = {}
    kept_labels: dict[int, str] = {}
    for c in order:
        if c in matched:
            theme = active[matched[c]]
            theme_ids[c] = theme.theme_id
            kept_labels[c] = theme.label if keep_labels else labels[c]
        else:
            theme_ids[c] = new_theme_id(clusters[c], taken)
        taken.add(theme_ids[c])

    by_id = {t.theme_id: t for t in active}
    previous_home = {card: t.theme_id for t in active for card in t.cards}
    card_theme = {card: theme_ids[c] for c in order for card in clusters[c]}
    rows_out = []
    for c in order:
        before = by_id.get(theme_ids[c])
        size = len(clusters[c])
        if before is None:
            split_from = sorted(_previous_homes(clusters[c], previous_home))
            rows_out.append(_change(theme_ids[c], labels[c], NEW, 0, size, None, split_from))
            continue
        old_size = len(before.cards)
        kind = GROWN if size > old_size else SHRUNK if size < old_size else UNCHANGED
        if kind == UNCHANGED and set(before.cards) != set(clusters[c]):
            kind = GROWN if len(set(clusters[c]) - set(before.cards)) else SHRUNK
        rows_out.append(_change(theme_ids[c], kept_labels[c], kind, old_size, size, None, []))
    matched_ids = {theme_ids[c] for c in matched}
    for theme in active:
        if theme.theme_id in matched_ids:
            continue
        homes = pd.Series([card_theme[card] for card in theme.cards if card in card_theme], dtype=object)
        into = None
        if len(homes):
            top = homes.value_counts().sort_index().sort_values(ascending=False, kind="stable")
            if top.iloc[0] / len(theme.cards) >= merge_share:
                into = str(top.index[0])
        rows_out.append(_change(theme.theme_id, theme.label, MERGED if into else RETIRED, len(theme.cards), 0,
                                into, []))
    themes = [
        Topic(theme_ids[c], kept_labels.get(c, labels[c]), tuple(sorted(clusters[c])), centroids[c]) for c in order
    ] + [
        Topic(t.theme_id, t.label, t.cards, t.centroid, "retired")
        for t in previous.themes if t.theme_id not in set(theme_ids.values())
    ]
    themes.sort(key=lambda t: (t.status != "active", t.theme_id))
    outliers = tuple(sorted(outliers))
    rerun = bool(previous.themes) and outliers == previous.outliers and [
        (t.theme_id, t.cards, t.status) for t in themes] == [(t.theme_id, t.cards, t.status) for t in previous.themes]
    records = list(previous.changes) if rerun else sorted(rows_out, key=lambda row: row["theme_id"])
    changes = pd.DataFrame(records, columns=CHANGE_COLUMNS)
    return Matching(theme_ids, kept_labels, changes, Registry(tuple(themes), tuple(records), outliers))


def jaccard(left: list[list[str]], right: list[list[str]]) -> np.ndarray:
    """(len(left), len(right)) Jaccard index of every pair of card sets, via one sparse product."""
    from scipy.sparse import csr_matrix

    index = {card: i for i, card in enumerate(sorted({c for cards in left + right for c in cards}))}

    def incidence(sets):
        rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
        cols = np.array([index[c] for s in sets for c in s], dtype=np.int64)
        return csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(sets), len(index)))

    if not left or not right:
        return np.zeros((len(left), len(right)))
    shared = (incidence(left) @ incidence(right).T).toarray()
    sizes = np.array([len(s) for s in left])[:, None] + np.array([len(s) for s in right])[None, :] - shared
    return np.divide(shared, sizes, out=np.zeros_like(shared), where=sizes > 0)


def _previous_homes(members: list[str], home: dict[str, str]) -> list[str]:
    """Previous themes holding at least a third of a new cluster's cards: what it split from."""
    counts = pd.Series([home[m] for m in members if m in home], dtype=object).value_counts()
    return [theme_id for theme_id, n in counts.items() if n * 3 >= len(members)]


def _change(theme_id, label, change, size_before, size_after, merged_into, split_from) -> dict:
    return {"theme_id": theme_id, "label": label, "change": change, "size_before": int(size_before),
            "size_after": int(size_after), "merged_into": merged_into, "split_from": list(split_from)}


def load(path: Path) -> Registry:
    """The previous run's registry; an absent file is a first run (no themes)."""
    path = Path(path)
    if not path.exists():
        return Registry()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read theme registry: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != REGISTRY_FORMAT:
        raise RegistryError(f"{path}: not a theme registry of format {REGISTRY_FORMAT} "
                            f"(format={raw.get('format') if isinstance(raw, dict) else None!r})")
    themes = []
    for n, entry in enumerate(raw.get("themes", []), start=1):
        try:
            themes.append(Topic(str(entry["theme_id"]), str(entry["label"]), tuple(entry["cards"]),
                                tuple(float(v) for v in entry["centroid"]), str(entry.get("status", "active"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{path}: theme {n}: missing or invalid field {exc}") from exc
    changes = raw.get("changes", [])
    if not isinstance(changes, list) or any(not isinstance(c, dict) or set(c) != set(CHANGE_COLUMNS)
                                            for c in changes):
        raise RegistryError(f"{path}: `changes` must be a list of objects with keys {CHANGE_COLUMNS}")
    outliers = raw.get("outliers", [])
    if not isinstance(outliers, list) or not all(isinstance(card, str) for card in outliers):
        raise RegistryError(f"{path}: `outliers` must be a list of card ids")
    return Registry(tuple(themes), tuple(changes), tuple(outliers))


def dumps(registry: Registry) -> str:
    """Canonical JSON (sorted, fixed rounding): the same registry is always the same bytes."""
    return json.dumps(
        {"format": REGISTRY_FORMAT,
         "themes": [{"theme_id": t.theme_id, "status": t.status, "label": t.label, "size": len(t.cards),
                     "cards": list(t.cards), "centroid": list(t.centroid)} for t in registry.themes],
         "outliers": list(registry.outliers),
         "changes": list(registry.changes)},
        ensure_ascii=False, indent=1,
    ) + "\n"
