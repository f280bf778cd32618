"""Map: every card, and every theme, to a taxonomy theme and category, or to `emergent`.

A card is compared with prototypes of each taxonomy theme: its name and statements, the
codebook's paraphrases, and cards an analyst has labelled (few-shot). A theme's score is the
mean similarity of its `top_k` nearest prototypes (mean-centred embeddings) plus lexical
evidence: codebook cue stems found in the card. A card scoring below `emergent_threshold` for
every theme is emergent. With labels, a card is also emergent when a novelty detector trained on
them (`pipeline.map_fewshot`) says so; with too few labelled emergent cards for that, when it is
nearest to a labelled emergent topic. A cluster takes the category its cards vote for. Analyst
labels always win for the labelled card itself.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.curation import apply_rules, load_curation, relabel, settle
from pipeline.embed import EmbeddingCache, cache_key, embed_texts, make_backend, model_id_of
from pipeline.engine import LocalEngine, open_engine
from pipeline.ids import EMERGENT, OUTLIER
from pipeline.map_fewshot import emergent_probability, fit_temperature, training_mask
from pipeline.map_hierarchy import build_hierarchy
from pipeline.params import MapParams, Params
from pipeline.records import (
    CARD_MAP,
    CLUSTER_ASSIGNMENTS,
    CLUSTER_TOPICS,
    CURATION,
    NORMALISED,
    STATUS_ASSIGNED,
    STATUS_OK,
    STATUS_OUTLIER,
    STATUS_REJECTED,
    THEME_CHANGES,
    THEMES,
    embedding_matrix,
    read_embeddings,
    read_table,
    write_table,
)
from pipeline.taxonomy import Codebook, LabelError, Taxonomy, load_codebook, load_labels, load_taxonomy  # noqa: F401 (re-exported)
from pipeline.vectors import centred_unit, softmax, top_k_mean, unit_rows  # noqa: F401 (softmax re-exported)

log = logging.getLogger(__name__)
LABELLED_CONFIDENCE = 1.0
_WORDS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Target:
    """A theme a card can be mapped to: a taxonomy theme, or an emergent topic an analyst named."""

    id: str
    category_id: str
    taxonomy_theme_id: str | None


def prototype_texts(taxonomy: Taxonomy, codebook: Codebook) -> list[tuple[str, str]]:
    """(taxonomy theme id, text) for every prototype sentence of the taxonomy."""
    texts = []
    for theme in taxonomy.themes:
        texts.append((theme.id, theme.prototype))
        texts.extend((theme.id, f"{theme.name}: {s}") for s in theme.statements)
        texts.extend((theme.id, phrase) for phrase in codebook.phrases.get(theme.id, ()))
    return texts


def lexical_hits(texts: list[str], targets: list[Target], codebook: Codebook, max_hits: int) -> np.ndarray:
    """(cards, targets): how many of a theme's cue stems start a word of the card."""
    hits = np.zeros((len(texts), len(targets)))
    cues_of = [codebook.cues.get(t.taxonomy_theme_id, ()) if t.taxonomy_theme_id else () for t in targets]
    all_cues = sorted({cue for cues in cues_of for cue in cues})
    cue_column = {cue: k for k, cue in enumerate(all_cues)}
    # Which cues each distinct word starts with: computed once per word, not once per card and theme.
    starts: dict[str, tuple[int, ...]] = {}
    found = np.zeros((len(texts), len(all_cues)), dtype=bool)
    for i, text in enumerate(texts):
        for word in set(_WORDS.findall(text.lower())):
            if word not in starts:
                starts[word] = tuple(k for k, cue in enumerate(all_cues) if word.startswith(cue))
            found[i, list(starts[word])] = True
    for j, cues in enumerate(cues_of):
        if cues:
            hits[:, j] = found[:, [cue_column[cue] for cue in cues]].sum(axis=1)
    return np.minimum(hits, max_hits)


SCORE_BLOCK = 4096  # cards scored at a time: bounds the float64 copies of the vectors and the similarity block


def score_part(part: tuple[np.ndarray, list[str], np.ndarray | None], mean: np.ndarray, prototypes: np.ndarray,
               owner: np.ndarray, weight: np.ndarray, targets: list[Target], codebook: Codebook, params: MapParams,
               block: int = SCORE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, cue hits) of one partition: `part` is its cards' vectors, texts and `exclude` rows (or None),
    `prototypes` the unit prototype vectors centred on the corpus `mean`. Run on the engine's workers."""
    card_vectors, texts, exclude = part
    scores = np.full((len(card_vectors), len(targets)), -1.0)
    for start in range(0, len(card_vectors), block):
        C = unit_rows(card_vectors[start:start + block].astype(np.float64) - mean)
        # One matrix-vector product per card (a stack of 1 x d rows): a matrix product's last bit depends on
        # the block's shape (OpenBLAS picks kernels by it), a card's own product does not, so neither do the
        # scores on how the cards are partitioned.
        similarity = (C[:, None, :] @ prototypes.T)[:, 0, :] * weight[None, :]
        if exclude is not None:
            similarity = np.where(exclude[start:start + block], -np.inf, similarity)
        for j, target in enumerate(targets):
            columns = similarity[:, owner == target.id]
            if columns.shape[1] == 0:
                continue
            scores[start:start + block, j] = top_k_mean(columns, params.top_k, empty=-1.0)
    return scores, lexical_hits(texts, targets, codebook, params.max_cue_hits)


def score_cards(
    card_vectors: np.ndarray,
    texts: list[str],
    prototype_vectors: np.ndarray,
    prototype_owner: list[str],
    prototype_weight: np.ndarray,
    targets: list[Target],
    codebook: Codebook,
    params: MapParams,
    exclude: np.ndarray | None = None,
    block: int = SCORE_BLOCK,
    engine: LocalEngine | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(cards, targets) embedding similarity and cue hits. `exclude[i, p]` hides prototype p from
    card i (its own label). The cards (float32 or float64) are centred on their mean and scored in float64,
    `block` at a time (`score_part`), here or on `engine` in partitions of its `partition_size` cards: each
    card is scored on its own, so the numbers depend on neither."""
    mean = card_vectors.mean(axis=0, keepdims=True, dtype=np.float64)  # of all the cards, before partitioning
    shared = (mean, unit_rows(prototype_vectors - mean), np.asarray(prototype_owner), prototype_weight, targets,
              codebook, params, block)
    if engine is None:
        return score_part((card_vectors, texts, exclude), *shared)
    step = engine.params.partition_size
    parts = ((card_vectors[start:start + step], texts[start:start + step],
              None if exclude is None else exclude[start:start + step])
             for start in range(0, max(len(card_vectors), 1), step))  # no cards: one empty part, empty results
    similarity, cues = zip(*engine.map(score_part, parts, *shared))
    return np.concatenate(similarity), np.concatenate(cues)


def decide(similarity: np.ndarray, cues: np.ndarray, targets: list[Target], params: MapParams):
    """Best target (None = emergent, fits no theme) and how sure we are of its category.

    A card naming a theme's cue word is emergent only when its meaning is also far from every
    theme (`cue_veto_floor`): "budsjett" in a card is strong evidence for the budget theme.
    The confidence is the category's probability, summed over its themes: a card torn between
    two themes of one category is still sure of the category.
    """
    scores = similarity + params.lexical_weight * cues
    best = int(np.argmax(scores))
    vetoed = cues.max() > 0 and similarity.max() >= params.cue_veto_floor
    if scores[best] < params.emergent_threshold and not vetoed:
        margin = (params.emergent_threshold - scores[best]) / params.temperature
        return None, float(1.0 / (1.0 + np.exp(-margin)))
    same_category = np.array([t.category_id == targets[best].category_id for t in targets])
    return targets[best], float(softmax(scores, params.temperature)[same_category].sum())


def _placement(target: Target | None) -> dict:
    if target is None:
        return {"category_id": EMERGENT, "taxonomy_theme_id": None}
    return {"category_id": target.category_id, "taxonomy_theme_id": target.taxonomy_theme_id}


def map_to_taxonomy(
    cards: pd.DataFrame,
    card_embeddings: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    prototypes: list[tuple[str, np.ndarray]],
    taxonomy: Taxonomy,
    codebook: Codebook,
    params: MapParams,
    labels: pd.DataFrame | None = None,
    engine: LocalEngine | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(themes, card map). Every card in `cards` gets exactly one row in the card map. The cards are scored on
    `engine`'s partitions (None: here, at once); the card map is the same either way."""
    labels = labels if labels is not None else pd.DataFrame(columns=["card_id", "theme_id"])
    row_of = {card_id: i for i, card_id in enumerate(card_embeddings["card_id"])}
    labels = labels[labels["card_id"].isin(row_of)]
    targets = [Target(t.id, t.category_id, t.id) for t in taxonomy.themes]
    targets += [Target(t, EMERGENT, None) for t in sorted(set(labels["theme_id"]) - {t.id for t in targets})]
    X = embedding_matrix(card_embeddings)  # float32; score_cards works in float64 a block at a time
    label_rows = [row_of[c] for c in labels["card_id"]]
    vectors = np.vstack([np.stack([v for _, v in prototypes]).astype(np.float64)] + ([X[label_rows]] if label_rows else []))
    owner = [t for t, _ in prototypes] + labels["theme_id"].tolist()
    weight = np.concatenate([np.ones(len(prototypes)), np.full(len(label_rows), params.label_weight)])
    exclude = np.zeros((len(X), len(vectors)), dtype=bool)
    for k, row in enumerate(label_rows):
        exclude[row, len(prototypes) + k] = True  # a labelled card is no evidence for itself
    text_by_id = dict(zip(cards["card_id"], cards["text_norm"]))
    texts = [text_by_id[c] for c in card_embeddings["card_id"]]
    similarity, cues = score_cards(X, texts, vectors, owner, weight, targets, codebook, params, exclude,
                                   engine=engine)
    taxonomy_columns = np.array([t.taxonomy_theme_id is not None for t in targets])
    groups, fully_labelled = _label_workshops(labels, cards, card_embeddings["card_id"].tolist())
    novelty = _novelty(X, texts, prototypes, targets, taxonomy_columns, label_rows, labels, groups, fully_labelled,
                       codebook, params, engine)
    params = _calibrated(params, X, texts, vectors, owner, weight, targets,
                         taxonomy_columns if novelty is not None else np.ones(len(targets), dtype=bool),
                         labels, label_rows, groups, fully_labelled, codebook, engine)
    label_of = dict(zip(labels["card_id"], labels["theme_id"]))
    target_by_id = {t.id: t for t in targets}
    cluster_of = dict(zip(assignments["card_id"], assignments["cluster"]))
    similarity_of = dict(zip(assignments["card_id"], assignments["similarity"]))
    theme_id_of = dict(zip(topics["cluster"], topics["theme_id"]))

    card_rows = []
    for card in cards.itertuples(index=False):
        row = {"card_id": card.card_id, "status": STATUS_REJECTED, "theme_id": None, "category_id": None,
               "taxonomy_theme_id": None, "confidence": None, "centrality": None, "subtheme_id": None}
        if card.status == STATUS_OK:
            if card.card_id in label_of:
                target = target_by_id[label_of[card.card_id]]
                target, confidence = (None if target.category_id == EMERGENT else target), LABELLED_CONFIDENCE
            else:
                i = row_of[card.card_id]
                if novelty is None:
                    target, confidence = decide(similarity[i], cues[i], targets, params)
                    if target is not None and target.category_id == EMERGENT:
                        target = None  # nearest to an emergent topic an analyst named
                else:
                    target, confidence = _decide_with_novelty(similarity[i], cues[i], novelty[i], targets,
                                                              taxonomy_columns, params)
            cluster = int(cluster_of[card.card_id])
            row.update(
                status=STATUS_OUTLIER if cluster == OUTLIER else STATUS_ASSIGNED,
                theme_id=theme_id_of.get(cluster),
                **_placement(target),
                confidence=round(confidence, 4),
                centrality=float(similarity_of.get(card.card_id, 0.0)),
            )
        card_rows.append(row)
    card_map = pd.DataFrame(card_rows, columns=CARD_MAP.names)
    return theme_votes(topics, card_map), card_map


def _label_workshops(labels: pd.DataFrame, cards: pd.DataFrame, card_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(workshop of each label, whether every card of that workshop is labelled); see
    pipeline.map_fewshot. An in-memory table without workshops makes every card its own group."""
    group_of = dict(zip(cards["card_id"], cards["workshop_id"] if "workshop_id" in cards else cards["card_id"]))
    groups = np.array([group_of[c] for c in labels["card_id"]], dtype=object)
    labelled = set(labels["card_id"])
    partly_labelled = {group_of[c] for c in card_ids if c not in labelled}
    return groups, np.array([g not in partly_labelled for g in groups], dtype=bool)


def _novelty(X, texts, prototypes, targets, taxonomy_columns, label_rows, labels, groups, fully_labelled, codebook,
             params: MapParams, engine: LocalEngine | None = None) -> np.ndarray | None:
    """(cards,) P(emergent) from the novelty detector, or None with too few labels to train it."""
    is_emergent = np.array([t.startswith(f"{EMERGENT}:") for t in labels["theme_id"]], dtype=bool)
    if min(is_emergent.sum(), (~is_emergent).sum()) < params.min_emergent_labels:
        return None
    taxonomy_targets = [t for t, keep in zip(targets, taxonomy_columns) if keep]
    zero_shot, zero_shot_cues = score_cards(
        X, texts, np.stack([v for _, v in prototypes]).astype(np.float64), [t for t, _ in prototypes],
        np.ones(len(prototypes)), taxonomy_targets, codebook, params, engine=engine)
    C, = centred_unit(X.astype(np.float64))
    rows = np.asarray(label_rows, dtype=int)
    return emergent_probability(C @ C[rows].T, zero_shot + params.lexical_weight * zero_shot_cues, rows,
                                is_emergent, groups, fully_labelled, params.top_k)


def _calibrated(params: MapParams, X, texts, vectors, owner, weight, targets, columns, labels, label_rows, groups,
                fully_labelled, codebook, engine: LocalEngine | None = None) -> MapParams:
    """`params` with the temperature fitted to the cards labelled with a taxonomy theme, each scored
    as an unlabelled card of its workshop would be; unchanged with fewer than
    `min_calibration_labels` of them. `columns`: the targets the decision chooses among."""
    target_of = {t.id: t for t in targets}
    on_taxonomy = [k for k, theme in enumerate(labels["theme_id"]) if target_of[theme].taxonomy_theme_id]
    if len(on_taxonomy) < params.min_calibration_labels:
        return params
    n_prototypes = len(vectors) - len(label_rows)
    rows = np.asarray(label_rows, dtype=int)
    hidden = np.zeros((len(X), len(vectors)), dtype=bool)
    hidden[rows[:, None], n_prototypes + np.arange(len(rows))[None, :]] = training_mask(groups, fully_labelled)
    similarity, cues = score_cards(X, texts, vectors, owner, weight, targets, codebook, params, hidden, engine=engine)
    scores = (similarity + params.lexical_weight * cues)[rows[on_taxonomy]][:, columns]
    categories = sorted({t.category_id for t in targets})
    in_category = np.array([[t.category_id == c for c in categories] for t, keep in zip(targets, columns) if keep],
                           dtype=float)
    right = np.array([[target_of[labels["theme_id"].iloc[k]].category_id == c for c in categories]
                      for k in on_taxonomy], dtype=float)
    temperature = fit_temperature(scores, in_category, right)
    log.info("map: temperature %.4f fitted to %d labelled cards (zero-shot: %.4f)", temperature, len(on_taxonomy),
             params.temperature)
    return params.model_copy(update={"temperature": temperature})


def _decide_with_novelty(similarity, cues, p_emergent: float, targets, taxonomy_columns, params: MapParams):
    """The best taxonomy theme, unless the card fits none or the novelty detector calls it emergent."""
    taxonomy_targets = [t for t, keep in zip(targets, taxonomy_columns) if keep]
    target, confidence = decide(similarity[taxonomy_columns], cues[taxonomy_columns], taxonomy_targets, params)
    if p_emergent >= params.emergent_probability:
        return None, float(p_emergent)
    if target is None:
        return None, confidence
    # P(this theme) = P(not emergent) * P(theme | not emergent)
    return target, float((1.0 - p_emergent) * confidence)


def theme_votes(topics: pd.DataFrame, card_map: pd.DataFrame) -> pd.DataFrame:
    """Each cluster takes the placement its cards vote for, weighted by their confidence."""
    members_of = card_map.groupby("theme_id", sort=False).indices  # positions in card order
    categories, themes = card_map["category_id"].to_numpy(), card_map["taxonomy_theme_id"].to_numpy()
    confidences = card_map["confidence"].to_numpy()
    rows = []
    for topic in topics.itertuples(index=False):
        votes: dict[tuple, float] = defaultdict(float)
        for i in members_of.get(topic.theme_id, ()):
            votes[(categories[i], themes[i] or "")] += confidences[i]
        category_votes = Counter()
        for (category, _), weight in votes.items():
            category_votes[category] += weight
        category = max(sorted(category_votes), key=lambda c: category_votes[c])
        theme = max(sorted(k for k in votes if k[0] == category), key=lambda k: votes[k])[1] or None
        total = sum(votes.values()) or 1.0
        rows.append(
            {"theme_id": topic.theme_id, "cluster": topic.cluster, "label": topic.label,
             "keywords": list(topic.keywords), "category_id": category,
             "taxonomy_theme_id": None if category == EMERGENT else theme, "emergent": category == EMERGENT,
             "confidence": round(float(category_votes[category] / total), 4), "size": int(topic.size),
             "parent_id": None}
        )
    return pd.DataFrame(rows, columns=THEMES.names)


def card_vectors(card_map: pd.DataFrame, card_embeddings: pd.DataFrame, block: int = SCORE_BLOCK) -> np.ndarray:
    """Mean-centred unit vectors in `card_map` order; zero rows for cards without an embedding (rejected).
    Filled `block` cards at a time from the float32 vectors: the numbers of `centred_unit` on all of them."""
    X = embedding_matrix(card_embeddings)
    row_of = {card_id: i for i, card_id in enumerate(card_embeddings["card_id"])}
    out = np.zeros((len(card_map), X.shape[1]))
    at = [(k, row_of[card_id]) for k, card_id in enumerate(card_map["card_id"]) if card_id in row_of]
    if not at:
        return out
    mean = X.mean(axis=0, keepdims=True, dtype=np.float64)
    positions, rows = (np.array(column) for column in zip(*at))
    for start in range(0, len(rows), block):
        out[positions[start:start + block]] = unit_rows(X[rows[start:start + block]].astype(np.float64) - mean)
    return out


def embed_prototypes(texts: list[tuple[str, str]], backend, cache_dir: Path) -> list[tuple[str, np.ndarray]]:
    cache = EmbeddingCache(cache_dir, backend.model_id)
    wanted = [text for _, text in texts]
    cached = cache.load_keys([cache_key(backend.model_id, text) for text in wanted])
    vectors, _, _ = embed_texts(wanted, backend, cached, cache.add)
    return [(theme_id, vector) for (theme_id, _), vector in zip(texts, vectors)]


CALIBRATION_TEXTS = Path(__file__).parent / "defaults" / "calibration_texts.txt"
BUNDLED_BACKEND = "e5-small-q4"


def calibration_texts() -> list[str]:
    """The card texts on which thresholds are moved between encoders (the demo corpus's, packaged)."""
    lines = CALIBRATION_TEXTS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def best_scores(vectors: np.ndarray, prototypes: list[tuple[str, np.ndarray]], taxonomy: Taxonomy,
                codebook: Codebook, params: MapParams) -> np.ndarray:
    """Each text's best similarity to a taxonomy theme, without cue words: the scale `emergent_threshold` is on."""
    targets = [Target(t.id, t.category_id, t.id) for t in taxonomy.themes]
    similarity, _ = score_cards(np.asarray(vectors, dtype=np.float64), [""] * len(vectors),
                                np.stack([v for _, v in prototypes]).astype(np.float64), [t for t, _ in prototypes],
                                np.ones(len(prototypes)), targets, codebook, params)
    return similarity.max(axis=1)


def on_scale_of(params: MapParams, bundled_scores: np.ndarray, scores: np.ndarray) -> MapParams:
    """`params`, set on the bundled encoder's similarity scale, moved to another encoder's, both measured on the
    same texts: each threshold to the same quantile of best scores, the cue weight and the temperature by the
    ratio of the spreads. Tuning pulls a theme's texts together and spreads the scores: without this, the frozen
    threshold made 1 card in 32 emergent on the devset and dropped zero-shot accuracy from 0.79 to 0.71."""
    def moved(threshold: float) -> float:
        return float(np.quantile(scores, float(np.mean(bundled_scores < threshold))))

    ratio = float(np.std(scores) / np.std(bundled_scores))
    return params.model_copy(update={
        "emergent_threshold": moved(params.emergent_threshold), "cue_veto_floor": moved(params.cue_veto_floor),
        "lexical_weight": params.lexical_weight * ratio, "temperature": params.temperature * ratio})


def params_for_encoder(params: MapParams, backend, prototypes: list[tuple[str, np.ndarray]], taxonomy: Taxonomy,
                       codebook: Codebook, cache_dir: Path) -> MapParams:
    """`params` on `backend`'s similarity scale: unchanged for the bundled encoder they were set on (in the engine or
    in ONNX Runtime), else moved
    with `on_scale_of` on the calibration texts (embedded once per encoder, through the embedding cache)."""
    # The bundled weights in ONNX Runtime (`e5-small-onnx`): vectors at cosine 0.9999 to the engine's, same scale.
    if backend.model_id == model_id_of(BUNDLED_BACKEND) or getattr(backend, "bundled_weights", False):
        return params
    bundled = make_backend(BUNDLED_BACKEND)
    texts = calibration_texts()
    scores = []
    for encoder, encoder_prototypes in ((bundled, None), (backend, prototypes)):
        cache = EmbeddingCache(cache_dir, encoder.model_id)
        cached = cache.load_keys([cache_key(encoder.model_id, text) for text in texts])
        vectors, _, _ = embed_texts(texts, encoder, cached, cache.add)
        encoder_prototypes = encoder_prototypes or embed_prototypes(prototype_texts(taxonomy, codebook), encoder,
                                                                    cache_dir)
        scores.append(best_scores(vectors, encoder_prototypes, taxonomy, codebook, params))
    moved = on_scale_of(params, *scores)
    log.info("map: thresholds moved to %s's similarity scale: emergent_threshold %.4f -> %.4f, temperature "
             "%.4f -> %.4f", backend.model_id, params.emergent_threshold, moved.emergent_threshold, params.temperature,
             moved.temperature)
    return moved


def run(*, cards_path: Path, embeddings_path: Path, cluster_dir: Path, taxonomy_path: Path, codebook_path: Path,
        cache_dir: Path, out_dir: Path, params: Params, labels_path: Path | None = None,
        curation_path: Path | None = None):
    """Write themes.parquet, cards.parquet and curation.parquet (what each curation rule did)."""
    cards = read_table(cards_path, NORMALISED, columns=["card_id", "workshop_id", "status", "text_norm"])
    taxonomy = load_taxonomy(taxonomy_path)
    codebook = load_codebook(codebook_path, taxonomy)
    curation = load_curation(curation_path)  # before the slow part: a broken file fails at once
    backend = make_backend(params.embed.backend, cache_dir=cache_dir)
    embeddings = read_embeddings(embeddings_path)
    topics = read_table(cluster_dir / "topics.parquet", CLUSTER_TOPICS)
    prototypes = embed_prototypes(prototype_texts(taxonomy, codebook), backend, cache_dir)
    map_params = params_for_encoder(params.map, backend, prototypes, taxonomy, codebook, cache_dir)
    assignments = read_table(cluster_dir / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    labels = load_labels(labels_path, taxonomy) if labels_path else None
    with open_engine(params.engine) as engine:
        themes, card_map = map_to_taxonomy(cards, embeddings, assignments, topics, prototypes, taxonomy, codebook,
                                           map_params, labels, engine)
    keep: frozenset[str] = frozenset()
    outcome = None
    if curation.rules:
        changes = read_table(cluster_dir / "changes.parquet", THEME_CHANGES)
        gone = {c.theme_id: (f"merged into {c.merged_into}" if c.change == "merged" else c.change)
                for c in changes.itertuples(index=False) if c.change in ("merged", "retired")}
        texts = dict(zip(cards["card_id"], cards["text_norm"]))
        topics, card_map, outcome = apply_rules(curation, topics, card_map, texts, taxonomy, gone)
        themes, card_map = settle(outcome, theme_votes(topics, card_map), card_map, taxonomy)
        keep = frozenset(outcome.keep)
    themes, card_map = build_hierarchy(card_map, themes, taxonomy, card_vectors(card_map, embeddings),
                                       map_params.theme_min_confidence, map_params.emergent_group_distance,
                                       map_params.min_subtheme_cards, keep)
    log_rows = []
    if outcome is not None:
        themes = relabel(curation, outcome, themes)
        log_rows = outcome.log
        log.info("map: %d curation rule(s) applied from %s", len(log_rows), curation.path)
    write_table(themes, THEMES, out_dir / "themes.parquet")
    write_table(card_map, CARD_MAP, out_dir / "cards.parquet")
    write_table(pd.DataFrame(log_rows, columns=CURATION.names), CURATION, out_dir / "curation.parquet")
    return themes, card_map
