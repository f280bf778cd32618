import numpy as np
import pytest
from bertopic import BERTopic
from sklearn.metrics import adjusted_rand_score

from conftest import FakeEmbedder, normalised_cards, planted_clusters
from pipeline import cluster as cluster_stage
from pipeline.cluster import OUTLIER, ClusterError, SmallCorpusClusterer, cluster, make_embedder, theme_id_for
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


def test_too_few_cards_is_a_clear_error():
    with pytest.raises(ClusterError, match="at least"):
        cluster(["a", "b"], ["x", "y"], np.eye(2), ClusterParams())


def test_theme_ids_depend_only_on_members():
    assert theme_id_for(["b", "a"]) == theme_id_for(["a", "b"]) != theme_id_for(["a", "c"])


def test_run_saves_a_safetensors_model_that_bertopic_loads(tmp_path, fake_embedder):
    X, truth = planted_clusters(3, 8)
    ids = [f"c{i}" for i in range(len(X))]
    import pandas as pd

    cards = normalised_cards(docs_for(truth), ids=ids)
    write_table(cards, NORMALISED, tmp_path / "cards.parquet")
    write_table(pd.DataFrame({"card_id": ids, "embedding": list(X)}), EMBEDDINGS, tmp_path / "emb.parquet")
    cluster_stage.run(cards_path=tmp_path / "cards.parquet", embeddings_path=tmp_path / "emb.parquet",
                      out_dir=tmp_path / "out", model_dir=tmp_path / "model", params=ClusterParams(),
                      embedder=make_embedder(fake_embedder))
    assert not list((tmp_path / "model").glob("*.pkl")) and list((tmp_path / "model").glob("*.safetensors"))
    loaded = BERTopic.load(str(tmp_path / "model"), embedding_model=make_embedder(fake_embedder))
    topics = read_table(tmp_path / "out" / "topics.parquet", CLUSTER_TOPICS)
    assert set(loaded.get_topic_info()["Topic"]) - {-1} == set(topics["cluster"])
    assert len(read_table(tmp_path / "out" / "assignments.parquet", CLUSTER_ASSIGNMENTS)) == len(ids)


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
