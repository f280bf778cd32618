"""Cluster: BERTopic on precomputed embeddings, with a fallback for small corpora.

Large corpora: seeded UMAP + HDBSCAN. Small corpora (tens of cards), where HDBSCAN finds
nothing useful: agglomerative clustering on the embeddings. Either way BERTopic builds the
c-TF-IDF keywords, and cards in no cluster stay as outliers (cluster -1).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.norwegian import TOKEN_PATTERN, stop_words
from pipeline.params import ClusterParams
from pipeline.records import (
    CLUSTER_ASSIGNMENTS,
    CLUSTER_TOPICS,
    EMBEDDINGS,
    NORMALISED,
    embedding_matrix,
    read_table,
    write_table,
)

log = logging.getLogger(__name__)
OUTLIER = -1
MIN_CARDS = 5


class ClusterError(ValueError):
    """A corpus that cannot be clustered with the given params."""


class SmallCorpusClusterer:
    """Agglomerative clustering (cosine, average linkage); groups below `min_cluster_size` become outliers."""

    def __init__(self, distance_threshold: float = 0.75, min_cluster_size: int = 3):
        self.distance_threshold = distance_threshold
        self.min_cluster_size = min_cluster_size

    def fit(self, X, y=None) -> "SmallCorpusClusterer":
        from sklearn.cluster import AgglomerativeClustering

        raw = AgglomerativeClustering(
            n_clusters=None, distance_threshold=self.distance_threshold, metric="cosine", linkage="average"
        ).fit_predict(X)
        sizes = np.bincount(raw)
        renumber: dict[int, int] = {}
        labels = np.full(len(raw), OUTLIER, dtype=int)
        for i, label in enumerate(raw):
            if sizes[label] >= self.min_cluster_size:
                labels[i] = renumber.setdefault(int(label), len(renumber))
        self.labels_ = labels
        return self


def _hdbscan_submodels(params: ClusterParams, n_docs: int):
    from hdbscan import HDBSCAN
    from umap import UMAP

    umap_model = UMAP(
        n_neighbors=min(params.umap.n_neighbors, n_docs - 1),
        n_components=min(params.umap.n_components, n_docs - 2),
        min_dist=params.umap.min_dist,
        metric="cosine",
        random_state=params.seed,
    )
    cluster_model = HDBSCAN(
        min_cluster_size=params.hdbscan.min_cluster_size,
        min_samples=params.hdbscan.min_samples,
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=True,
    )
    return umap_model, cluster_model


def _agglomerative_submodels(params: ClusterParams, n_docs: int):
    from bertopic.dimensionality import BaseDimensionalityReduction

    return BaseDimensionalityReduction(), SmallCorpusClusterer(
        distance_threshold=params.agglomerative.distance_threshold,
        min_cluster_size=params.agglomerative.min_cluster_size,
    )


# Sub-models by name: each returns (dimensionality reduction, cluster model) for BERTopic.
ALGORITHMS = {"hdbscan": _hdbscan_submodels, "agglomerative": _agglomerative_submodels}


def prepare(embeddings: np.ndarray, center: bool) -> np.ndarray:
    """Mean-centre (removes the direction all e5 vectors share) and L2-normalise."""
    X = embeddings.astype(np.float64)
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms == 0, 1.0, norms)


def make_embedder(backend):
    """Wrap a pipeline embedding backend so BERTopic never reaches for a model hub."""
    from bertopic.backend import BaseEmbedder

    class PipelineEmbedder(BaseEmbedder):
        def embed(self, documents, verbose=False):
            return backend.encode(list(documents))

    return PipelineEmbedder()


def fit_topic_model(docs: list[str], X: np.ndarray, params: ClusterParams, algorithm: str, embedder=None):
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer
    from sklearn.feature_extraction.text import CountVectorizer

    umap_model, cluster_model = ALGORITHMS[algorithm](params, len(docs))
    model = BERTopic(
        embedding_model=embedder,
        umap_model=umap_model,
        hdbscan_model=cluster_model,
        vectorizer_model=CountVectorizer(
            stop_words=sorted(stop_words()), ngram_range=(1, params.ngram_max), token_pattern=TOKEN_PATTERN
        ),
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        top_n_words=max(params.top_n_words, 30),  # candidates; rank_keywords picks the final ones
        calculate_probabilities=False,
    )
    with warnings.catch_warnings():
        # A seeded UMAP runs single-threaded on purpose (determinism); its warning says so.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        topics, _ = model.fit_transform(docs, X)
    return model, np.asarray(topics, dtype=int)


def rank_keywords(candidates: list[str], member_docs: list[str]) -> list[str]:
    """Order c-TF-IDF keywords by how many cards of the cluster use them.

    In small clusters every word occurs once, c-TF-IDF scores tie and BERTopic's order is
    alphabetical; the number of cards that say a word is what makes it representative.
    """
    padded = [" " + " ".join(re.findall(TOKEN_PATTERN, doc.lower())) + " " for doc in member_docs]
    support = {word: sum(f" {word} " in doc for doc in padded) for word in candidates}
    return sorted(candidates, key=lambda word: -support[word])  # stable: c-TF-IDF order breaks ties


def make_label(keywords: list[str], n_words: int, member_docs: list[str] | None = None) -> str:
    """Readable label: the first keywords, one per word stem, each in its commonest form in the cluster.

    "budsjetter, budsjettene, ettårige" becomes "budsjetter, ettårige": forms of one word count once.
    """
    from nltk.stem.snowball import SnowballStemmer  # rule-based: needs no downloaded data

    stem = SnowballStemmer("norwegian").stem
    forms: dict[str, Counter] = {}
    for doc in member_docs or []:
        for token in re.findall(TOKEN_PATTERN, doc.lower()):
            forms.setdefault(stem(token), Counter())[token] += 1
    chosen: list[str] = []
    used: set[str] = set()
    for keyword in keywords:
        stems = [stem(w) for w in keyword.split()]
        if used & set(stems):
            continue
        used.update(stems)
        if len(stems) == 1 and stems[0] in forms:
            keyword = min(forms[stems[0]], key=lambda f: (-forms[stems[0]][f], len(f), f))
        chosen.append(keyword)
        if len(chosen) == n_words:
            break
    return ", ".join(chosen)


def choose_algorithm(params: ClusterParams, n_docs: int) -> str:
    if params.algorithm != "auto":
        return params.algorithm
    return "agglomerative" if n_docs <= params.small_corpus_max else "hdbscan"


def _usable(topics: np.ndarray, params: ClusterParams) -> bool:
    n_topics = len(set(topics.tolist()) - {OUTLIER})
    return n_topics >= 2 and float(np.mean(topics == OUTLIER)) <= params.max_outlier_share


def theme_id_for(card_ids: list[str]) -> str:
    """Stable id from the members, so the same cards always give the same theme id."""
    digest = hashlib.sha1("\n".join(sorted(card_ids)).encode("utf-8")).hexdigest()
    return f"theme-{digest[:10]}"


@dataclass
class ClusterResult:
    assignments: pd.DataFrame
    topics: pd.DataFrame
    model: object
    algorithm: str


def cluster(card_ids: list[str], docs: list[str], embeddings: np.ndarray, params: ClusterParams, embedder=None):
    """Topics for `docs`; every card gets a cluster (-1 = outlier) and its similarity to the centroid."""
    if len(docs) < MIN_CARDS:
        raise ClusterError(f"only {len(docs)} usable cards; clustering needs at least {MIN_CARDS}")
    X = prepare(embeddings, params.center)
    algorithm = choose_algorithm(params, len(docs))
    model, topics = fit_topic_model(docs, X, params, algorithm, embedder)
    if params.algorithm == "auto" and algorithm == "hdbscan" and not _usable(topics, params):
        log.info("cluster: HDBSCAN gave %d topics, %.0f%% outliers; falling back to agglomerative",
                 len(set(topics.tolist()) - {OUTLIER}), 100 * np.mean(topics == OUTLIER))
        algorithm = "agglomerative"
        model, topics = fit_topic_model(docs, X, params, algorithm, embedder)

    similarity = np.zeros(len(docs))
    rows = []
    for topic in sorted(set(topics.tolist()) - {OUTLIER}):
        members = np.flatnonzero(topics == topic)
        centroid = X[members].mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        similarity[members] = X[members] @ centroid
        keywords = rank_keywords([word for word, _ in model.get_topic(topic) if word], [docs[i] for i in members])
        keywords = keywords[: params.top_n_words]
        rows.append(
            {
                "cluster": topic,
                "theme_id": theme_id_for([card_ids[i] for i in members]),
                "label": make_label(keywords, params.label_words, [docs[i] for i in members]) or f"tema {topic}",
                "keywords": keywords,
                "size": len(members),
            }
        )
    assignments = pd.DataFrame({"card_id": card_ids, "cluster": topics, "similarity": similarity})
    topics_table = pd.DataFrame(rows, columns=CLUSTER_TOPICS.names)
    log.info("cluster: %s, %d topics, %d of %d cards outliers", algorithm, len(rows),
             int(np.sum(topics == OUTLIER)), len(docs))
    return ClusterResult(assignments, topics_table, model, algorithm)


def run(*, cards_path: Path, embeddings_path: Path, out_dir: Path, model_dir: Path, params: ClusterParams,
        embedder=None) -> ClusterResult:
    cards = read_table(cards_path, NORMALISED)
    table = read_table(embeddings_path, EMBEDDINGS)
    text_by_id = dict(zip(cards["card_id"], cards["text_norm"]))
    result = cluster(
        table["card_id"].tolist(),
        [text_by_id[c] for c in table["card_id"]],
        embedding_matrix(table),
        params,
        embedder,
    )
    write_table(result.assignments, CLUSTER_ASSIGNMENTS, out_dir / "assignments.parquet")
    write_table(result.topics, CLUSTER_TOPICS, out_dir / "topics.parquet")
    save_model(result.model, model_dir)
    return result


def save_model(model, model_dir: Path) -> None:
    """safetensors (no pickle), written to a temp folder and renamed into place, so a killed run
    never leaves a half-written model. The embedding backend is passed again to `BERTopic.load`,
    so BERTopic's warning about saving without one is expected and silenced."""
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = model_dir.with_name(f".{model_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    bertopic_log = logging.getLogger("BERTopic")
    level = bertopic_log.level
    bertopic_log.setLevel(logging.ERROR)
    try:
        model.save(str(staging), serialization="safetensors", save_ctfidf=True, save_embedding_model=False)
    finally:
        bertopic_log.setLevel(level)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(staging, model_dir)
