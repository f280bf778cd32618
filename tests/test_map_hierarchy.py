import numpy as np
import pandas as pd

from pipeline.map_hierarchy import build_hierarchy
from pipeline.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy("configs/taxonomy.yaml")


def card_map(rows):
    """rows: (card_id, topic, taxonomy theme or None, confidence[, status])."""
    category = {t.id: t.category_id for t in TAXONOMY.themes}
    return pd.DataFrame({
        "card_id": [r[0] for r in rows],
        "status": [r[4] if len(r) > 4 else ("outlier" if r[1] is None else "assigned") for r in rows],
        "theme_id": [r[1] for r in rows],
        "category_id": [category.get(r[2], "emergent") for r in rows],
        "taxonomy_theme_id": [r[2] for r in rows],
        "confidence": [r[3] for r in rows],
        "centrality": 0.5,
        "subtheme_id": None,
    })


def homes(rows):
    """rows: (topic, taxonomy theme or None)."""
    category = {t.id: t.category_id for t in TAXONOMY.themes}
    return pd.DataFrame({
        "theme_id": [r[0] for r in rows], "cluster": range(len(rows)), "label": [f"label {r[0]}" for r in rows],
        "keywords": [["a"] for _ in rows], "category_id": [category.get(r[1], "emergent") for r in rows],
        "taxonomy_theme_id": [r[1] for r in rows], "emergent": [r[1] is None for r in rows],
        "confidence": 0.9, "size": 3, "parent_id": None,
    })


def vectors(n, groups):
    """Unit vectors: cards of one group point the same way."""
    out = np.zeros((n, 8))
    for i, g in enumerate(groups):
        out[i, g] = 1.0
    return out


def test_cards_sit_in_their_taxonomy_theme_with_their_topic_as_sub_theme_and_unsure_cards_are_other_input():
    cards = card_map([
        ("a", "t1", "siloer", 0.9), ("b", "t1", "siloer", 0.2), ("c", "t1", "siloer", 0.8),  # t1: sub-theme of siloer
        ("d", "t1", "budsjettsystemet", 0.9),  # sure of another theme than its topic: sits there, no sub-theme
        ("e", "t1", "budsjettsystemet", 0.1),  # unsure and its topic lives elsewhere: other input
        ("f", None, "siloer", 0.25),  # unsure, no topic: other input
        ("g", None, "siloer", 0.95),  # sure, no topic: in siloer directly
        ("h", "t2", None, 0.9), ("i", "t2", None, 0.9), ("j", "t2", None, 0.9),  # an emergent topic
        ("k", "t2", "siloer", 0.2),  # unsure, its topic is emergent: other input
        ("x", None, None, None, "rejected"),
    ])
    themes, out = build_hierarchy(cards, homes([("t1", "siloer"), ("t2", None)]), TAXONOMY,
                                  vectors(len(cards), [0] * 7 + [1] * 5), 0.3, 0.5, 3)
    placed = dict(zip(out["card_id"], zip(out["theme_id"], out["subtheme_id"], out["status"])))
    assert placed["a"] == placed["b"] == placed["c"] == ("siloer", "t1", "assigned")
    assert placed["d"] == ("budsjettsystemet", None, "assigned")
    assert placed["e"][2] == placed["f"][2] == placed["k"][2] == "outlier"
    assert placed["g"] == ("siloer", None, "assigned")
    assert placed["h"] == ("t2", None, "assigned")
    assert placed["x"] == (None, None, "rejected")
    rows = themes.set_index("theme_id")
    assert rows.loc["siloer", "label"] == "Siloer" and pd.isna(rows.loc["siloer", "parent_id"])
    assert rows.loc["siloer", "size"] == 4 and rows.loc["t1", "size"] == 3 and rows.loc["t1", "parent_id"] == "siloer"
    assert bool(rows.loc["t2", "emergent"]) and pd.isna(rows.loc["t2", "parent_id"])
    assert rows.loc["budsjettsystemet", "category_id"] == "rammebetingelser"


def test_a_topic_with_too_few_agreeing_cards_is_no_sub_theme():
    cards = card_map([("a", "t1", "siloer", 0.9), ("b", "t1", "siloer", 0.2), ("c", "t1", None, 0.9)])
    themes, out = build_hierarchy(cards, homes([("t1", "siloer")]), TAXONOMY, vectors(3, [0, 0, 0]), 0.3, 0.5, 3)
    assert out["subtheme_id"].isna().all()
    assert out["status"].tolist() == ["assigned", "outlier", "outlier"]  # b was only backed by its small topic
    assert themes["theme_id"].tolist() == ["siloer"]


def test_close_emergent_topics_form_one_emergent_theme_and_close_loose_cards_join_it():
    cards = card_map([(f"{t}{i}", t, None, 0.9) for t in ("t1", "t2", "t3") for i in range(3)]
                     + [("loose", None, None, 0.9), ("far", None, None, 0.9)])
    groups = [0, 0, 0, 0, 0, 0, 5, 5, 5, 0, 7]  # t1 and t2 say the same; t3 something else
    themes, out = build_hierarchy(cards, homes([("t1", None), ("t2", None), ("t3", None)]), TAXONOMY,
                                  vectors(len(cards), groups), 0.3, 0.5, 3)
    placed = dict(zip(out["card_id"], zip(out["theme_id"], out["subtheme_id"])))
    assert placed["t10"] == ("group-t1", "t1") and placed["t20"] == ("group-t1", "t2")
    assert placed["t30"] == ("t3", None)
    assert placed["loose"] == ("group-t1", None) and placed["far"] == (None, None)
    rows = themes.set_index("theme_id")
    assert rows.loc["group-t1", "size"] == 7 and rows.loc["t1", "parent_id"] == "group-t1"
