import numpy as np
import pandas as pd
import pytest

from pipeline.map import decide, map_to_taxonomy, softmax
from pipeline.params import MapParams
from pipeline.taxonomy import EMERGENT, load_taxonomy

TAXONOMY = load_taxonomy("configs/taxonomy.yaml")
N_THEMES = len(TAXONOMY.themes)
DIM = N_THEMES + 8


def setup_cards():
    """Two clusters near two taxonomy themes, one cluster far from all themes, one outlier, one rejected."""
    rng = np.random.default_rng(0)
    prototypes = np.eye(DIM)[:N_THEMES]
    budget = TAXONOMY.themes.index(TAXONOMY.theme("budsjettsystemet"))
    silo = TAXONOMY.themes.index(TAXONOMY.theme("siloer"))
    rows, clusters = [], []
    for cluster, direction in [(0, np.eye(DIM)[budget]), (1, np.eye(DIM)[silo]), (2, np.eye(DIM)[N_THEMES + 1])]:
        for _ in range(4):
            rows.append(direction + 0.05 * rng.standard_normal(DIM))
            clusters.append(cluster)
    rows.append(np.eye(DIM)[budget] + 0.05 * rng.standard_normal(DIM))
    clusters.append(-1)
    ids = [f"c{i}" for i in range(len(rows))]
    cards = pd.DataFrame({"card_id": ids + ["junk"], "status": ["ok"] * len(ids) + ["rejected"]})
    embeddings = pd.DataFrame({"card_id": ids, "embedding": [r.astype(np.float32) for r in rows]})
    assignments = pd.DataFrame({"card_id": ids, "cluster": clusters, "similarity": 0.9})
    topics = pd.DataFrame({"cluster": [0, 1, 2], "theme_id": ["t-budget", "t-silo", "t-new"],
                           "label": ["budsjett", "silo", "ki"], "keywords": [["budsjett"], ["silo"], ["ki"]],
                           "size": [4, 4, 4]})
    return cards, embeddings, assignments, topics, prototypes


def test_clusters_map_to_nearest_theme_or_emergent():
    themes, card_map = map_to_taxonomy(*setup_cards(), TAXONOMY, MapParams(emergent_threshold=0.2))
    by_id = themes.set_index("theme_id")
    assert by_id.loc["t-budget", "taxonomy_theme_id"] == "budsjettsystemet"
    assert by_id.loc["t-budget", "category_id"] == "rammebetingelser"
    assert by_id.loc["t-silo", "category_id"] == "samhandling"
    assert by_id.loc["t-new", "emergent"] and by_id.loc["t-new", "category_id"] == EMERGENT
    assert pd.isna(by_id.loc["t-new", "taxonomy_theme_id"])
    assert themes["confidence"].between(0, 1).all()


def test_every_card_gets_exactly_one_row_with_status_category_and_confidence():
    cards, *_ = setup = setup_cards()
    _, card_map = map_to_taxonomy(*setup, TAXONOMY, MapParams(emergent_threshold=0.2))
    assert card_map["card_id"].tolist() == cards["card_id"].tolist()
    status = card_map.set_index("card_id")["status"]
    assert status["c0"] == "assigned" and status["c12"] == "outlier" and status["junk"] == "rejected"
    live = card_map[card_map["status"] != "rejected"]
    assert live["category_id"].notna().all() and live["confidence"].between(0, 1).all()
    outlier = card_map.set_index("card_id").loc["c12"]
    assert outlier["taxonomy_theme_id"] == "budsjettsystemet" and pd.isna(outlier["theme_id"])


def test_softmax_rows_sum_to_one():
    np.testing.assert_allclose(softmax(np.array([[0.1, 0.5, 0.2]]), 0.05).sum(), 1.0)


@pytest.mark.parametrize("scores,expected", [(np.array([0.3, 0.1]), 0), (np.array([-0.2, -0.1]), None)])
def test_decide_returns_none_below_the_emergent_threshold(scores, expected):
    best, confidence = decide(scores, MapParams(emergent_threshold=0.05))
    assert best == expected and 0.5 <= confidence <= 1.0
