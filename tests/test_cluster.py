from dataclasses import replace

import numpy as np
import pytest
from bertopic import BERTopic
from sklearn.metrics import adjusted_rand_score

from conftest import FakeEmbedder, normalised_cards, planted_clusters
from pipeline import cluster as cluster_stage
from pipeline import registry
from pipeline.cluster import ClusterError, SmallCorpusClusterer, cluster, make_embedder
from pipeline.ids import OUTLIER
from pipeline.params import ClusterParams
from pipeline.records import CLUSTER_ASSIGNMENTS, CLUSTER_TOPICS, EMBEDDINGS, NORMALISED, read_table, write_table

WORDS = [["budsjett", "ettårig", "penger", "rammer"], ["silo", "sektor", "tvers", "etat"],
         ["innbygger", "bruker", "dialog", "involvering"]]


def docs_for(labels):
    return [" ".join(WORDS[k]) if k >= 0 else "diverse ord" for k in labels]


def test_small_corpus_clusterer_follows_estimator_conventions():
    X, _ = planted_clusters(2, 5, n_outliers=0)
    model = SmallCorpusClusterer(distance_threshold=0.5, min_cluster_size=3)
    assert model.fit(X) is model
    assert sorted(set(model.labels_)) == [0, 1]


def test_small_corpus_clusterer_turns_small_groups_into_outliers():
    X, _ = planted_clusters(3, 6)
    X = np.concatenate([X, X[:1] + 10])  # a lone far-away point
    labels = SmallCorpusClusterer(distance_threshold=0.5, min_cluster_size=3).fit(X).labels_
    assert labels[-1] == OUTLIER and len(set(labels) - {OUTLIER}) == 3


def test_agglomerative_fallback_recovers_planted_clusters_and_keeps_outliers():
    X, truth = planted_clusters(3, 8, n_outliers=2)
    ids = [f"c{i}" for i in range(len(X))]
    result = cluster(ids, docs_for(truth), X, ClusterParams(), embedder=make_embedder(FakeEmbedder()))
    assert result.algorithm == "agglomerative"  # 26 cards is a small corpus
    assert result.assignments["card_id"].tolist() == ids  # nobody dropped
    inliers = truth >= 0
    assert adjusted_rand_score(truth[inliers], result.assignments["cluster"].to_numpy()[inliers]) == 1.0
    assert result.topics["size"].sum() == (result.assignments["cluster"] != OUTLIER).sum()
    assert any("budsjett" in kw for kw in result.topics["keywords"])


def test_theme_labels_are_lemmatised_content_words():
    X, truth = planted_clusters(2, 8, n_outliers=0)
    texts = [["Budsjettene er ettårige", "Ettårige budsjetter hindrer oss", "Vi burde ha flerårige budsjetter"],
             ["Siloene stopper alt", "Etatene jobber i siloer", "Bryt ned siloene mellom etatene"]]
    docs = [texts[k][i % 3] for i, k in enumerate(truth)]
    result = cluster([f"c{i}" for i in range(len(X))], docs, X, ClusterParams(), embedder=make_embedder(FakeEmbedder()))
    labels = sorted(label.lower() for label in result.topics["label"])
    assert labels[0].startswith("budsjett") and labels[1].startswith("silo"), labels
    assert not any(word in label for label in labels for word in ("burde", "budsjettene", "siloene"))


def test_hdbscan_path_is_seeded_and_deterministic():
    X, truth = planted_clusters(3, 50, dim=16, noise=0.2, seed=1)
    ids = [f"c{i}" for i in range(len(X))]
    params = ClusterParams(algorithm="hdbscan")
    first = cluster(ids, docs_for(truth), X, params, embedder=make_embedder(FakeEmbedder()))
    second = cluster(ids, docs_for(truth), X, params, embedder=make_embedder(FakeEmbedder()))
    assert first.algorithm == "hdbscan"
    assert first.assignments.equals(second.assignments)
    assert adjusted_rand_score(truth, first.assignments["cluster"]) > 0.9


def test_auto_falls_back_when_hdbscan_finds_nothing_useful(monkeypatch):
    X, truth = planted_clusters(3, 10)
    ids = [f"c{i}" for i in range(len(X))]
    params = ClusterParams(small_corpus_max=0, max_outlier_share=0.0, hdbscan={"min_cluster_size": 25})
    result = cluster(ids, docs_for(truth), X, params, embedder=make_embedder(FakeEmbedder()))
    assert result.algorithm == "agglomerative"


def test_no_usable_card_is_a_clear_error():
    with pytest.raises(ClusterError, match="no usable cards"):
        cluster([], [], np.zeros((0, 4)), ClusterParams())


@pytest.mark.parametrize("n", [1, 3, 4])
def test_too_few_cards_to_cluster_makes_each_card_its_own_theme_with_a_warning(n, caplog):
    texts = ["Budsjettet er ettårig", "Etatene sitter i hver sin silo", "Innbyggerne må involveres tidlig",
             "Ledere må tørre å feile"][:n]
    ids = [f"c{i}" for i in range(n)]
    embedder = FakeEmbedder()
    with caplog.at_level("WARNING", logger="pipeline.cluster"):
        result = cluster(ids, texts, embedder.encode(texts), ClusterParams(), embedder=make_embedder(embedder))
    assert sorted(result.assignments["cluster"]) == list(range(n))  # no outlier, one theme per card
    assert len(result.topics) == n and result.topics["theme_id"].is_unique
    assert all(result.topics["label"].str.len() > 0)
    assert any(f"only {n} usable cards" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_reclustering_keeps_theme_ids_and_labels_from_the_registry():
    X, truth = planted_clusters(3, 8)
    ids = [f"c{i}" for i in range(len(X))]
    embedder = make_embedder(FakeEmbedder())
    first = cluster(ids, docs_for(truth), X, ClusterParams(), embedder=embedder)
    assert set(first.changes["change"]) == {"new"}
    # The same cards in another order, labelled by a registry whose labels an analyst edited.
    edited = replace(first.registry, themes=tuple(replace(t, label=f"tema {t.theme_id}")
                                                  for t in first.registry.themes))
    order = np.random.default_rng(0).permutation(len(ids))
    second = cluster([ids[i] for i in order], docs_for(truth[order]), X[order], ClusterParams(),
                     embedder=embedder, previous=edited)
    assert sorted(second.topics["theme_id"]) == sorted(first.topics["theme_id"])
    assert all(label == f"tema {theme_id}" for theme_id, label in zip(second.topics["theme_id"],
                                                                      second.topics["label"]))
    assert second.changes.equals(first.changes)  # a rerun reports the same changes again


def test_run_saves_a_safetensors_model_that_bertopic_loads(tmp_path, fake_embedder):
    X, truth = planted_clusters(3, 8)
    ids = [f"c{i}" for i in range(len(X))]
    import pandas as pd

    cards = normalised_cards(docs_for(truth), ids=ids)
    write_table(cards, NORMALISED, tmp_path / "cards.parquet")
    write_table(pd.DataFrame({"card_id": ids, "embedding": list(X)}), EMBEDDINGS, tmp_path / "emb.parquet")
    cluster_stage.run(cards_path=tmp_path / "cards.parquet", embeddings_path=tmp_path / "emb.parquet",
                      out_dir=tmp_path / "out", model_dir=tmp_path / "model",
                      registry_path=tmp_path / "themes.json", params=ClusterParams(),
                      embedder=make_embedder(fake_embedder))
    assert not list((tmp_path / "model").glob("*.pkl")) and list((tmp_path / "model").glob("*.safetensors"))
    loaded = BERTopic.load(str(tmp_path / "model"), embedding_model=make_embedder(fake_embedder))
    topics = read_table(tmp_path / "out" / "topics.parquet", CLUSTER_TOPICS)
    assert set(loaded.get_topic_info()["Topic"]) - {-1} == set(topics["cluster"])
    assert len(read_table(tmp_path / "out" / "assignments.parquet", CLUSTER_ASSIGNMENTS)) == len(ids)
    saved = registry.load(tmp_path / "themes.json")
    assert sorted(t.theme_id for t in saved.themes) == sorted(topics["theme_id"])
    # The saved model tells what topics.parquet tells: the same keywords and labels (BERTopic's own
    # representation and label plug points, nothing re-ranked after saving).
    info = loaded.get_topic_info().set_index("Topic")
    for topic in topics.itertuples():
        assert [word for word, _ in loaded.get_topic(topic.cluster)] == list(topic.keywords)
        assert info.loc[topic.cluster, "CustomName"] == topic.label


def test_model_is_saved_through_a_temp_folder_and_replaces_the_old_one(tmp_path, fake_embedder):
    from pipeline.cluster import save_model

    X, truth = planted_clusters(3, 8)
    result = cluster([f"c{i}" for i in range(len(X))], docs_for(truth), X, ClusterParams(),
                     embedder=make_embedder(fake_embedder))
    target = tmp_path / "models" / "bertopic"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("old run", encoding="utf-8")
    save_model(result.model, target)
    assert not (target / "stale.txt").exists() and list(target.glob("*.safetensors"))
    assert [p.name for p in target.parent.iterdir()] == ["bertopic"]  # no temp folder left behind


def test_incremental_topics_keep_themes_place_new_cards_and_find_new_topics():
    from pipeline.cluster import incremental_topics, prepare

    X, truth = planted_clusters(3, 8, n_outliers=2)
    ids = [f"c{i}" for i in range(len(X))]
    first = cluster(ids, docs_for(truth), X, ClusterParams(), embedder=make_embedder(FakeEmbedder()))
    # One new card near the first cluster, and six close together far from everything: a new topic.
    rng = np.random.default_rng(3)
    near = X[truth == 0].mean(axis=0, keepdims=True) + rng.normal(0, 0.01, (1, X.shape[1]))
    far_centre = rng.normal(0, 1, X.shape[1])
    far = far_centre + rng.normal(0, 0.05, (6, X.shape[1]))
    X2 = np.concatenate([X, near, far])
    ids2 = ids + ["near"] + [f"far{i}" for i in range(6)]
    params = ClusterParams(incremental={"max_new_share": 0.3})
    topics = incremental_topics(ids2, prepare(X2, True), first.registry, params)
    old = first.assignments.set_index("card_id")["cluster"]
    same_cluster = {(old[a] == old[b], topics[i] == topics[j]) for i, a in enumerate(ids) for j, b in enumerate(ids)
                    if old[a] != OUTLIER and old[b] != OUTLIER}
    assert same_cluster == {(True, True), (False, False)}  # old themes exactly as they were
    assert all(topics[i] == OUTLIER for i, card in enumerate(ids) if old[card] == OUTLIER)  # outliers stay
    near_topic = topics[len(ids)]
    assert near_topic == topics[np.flatnonzero(truth == 0)[0]]
    far_topics = set(topics[len(ids) + 1:].tolist())
    assert len(far_topics) == 1 and far_topics.isdisjoint(set(topics[: len(ids)].tolist()) | {OUTLIER})


def test_incremental_topics_refit_without_registry_or_with_many_new_cards():
    from pipeline.cluster import incremental_topics, prepare

    X, truth = planted_clusters(3, 8)
    ids = [f"c{i}" for i in range(len(X))]
    assert incremental_topics(ids, prepare(X, True), registry.Registry(), ClusterParams()) is None
    first = cluster(ids[:12], docs_for(truth[:12]), X[:12], ClusterParams(), embedder=make_embedder(FakeEmbedder()))
    assert incremental_topics(ids, prepare(X, True), first.registry, ClusterParams()) is None  # half are new
    assert incremental_topics(ids[:12], prepare(X[:12], True), first.registry, ClusterParams()) is not None
    always = ClusterParams(incremental={"max_new_share": 0.0})
    assert incremental_topics(ids[:12], prepare(X[:12], True), first.registry, always) is None


def test_a_rerun_with_a_registry_takes_the_incremental_path_and_changes_nothing():
    X, truth = planted_clusters(3, 8)
    ids = [f"c{i}" for i in range(len(X))]
    embedder = make_embedder(FakeEmbedder())
    first = cluster(ids, docs_for(truth), X, ClusterParams(), embedder=embedder)
    again = cluster(ids, docs_for(truth), X, ClusterParams(), embedder=embedder, previous=first.registry)
    assert again.algorithm == "incremental"
    assert again.registry == first.registry and again.changes.equals(first.changes)
    assert again.topics[["theme_id", "label", "size"]].sort_values("theme_id").reset_index(drop=True).equals(
        first.topics[["theme_id", "label", "size"]].sort_values("theme_id").reset_index(drop=True))


def test_exact_neighbours_match_a_full_sort_whatever_the_block_size():
    from pipeline.cluster import exact_neighbours

    X = np.random.default_rng(0).normal(size=(300, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    expected = np.argsort(1 - X @ X.T, axis=1, kind="stable")[:, :5]
    for max_block in (300 * 7, 2**25):
        indices, distances = exact_neighbours(X, 5, max_block=max_block)
        assert (indices == expected).all() and (indices[:, 0] == np.arange(300)).all()
        assert (np.diff(distances, axis=1) >= 0).all() and (distances[:, 0] == 0).all()


def test_bertopic_loads_without_its_unused_integrations_which_stay_importable():
    # A fresh process: in this one, other tests may have imported them already.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipeline.cluster import UNUSED_BY_BERTOPIC, load_bertopic\n"
        "assert hasattr(load_bertopic(), 'BERTopic')\n"
        "assert not any(sys.modules.get(name) for name in UNUSED_BY_BERTOPIC), 'an unused integration was loaded'\n"
        "import importlib.util\n"
        "assert all(sys.modules.get(n, 0) is not None for n in UNUSED_BY_BERTOPIC), 'left hidden'\n"
        "if importlib.util.find_spec('torch'):\n"
        "    import torch\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_keep_labels_false_relabels_matched_themes_from_their_keywords():
    X, truth = planted_clusters(3, 8, n_outliers=2)
    ids = [f"c{i}" for i in range(len(X))]
    first = cluster(ids, docs_for(truth), X, ClusterParams(), embedder=make_embedder(FakeEmbedder()))
    edited = replace(first.registry, themes=tuple(replace(t, label="gammelt navn") for t in first.registry.themes))
    params = ClusterParams(match={"keep_labels": False})
    again = cluster(ids, docs_for(truth), X, params, embedder=make_embedder(FakeEmbedder()), previous=edited)
    assert set(again.topics["theme_id"]) == set(first.topics["theme_id"])
    assert sorted(again.topics["label"]) == sorted(first.topics["label"])
    assert all(t.label != "gammelt navn" for t in again.registry.themes)


def test_prepare_centres_by_type_and_scales_to_unit_length_as_the_plain_formula_does():
    from pipeline.cluster import prepare
    from pipeline.vectors import unit_rows

    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    types = ["wish"] * 25 + ["oracle"] * 12 + ["other"] * 3  # "other": too few cards for a mean of its own
    expected = X.astype(np.float64) - X.astype(np.float64).mean(axis=0, keepdims=True)
    for card_type in ("wish", "oracle"):
        rows = np.array([t == card_type for t in types])
        expected[rows] -= expected[rows].mean(axis=0, keepdims=True)
    assert np.array_equal(prepare(X, True, types), unit_rows(expected))
    assert np.array_equal(prepare(X, False), unit_rows(X.astype(np.float64)))
    assert X.dtype == np.float32  # the input is left as it was
