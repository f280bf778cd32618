"""Map: each cluster, and each card, to a taxonomy theme and category, or to `emergent`.

Similarity between mean-centred embeddings of the cards and of the theme prototypes
(name + statements or description). A cluster whose best similarity is below
`map.emergent_threshold` fits no theme and is reported as emergent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cluster import OUTLIER
from pipeline.embed import EmbeddingCache, embed_texts, make_backend
from pipeline.params import MapParams, Params
from pipeline.records import (
    CARD_MAP,
    CLUSTER_ASSIGNMENTS,
    CLUSTER_TOPICS,
    EMBEDDINGS,
    NORMALISED,
    STATUS_ASSIGNED,
    STATUS_OK,
    STATUS_OUTLIER,
    STATUS_REJECTED,
    THEMES,
    embedding_matrix,
    read_table,
    write_table,
)
from pipeline.taxonomy import EMERGENT, Taxonomy, load_taxonomy


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.where(norms == 0, 1.0, norms)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = (scores - scores.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def decide(scores: np.ndarray, params: MapParams) -> tuple[int | None, float]:
    """Best taxonomy theme (None = emergent) and how sure we are of that decision."""
    best = int(np.argmax(scores))
    if scores[best] < params.emergent_threshold:
        margin = (params.emergent_threshold - scores[best]) / params.temperature
        return None, float(1.0 / (1.0 + np.exp(-margin)))
    return best, float(softmax(scores, params.temperature)[best])


def map_to_taxonomy(
    cards: pd.DataFrame,
    card_embeddings: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    prototype_vectors: np.ndarray,
    taxonomy: Taxonomy,
    params: MapParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(themes, card map). Every card in `cards` gets exactly one row in the card map."""
    tax_themes = taxonomy.themes
    X = embedding_matrix(card_embeddings).astype(np.float64)
    mean = X.mean(axis=0, keepdims=True)
    C, P = _unit(X - mean), _unit(prototype_vectors.astype(np.float64) - mean)
    card_scores = C @ P.T  # (cards, taxonomy themes)
    row_of = {card_id: i for i, card_id in enumerate(card_embeddings["card_id"])}
    cluster_of = dict(zip(assignments["card_id"], assignments["cluster"]))
    similarity_of = dict(zip(assignments["card_id"], assignments["similarity"]))

    def where(best: int | None) -> dict:
        return {
            "category_id": EMERGENT if best is None else tax_themes[best].category_id,
            "taxonomy_theme_id": None if best is None else tax_themes[best].id,
        }

    theme_rows, decision, centroid_scores = [], {}, {}
    for topic in topics.itertuples(index=False):
        members = [row_of[c] for c, k in cluster_of.items() if k == topic.cluster]
        centroid_scores[topic.cluster] = _unit(C[members].mean(axis=0)) @ P.T
        best, confidence = decide(centroid_scores[topic.cluster], params)
        decision[topic.cluster] = (topic.theme_id, best, confidence)
        theme_rows.append(
            {"theme_id": topic.theme_id, "cluster": topic.cluster, "label": topic.label,
             "keywords": list(topic.keywords), **where(best), "emergent": best is None,
             "confidence": round(confidence, 4), "size": int(topic.size)}
        )

    card_rows = []
    for card in cards.itertuples(index=False):
        row = {"card_id": card.card_id, "status": STATUS_REJECTED, "theme_id": None, "category_id": None,
               "taxonomy_theme_id": None, "confidence": None, "centrality": None}
        if card.status == STATUS_OK:
            # A card's category blends its own evidence with its cluster's, so one off-topic
            # card does not drag its cluster, and a mixed cluster does not relabel every card.
            scores = card_scores[row_of[card.card_id]]
            cluster = int(cluster_of[card.card_id])
            if cluster != OUTLIER:
                scores = params.cluster_weight * centroid_scores[cluster] + (1 - params.cluster_weight) * scores
            best, confidence = decide(scores, params)
            row.update(
                status=STATUS_OUTLIER if cluster == OUTLIER else STATUS_ASSIGNED,
                theme_id=None if cluster == OUTLIER else decision[cluster][0],
                **where(best),
                confidence=round(confidence, 4),
                centrality=float(similarity_of.get(card.card_id, 0.0)),
            )
        card_rows.append(row)
    return pd.DataFrame(theme_rows, columns=THEMES.names), pd.DataFrame(card_rows, columns=CARD_MAP.names)


def run(*, cards_path: Path, embeddings_path: Path, cluster_dir: Path, taxonomy_path: Path, cache_dir: Path,
        out_dir: Path, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    cards = read_table(cards_path, NORMALISED)
    card_embeddings = read_table(embeddings_path, EMBEDDINGS)
    assignments = read_table(cluster_dir / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    topics = read_table(cluster_dir / "topics.parquet", CLUSTER_TOPICS)
    taxonomy = load_taxonomy(taxonomy_path)
    backend = make_backend(params.embed.backend)
    cache = EmbeddingCache(cache_dir, backend.model_id)
    prototypes, _, _ = embed_texts([t.prototype for t in taxonomy.themes], backend, cache.load(), cache.add)
    themes, card_map = map_to_taxonomy(cards, card_embeddings, assignments, topics, prototypes, taxonomy, params.map)
    write_table(themes, THEMES, out_dir / "themes.parquet")
    write_table(card_map, CARD_MAP, out_dir / "cards.parquet")
    return themes, card_map
