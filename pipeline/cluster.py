"""Cluster: BERTopic on precomputed embeddings, with a fallback for small corpora.

Large corpora: seeded UMAP + HDBSCAN. Small corpora (tens of cards), where HDBSCAN finds
nothing useful: agglomerative clustering on the embeddings. Either way BERTopic builds the
c-TF-IDF keywords over lemmatised terms (`pipeline.topic_labels`), and cards in no cluster stay
as outliers (cluster -1).
"""
from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import registry
from pipeline.errors import InnsiktError
from pipeline.ids import OUTLIER
from pipeline.numba_cache import enable_jit_cache
from pipeline.topic_labels import TermAnalyzer, analyzer_for, make_label, rank_keywords, shown, usage_in
from pipeline.engine import LocalEngine, open_engine
from pipeline.params import ClusterParams, EngineParams
from pipeline.records import (
    CLUSTER_ASSIGNMENTS,
    CLUSTER_TOPICS,
    NORMALISED,
    THEME_CHANGES,
    embedding_matrix,
    read_embeddings,
    read_table,
    write_table,
    write_text,
)
from pipeline.vectors import to_unit_rows

log = logging.getLogger(__name__)
MIN_CARDS = 5


class ClusterError(InnsiktError):
    """A corpus that cannot be clustered with the given params."""


class SmallCorpusClusterer:
    """Agglomerative clustering (cosine, average linkage); groups below `min_cluster_size` become outliers."""

    def __init__(self, distance_threshold: float, min_cluster_size: int):  # cluster.agglomerative
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


# BERTopic imports every optional integration up front. These cost about 10 s in every cluster
# process (torch also through spaCy's thinc), and we use none of them: we give BERTopic the
# embeddings, an embedder and the sub-models. Hidden while it loads, they are marked as not
# installed inside BERTopic only, and importable as usual afterwards.
UNUSED_BY_BERTOPIC = ("sentence_transformers", "transformers", "torch")


@lru_cache(maxsize=1)
def load_bertopic():
    """The BERTopic package, imported without the integrations in UNUSED_BY_BERTOPIC."""
    import importlib
    import sys

    import scipy.stats  # noqa: F401  (scipy probes sys.modules["torch"] while it loads: load it first)

    hidden = [name for name in UNUSED_BY_BERTOPIC if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))  # None: "import torch" raises ModuleNotFoundError
    try:
        return importlib.import_module("bertopic")
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def exact_neighbours(X: np.ndarray, k: int, max_block: int = 2**23) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of each row of unit vectors (itself first), by cosine distance.

    Exact and deterministic (ties go to the lower index), and on 2 cores faster than UMAP's
    approximate search, whose numba code is compiled afresh in every process.
    """
    n = len(X)
    chunk = max(1, max_block // n)  # rows per block: a block of distances (and its argpartition) stays under 64 MB
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        d = X[start:start + chunk] @ X.T
        np.clip(np.subtract(1.0, d, out=d), 0.0, 2.0, out=d)  # in place: np.clip(1.0 - d, 0.0, 2.0)
        d[np.arange(len(d)), np.arange(start, start + len(d))] = -1.0  # itself first, whatever rounding says
        top = np.argpartition(d, k - 1, axis=1)[:, :k]
        rows = np.arange(len(d))[:, None]
        order = np.lexsort((top, d[rows, top]), axis=1)
        indices[start:start + len(d)] = top[rows, order]
        distances[start:start + len(d)] = np.maximum(d[rows, top[rows, order]], 0.0)
    return indices, distances


def _hdbscan_submodels(params: ClusterParams, X: np.ndarray):
    from hdbscan import HDBSCAN
    from umap import UMAP

    enable_jit_cache()
    n_docs = len(X)
    n_neighbors = min(params.umap.n_neighbors, n_docs - 1)
    umap_model = UMAP(
        n_neighbors=n_neighbors,
        n_components=min(params.umap.n_components, n_docs - 2),
        min_dist=params.umap.min_dist,
        metric="cosine",
        random_state=params.seed,
        precomputed_knn=(*exact_neighbours(X, n_neighbors), None),
    )
    cluster_model = HDBSCAN(
        min_cluster_size=params.hdbscan.min_cluster_size,
        min_samples=params.hdbscan.min_samples,
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=True,
    )
    return umap_model, cluster_model


def _agglomerative_submodels(params: ClusterParams, X: np.ndarray):
    load_bertopic()
    from bertopic.dimensionality import BaseDimensionalityReduction

    return BaseDimensionalityReduction(), SmallCorpusClusterer(
        distance_threshold=params.agglomerative.distance_threshold,
        min_cluster_size=params.agglomerative.min_cluster_size,
    )


def _given_submodels(params: ClusterParams, X: np.ndarray):
    """No clustering: BERTopic only describes topics given as `y` (manual topic modelling)."""
    load_bertopic()
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction

    class NoVectors(BaseDimensionalityReduction):
        """Nothing to reduce: BaseCluster takes the given labels. BaseDimensionalityReduction hands on the
        vectors, which BERTopic copies (`nan_to_num`): 0.3 GB at 100k cards, for nothing."""

        def transform(self, X):
            return np.zeros((len(X), 0))

    return NoVectors(), BaseCluster()


# Sub-models by name: each returns (dimensionality reduction, cluster model) for BERTopic.
ALGORITHMS = {"hdbscan": _hdbscan_submodels, "agglomerative": _agglomerative_submodels, "incremental": _given_submodels,
              "one-per-card": _given_submodels, "sample": _given_submodels}


def prepare(embeddings: np.ndarray, center: bool, card_types=None) -> np.ndarray:
    """Mean-centre (removes the direction all e5 vectors share) and L2-normalise.

    With `card_types`, each type's own mean is removed instead: all wish cards complete the same
    printed prompt ("Jeg ønsker at ..."), oracle cards are questions, reflections are long, and
    that shared form would otherwise pull a type's cards into one theme whatever they say.
    """
    # In place, the same numbers as unit_rows(X - mean): at 100k cards each copy of X is 0.3 GB.
    X = embeddings.astype(np.float64)
    if center:
        X -= X.mean(axis=0, keepdims=True)
    if center and card_types is not None:
        types = np.asarray(card_types, dtype=object)
        for card_type in sorted(set(types.tolist())):
            members = types == card_type
            if members.sum() >= MIN_CARDS:  # a type's mean from a handful of cards is mostly their content
                X[members] -= X[members].mean(axis=0, keepdims=True)
    return to_unit_rows(X)


def make_embedder(backend):
    """Wrap a pipeline embedding backend so BERTopic never reaches for a model hub."""
    load_bertopic()
    from bertopic.backend import BaseEmbedder

    class PipelineEmbedder(BaseEmbedder):
        def embed(self, documents, verbose=False):
            return backend.encode(list(documents))

    return PipelineEmbedder()


def usage_ranked_representation(analyzer: TermAnalyzer, top_n_words: int):
    """BERTopic's plug point for topic words: of c-TF-IDF's candidates (BERTopic passes at least 30), the
    `top_n_words` that most of the topic's cards use (`rank_keywords`), shown as the cards write them. So
    `get_topic` of the fitted (and saved) model gives the keywords of topics.parquet."""
    load_bertopic()
    from bertopic.representation import BaseRepresentation

    class UsageRanked(BaseRepresentation):
        def extract_topics(self, topic_model, documents, c_tf_idf, topics):
            members = documents.groupby("Topic")["Document"].agg(list)
            ranked = {}
            for topic, candidates in topics.items():
                usage = usage_in(list(members.get(topic, [])), analyzer)
                score = {term: value for term, value in candidates if term}
                terms = rank_keywords(list(score), usage)[:top_n_words]
                ranked[topic] = [(shown(term, usage), float(score[term])) for term in terms]
            return ranked

    return UsageRanked()


def fit_topic_model(docs: list[str], X: np.ndarray, params: ClusterParams, algorithm: str, analyzer: TermAnalyzer,
                    embedder=None, y=None):
    load_bertopic()
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer
    from sklearn.feature_extraction.text import CountVectorizer

    umap_model, cluster_model = ALGORITHMS[algorithm](params, X)
    model = BERTopic(
        embedding_model=embedder,
        umap_model=umap_model,
        hdbscan_model=cluster_model,
        vectorizer_model=CountVectorizer(analyzer=analyzer),
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        representation_model=usage_ranked_representation(analyzer, params.top_n_words),
        top_n_words=params.top_n_words,
        calculate_probabilities=False,
    )
    with warnings.catch_warnings():
        # A seeded UMAP runs single-threaded on purpose (determinism); its warning says so.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        # We never call UMAP's transform (new cards are placed by `incremental_topics`), so no search index.
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        topics, _ = model.fit_transform(docs, X, y=y)
    return model, np.asarray(topics, dtype=int)


def incremental_topics(card_ids: list[str], X: np.ndarray, previous: registry.Registry,
                       params: ClusterParams) -> np.ndarray | None:
    """Topics that keep the previous run's themes: None when a full refit is due.

    Cards already themed keep their theme, old outliers stay outliers; new cards join the theme whose
    members they are most similar to on average, if that is at least 1 - `agglomerative.distance_threshold`
    (the linkage rule that builds themes), and the rest are clustered among themselves into new
    themes (agglomerative, at least `hdbscan.min_cluster_size` cards). This is BERTopic's
    "merge models" idea: earlier topics stay put and new ones are appended. A full refit is due
    without a registry, when `max_new_share` is 0, or when more than that share of the cards are new.
    """
    settings = params.incremental
    active = [theme for theme in previous.themes if theme.status == "active"]
    home = {card: k for k, theme in enumerate(active) for card in theme.cards}
    seen = set(home) | set(previous.outliers)
    n_new = sum(card not in seen for card in card_ids)
    if not active or settings.max_new_share == 0 or n_new > settings.max_new_share * len(card_ids):
        return None
    topics = np.array([home.get(card, OUTLIER) for card in card_ids])
    kept = sorted(set(topics.tolist()) - {OUTLIER})
    # Old outliers stay outliers (the full fit judged them), so a rerun without new cards changes nothing.
    pool = np.flatnonzero([card not in seen for card in card_ids])
    if kept and len(pool):
        # The average-linkage rule that groups cards into themes: mean similarity to the members.
        mean_similarity = X[pool] @ np.stack([X[topics == k].mean(axis=0) for k in kept]).T
        best = mean_similarity.argmax(axis=1)
        joins = mean_similarity[np.arange(len(pool)), best] >= 1.0 - params.agglomerative.distance_threshold
        topics[pool[joins]] = np.asarray(kept)[best[joins]]
        pool = pool[~joins]
    if len(pool) >= params.hdbscan.min_cluster_size:
        fresh = SmallCorpusClusterer(params.agglomerative.distance_threshold,
                                     params.hdbscan.min_cluster_size).fit(X[pool]).labels_
        offset = len(active)
        topics[pool[fresh != OUTLIER]] = fresh[fresh != OUTLIER] + offset
    # Renumber densely in first-seen order, as BERTopic expects topics 0..n-1.
    order = {t: n for n, t in enumerate(dict.fromkeys(t for t in topics.tolist() if t != OUTLIER))}
    return np.array([order.get(t, OUTLIER) for t in topics.tolist()])


# --- large corpora: fit on a seeded sample, place the other cards -----------------------------------


def sample_labels(X: np.ndarray, params: ClusterParams) -> tuple[np.ndarray, str]:
    """Cluster labels of the rows of X (a sample) by the sub-models `cluster` would use, and the algorithm;
    with 'auto', HDBSCAN that leaves too few themes or too many outliers falls back to agglomerative."""
    algorithm = choose_algorithm(params, len(X))
    for attempt in (algorithm, "agglomerative"):
        reducer, clusterer = ALGORITHMS[attempt](params, X)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)  # no transform used
            reducer.fit(X)
            reduced = reducer.embedding_ if hasattr(reducer, "embedding_") else reducer.transform(X)
        labels = np.asarray(clusterer.fit(reduced).labels_, dtype=int)
        if params.algorithm != "auto" or attempt != "hdbscan" or _usable(labels, params):
            return labels, attempt
        log.info("cluster: HDBSCAN on the sample gave %d topics, %.0f%% outliers; falling back to agglomerative",
                 len(set(labels.tolist()) - {OUTLIER}), 100 * np.mean(labels == OUTLIER))
    return labels, "agglomerative"


def place_part(rows: np.ndarray, sample: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Labels of `rows` (unit vectors) by their k most similar `sample` rows: the label most of them have
    (outlier counts as one), ties going to the nearest's label, then the lower label. Each row is placed
    on its own, so the result does not depend on how the rows are split."""
    similarity = rows.astype(np.float32) @ sample.astype(np.float32).T
    k = min(k, len(sample))
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    nearest = top[np.arange(len(top)), similarity[np.arange(len(top))[:, None], top].argmax(axis=1)]
    votes = np.zeros((len(rows), int(labels.max()) + 2))
    np.add.at(votes, (np.repeat(np.arange(len(rows)), k), labels[top].ravel() + 1), 1.0)
    votes[np.arange(len(rows)), labels[nearest] + 1] += 0.5  # the nearest breaks a tie
    return votes.argmax(axis=1) - 1


def fit_on_sample(X: np.ndarray, params: ClusterParams, engine: LocalEngine) -> tuple[np.ndarray, np.ndarray, str]:
    """(topics of all rows, sample rows, algorithm) for a corpus above `engine.sample_size` cards: the sample
    (seeded by `cluster.seed`) is clustered, the other cards take the label of their nearest sample cards
    (`place_part`, `umap.n_neighbors` of them), in partitions of `engine.partition_size` on the engine."""
    size = engine.params.sample_size
    sample = np.sort(np.random.default_rng(params.seed).choice(len(X), size, replace=False))
    labels, algorithm = sample_labels(X[sample], params)
    rest = np.setdiff1d(np.arange(len(X)), sample)
    step = engine.params.partition_size
    parts = (X[rest[start:start + step]] for start in range(0, len(rest), step))
    placed = list(engine.map(place_part, parts, X[sample], labels, params.umap.n_neighbors))
    topics = np.empty(len(X), dtype=int)
    topics[sample] = labels
    topics[rest] = np.concatenate(placed) if placed else np.zeros(0, dtype=int)
    log.info("cluster: %s fitted on a sample of %d cards; %d cards (%.0f%%) placed by the fitted model",
             algorithm, len(sample), len(rest), 100 * len(rest) / len(X))
    # Dense numbers in first-seen order, as BERTopic expects topics 0..n-1.
    order = {t: n for n, t in enumerate(dict.fromkeys(t for t in topics.tolist() if t != OUTLIER))}
    return np.array([order.get(t, OUTLIER) for t in topics.tolist()]), sample, algorithm


def choose_algorithm(params: ClusterParams, n_docs: int) -> str:
    if params.algorithm != "auto":
        return params.algorithm
    return "agglomerative" if n_docs <= params.small_corpus_max else "hdbscan"


def _usable(topics: np.ndarray, params: ClusterParams) -> bool:
    n_topics = len(set(topics.tolist()) - {OUTLIER})
    return n_topics >= 2 and float(np.mean(topics == OUTLIER)) <= params.max_outlier_share


@dataclass
class ClusterResult:
    assignments: pd.DataFrame
    topics: pd.DataFrame
    model: object
    algorithm: str
    changes: pd.DataFrame  # since the previous registry (records.THEME_CHANGES)
    registry: registry.Registry  # to save for the next run


def cluster(card_ids: list[str], docs: list[str], embeddings: np.ndarray, params: ClusterParams, embedder=None,
            previous: registry.Registry = registry.Registry(), card_types: list[str] | None = None,
            engine: EngineParams | None = None):
    """Topics for `docs`; every card gets a cluster (-1 = outlier) and its similarity to the centroid.

    Theme ids and labels come from `previous` (the last run's registry) where a cluster matches.
    `card_types` (one per card) let `center_by_type` take out what a card type's form adds.
    Above `engine.sample_size` cards the themes are fitted on a sample (`fit_on_sample`), on any engine.
    """
    if not docs:
        raise ClusterError("no usable cards: every card was rejected (see the reasons in the ingest output)")
    X = prepare(embeddings, params.center, card_types if params.center_by_type else None)
    given = incremental_topics(card_ids, X, previous, params)
    algorithm = choose_algorithm(params, len(docs)) if given is None else "incremental"
    engine = engine if engine is not None else EngineParams()
    if given is None and len(docs) > engine.sample_size:
        with open_engine(engine) as running:
            given, _, _ = fit_on_sample(X, params, running)
        algorithm = "sample"
    if len(docs) < MIN_CARDS:
        # Too few cards to find themes in; the analyst still gets every card mapped and reported.
        log.warning("cluster: only %d usable cards, fewer than the %d needed to find themes: each card is its "
                    "own theme (the map stage still places every card on the taxonomy)", len(docs), MIN_CARDS)
        given, algorithm = np.arange(len(docs)), "one-per-card"
    analyzer = analyzer_for(docs, params.ngram_max)
    model, topics = fit_topic_model(docs, X, params, algorithm, analyzer, embedder, y=given)
    if params.algorithm == "auto" and algorithm == "hdbscan" and not _usable(topics, params):
        log.info("cluster: HDBSCAN gave %d topics, %.0f%% outliers; falling back to agglomerative",
                 len(set(topics.tolist()) - {OUTLIER}), 100 * np.mean(topics == OUTLIER))
        algorithm = "agglomerative"
        model, topics = fit_topic_model(docs, X, params, algorithm, analyzer, embedder)

    similarity = np.zeros(len(docs))
    rows = []
    for topic in sorted(set(topics.tolist()) - {OUTLIER}):
        members = np.flatnonzero(topics == topic)
        centroid = X[members].mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        similarity[members] = X[members] @ centroid
        usage = usage_in([docs[i] for i in members], analyzer)
        keywords = [word for word, _ in model.get_topic(topic)]  # as usage_ranked_representation shows them
        term_of = {shown(term, usage): term for term in usage}
        rows.append(
            {
                "cluster": topic,
                "label": make_label([term_of[word] for word in keywords], params.label_words, usage)
                or f"tema {topic}",
                "keywords": keywords,
                "size": len(members),
            }
        )
    members_of = {row["cluster"]: [card_ids[i] for i in np.flatnonzero(topics == row["cluster"])] for row in rows}
    matching = registry.match(
        members_of,
        {c: registry.centroid(embeddings[topics == c]) for c in members_of},
        {row["cluster"]: row["label"] for row in rows},
        previous,
        min_overlap=params.match.min_overlap,
        min_centroid_similarity=params.match.min_centroid_similarity,
        merge_share=params.match.merge_share,
        keep_labels=params.match.keep_labels,
        outliers=[card_ids[i] for i in np.flatnonzero(topics == OUTLIER)],
    )
    for row in rows:
        row["theme_id"] = matching.theme_ids[row["cluster"]]
        row["label"] = matching.labels.get(row["cluster"], row["label"])
    model.set_topic_labels({row["cluster"]: row["label"] for row in rows})  # the saved model names them as we do
    assignments = pd.DataFrame({"card_id": card_ids, "cluster": topics, "similarity": similarity})
    topics_table = pd.DataFrame(rows, columns=CLUSTER_TOPICS.names)
    log.info("cluster: %s, %d topics, %d of %d cards outliers", algorithm, len(rows),
             int(np.sum(topics == OUTLIER)), len(docs))
    return ClusterResult(assignments, topics_table, model, algorithm, matching.changes, matching.registry)


def run(*, cards_path: Path, embeddings_path: Path, out_dir: Path, model_dir: Path, registry_path: Path,
        params: ClusterParams, embedder=None, engine: EngineParams | None = None) -> ClusterResult:
    """`registry_path` holds the previous run's themes (absent on a first run) and is then updated."""
    cards = read_table(cards_path, NORMALISED, columns=["card_id", "text_norm", "card_type"])
    table = read_embeddings(embeddings_path)
    text_by_id = dict(zip(cards["card_id"], cards["text_norm"]))
    type_by_id = dict(zip(cards["card_id"], cards["card_type"]))
    result = cluster(
        table["card_id"].tolist(),
        [text_by_id[c] for c in table["card_id"]],
        embedding_matrix(table),
        params,
        embedder,
        registry.load(registry_path),
        card_types=[type_by_id[c] for c in table["card_id"]],
        engine=engine,
    )
    write_table(result.assignments, CLUSTER_ASSIGNMENTS, out_dir / "assignments.parquet")
    write_table(result.topics, CLUSTER_TOPICS, out_dir / "topics.parquet")
    write_table(result.changes, THEME_CHANGES, out_dir / "changes.parquet")
    save_model(result.model, model_dir)
    write_text(registry.dumps(result.registry), registry_path)
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
