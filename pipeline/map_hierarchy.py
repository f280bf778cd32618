"""The theme hierarchy an analyst reads top down: category -> taxonomy theme -> sub-themes, and emergent topics.

Built from the card mapping and the cluster stage's topics (content clusters with stable ids):
- a taxonomy theme is a theme of the report, named by its official name, holding the cards mapped
  to it;
- every topic has a home, the placement its cards vote for (`pipeline.map.theme_votes`): inside
  its home taxonomy theme it is a sub-theme, holding those of its cards whose own mapping agrees;
  a topic whose cards vote `emergent` is an emergent topic, holding its emergent cards;
- a card mapped to a taxonomy theme with a confidence below `min_confidence` sits in it only when
  its topic backs it (a sub-theme of the same taxonomy theme);
- the rest is "annen innspill" (other input, status outlier): unsure cards no topic backs, and
  emergent cards in no emergent topic. Nothing is forced into a theme it does not fit.
So a sub-theme sits inside one taxonomy theme or is emergent, never both, and every category
with confidently mapped cards shows its themes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.ids import EMERGENT, GROUP_PREFIX
from pipeline.records import CARD_MAP, STATUS_ASSIGNED, STATUS_OUTLIER, STATUS_REJECTED, THEMES
from pipeline.taxonomy import Taxonomy

NO_CLUSTER = -1  # taxonomy themes and groups of emergent topics are not clusters of the cluster stage


def build_hierarchy(card_map: pd.DataFrame, homes: pd.DataFrame, taxonomy: Taxonomy, vectors: np.ndarray,
                    min_confidence: float, group_distance: float, min_cards: int,
                    keep: frozenset[str] = frozenset()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(themes, card map) of the hierarchy.

    `card_map`: one row per card with its own placement (category, taxonomy theme, confidence) and
    its topic in `theme_id` (None for a cluster outlier); `homes`: one row per topic with the
    placement its cards vote for (`theme_votes`); `vectors`: the cards' unit vectors, in
    `card_map` order (rows of rejected cards are ignored). A topic holding fewer than `min_cards`
    cards in its home is no theme of its own, unless an analyst curated it (`keep`). Emergent topics whose centroids are
    closer than `group_distance` (cosine, average linkage) form one emergent theme with the topics
    as its sub-themes. In the result a card's `theme_id` is its top-level theme (a taxonomy theme,
    an emergent theme or topic), `subtheme_id` its topic when that is a sub-theme of it; themes
    have `parent_id` (the theme a sub-theme belongs to).
    """
    home = {row.theme_id: row for row in homes.itertuples(index=False)}
    top, sub = [], []
    for card in card_map.itertuples(index=False):
        topic = home.get(card.theme_id) if card.status != STATUS_REJECTED else None
        mapped = card.taxonomy_theme_id if isinstance(card.taxonomy_theme_id, str) else None
        if card.status == STATUS_REJECTED:
            placed = (None, None)
        elif mapped is not None and topic is not None and topic.taxonomy_theme_id == mapped:
            placed = (mapped, topic.theme_id)  # its own mapping and its topic agree
        elif mapped is not None and card.confidence >= min_confidence:
            placed = (mapped, None)  # sure of itself, though its topic lives elsewhere (or it has none)
        elif mapped is None and topic is not None and bool(topic.emergent):
            placed = (topic.theme_id, None)  # an emergent card in an emergent topic
        else:
            placed = (None, None)  # annen innspill
        top.append(placed[0])
        sub.append(placed[1])
    top, sub = np.array(top, dtype=object), np.array(sub, dtype=object)
    # A topic is a sub-theme (or an emergent topic) only where enough cards say the same thing;
    # the cards of a smaller one stay in their taxonomy theme if sure of it, else are other input.
    confidence = card_map["confidence"].to_numpy(dtype=float, na_value=0.0)
    for topic in homes["theme_id"]:
        holder = sub if (sub == topic).any() else top
        members = holder == topic
        if 0 < members.sum() < min_cards and topic not in keep:
            if holder is sub:
                sub[members] = None
                top[members & (confidence < min_confidence)] = None
            else:
                top[members] = None
    groups = _emergent_groups(top, homes, vectors, group_distance)
    for group_id, members in groups.items():
        inside = np.isin(top, members)
        sub[inside], top[inside] = top[inside], group_id
    mapped = card_map["taxonomy_theme_id"].notna().to_numpy()
    live = (card_map["status"] != STATUS_REJECTED).to_numpy()
    _attach_emergent_outliers(top, live & ~mapped & pd.isna(top), homes, set(groups), vectors)
    out = card_map.copy()
    live = (out["status"] != STATUS_REJECTED).to_numpy()
    out["theme_id"] = pd.Series(top, index=out.index, dtype=object)
    out["subtheme_id"] = pd.Series(sub, index=out.index, dtype=object)
    out["status"] = np.where(~live, STATUS_REJECTED,
                             np.where(out["theme_id"].notna(), STATUS_ASSIGNED, STATUS_OUTLIER))
    return _theme_rows(out, homes, taxonomy, groups), out[CARD_MAP.names]


def _attach_emergent_outliers(top: np.ndarray, loose: np.ndarray, homes: pd.DataFrame, groups: set[str],
                              vectors: np.ndarray) -> None:
    """Emergent cards in no emergent theme join the nearest one when they lie within its spread: at
    least as similar to its centroid as its least similar member. Outlier reduction that only
    places a card where it looks like the cards already there. Changes `top` in place."""
    emergent = set(homes.loc[homes["emergent"].astype(bool), "theme_id"]) | groups
    themes = sorted(t for t in set(top[pd.notna(top)].tolist()) if t in emergent)
    if not themes or not loose.any():
        return
    centroids = np.stack([vectors[top == t].mean(axis=0) for t in themes])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    floor = np.array([(vectors[top == t] @ centroids[k]).min() for k, t in enumerate(themes)])
    rows = np.flatnonzero(loose)
    similarity = vectors[rows] @ centroids.T
    best = similarity.argmax(axis=1)
    joins = similarity[np.arange(len(rows)), best] >= floor[best]
    top[rows[joins]] = np.asarray(themes, dtype=object)[best[joins]]


def _emergent_groups(top: np.ndarray, homes: pd.DataFrame, vectors: np.ndarray,
                     group_distance: float) -> dict[str, list[str]]:
    """group id -> its emergent topics (two or more), by average linkage of the topics' centroids.

    A group is named after its first topic id ("theme-ab12" -> "group-ab12"): it keeps its id as
    long as that topic stays in it, and topics keep theirs across runs (the registry).
    """
    from sklearn.cluster import AgglomerativeClustering

    emergent = sorted(t for t in homes.loc[homes["emergent"].astype(bool), "theme_id"] if (top == t).any())
    if len(emergent) < 2:
        return {}
    centroids = np.stack([vectors[top == t].mean(axis=0) for t in emergent])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=group_distance, metric="cosine",
                                     linkage="average").fit_predict(centroids)
    groups = {}
    for label in sorted(set(labels.tolist())):
        members = [t for t, lab in zip(emergent, labels) if lab == label]
        if len(members) >= 2:
            groups[GROUP_PREFIX + members[0].removeprefix("theme-")] = members
    return groups


def _theme_rows(card_map: pd.DataFrame, homes: pd.DataFrame, taxonomy: Taxonomy,
                groups: dict[str, list[str]]) -> pd.DataFrame:
    by_top = card_map.groupby("theme_id", sort=True)
    by_sub = card_map.groupby("subtheme_id", sort=True)
    topic_of = {row.theme_id: row for row in homes.itertuples(index=False)}
    parent_of = {t: g for g, members in groups.items() for t in members}
    rows = []

    def confidence(members: pd.DataFrame) -> float:
        return round(float(members["confidence"].mean()), 4)

    for theme in taxonomy.themes:  # taxonomy order
        if theme.id in by_top.groups:
            members = by_top.get_group(theme.id)
            rows.append({"theme_id": theme.id, "cluster": NO_CLUSTER, "label": theme.name, "keywords": [],
                         "category_id": theme.category_id, "taxonomy_theme_id": theme.id, "emergent": False,
                         "confidence": confidence(members), "size": int(len(members)), "parent_id": None})
    for group_id, topics in groups.items():
        members = by_top.get_group(group_id)
        largest = max(topics, key=lambda t: (int((members["subtheme_id"] == t).sum()), t))
        rows.append({"theme_id": group_id, "cluster": NO_CLUSTER, "label": topic_of[largest].label,
                     "keywords": list(topic_of[largest].keywords), "category_id": EMERGENT,
                     "taxonomy_theme_id": None, "emergent": True, "confidence": confidence(members),
                     "size": int(len(members)), "parent_id": None})
    for topic in homes.itertuples(index=False):
        emergent = bool(topic.emergent)
        grouped = topic.theme_id in parent_of
        group = by_sub if (grouped or not emergent) else by_top
        if topic.theme_id not in group.groups:
            continue  # none of its cards agrees with its home: its cards sit elsewhere
        members = group.get_group(topic.theme_id)
        rows.append({"theme_id": topic.theme_id, "cluster": int(topic.cluster), "label": topic.label,
                     "keywords": list(topic.keywords), "category_id": topic.category_id,
                     "taxonomy_theme_id": None if emergent else topic.taxonomy_theme_id, "emergent": emergent,
                     "confidence": confidence(members), "size": int(len(members)),
                     "parent_id": parent_of.get(topic.theme_id) if emergent else topic.taxonomy_theme_id})
    return pd.DataFrame(rows, columns=THEMES.names)
