"""The review queue (pipeline/review.py): uncertain, representative, spread-out picks, deterministic."""
import numpy as np
import pandas as pd

from pipeline import review
from pipeline.taxonomy import EMERGENT

THEMES = [("siloer", "Siloer"), ("budsjettsystemet", "Budsjettsystemet"), ("regelverk", "Regelverk")]
def _unit(rows):
    rows = np.asarray(rows, dtype=float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _card_map(confidences, themes=None, status=None):
    n = len(confidences)
    themes = themes or ["siloer"] * n
    return pd.DataFrame({
        "card_id": [f"c{i:02d}" for i in range(n)], "status": status or ["assigned"] * n,
        "theme_id": themes, "category_id": ["samhandling" if t == "siloer" else "rammebetingelser" for t in themes],
        "taxonomy_theme_id": themes, "confidence": confidences, "centrality": [0.0] * n, "subtheme_id": [None] * n})


def _queue(card_map, vectors, size, **kwargs):
    ids = card_map["card_id"].tolist()
    return review.review_queue(card_map, dict(zip(ids, vectors)), size, texts={c: f"tekst {c}" for c in ids},
                               workshop_of={c: "ws-a" for c in ids}, group_of={c: None for c in ids},
                               theme_label=dict(THEMES), taxonomy_theme_name=dict(THEMES), **kwargs)


def test_the_queue_picks_uncertain_cards_and_not_two_near_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    # c00 and c01 are near-duplicates and the two least sure; c02..c05 are far apart and fairly unsure.
    vectors = _unit(np.vstack([base[0], base[0] + 0.01 * rng.normal(size=16), base[2:6]]))
    card_map = _card_map([0.2, 0.21, 0.5, 0.55, 0.6, 0.95])
    picks = [e["card_id"] for e in _queue(card_map, vectors, 3)]
    assert picks[0] in ("c00", "c01")
    assert not {"c00", "c01"} <= set(picks)
    assert "c05" not in picks  # the surest card comes last


def test_the_queue_leaves_out_decided_and_rejected_cards_and_is_deterministic():
    vectors = _unit(np.random.default_rng(1).normal(size=(5, 8)))
    card_map = _card_map([0.3, 1.0, 0.4, 0.5, 0.35], status=["assigned", "assigned", "rejected", "outlier", "assigned"])
    queue = _queue(card_map, vectors, 10, labelled=frozenset({"c04"}))
    assert [e["card_id"] for e in queue] == ["c00", "c03"] or [e["card_id"] for e in queue] == ["c03", "c00"]
    shuffled = card_map.iloc[[4, 2, 0, 3, 1]].reset_index(drop=True)
    vec = dict(zip(card_map["card_id"], vectors))
    ids = shuffled["card_id"].tolist()
    again = review.review_queue(shuffled, vec, 10, texts={c: f"tekst {c}" for c in ids},
                                workshop_of={c: "ws-a" for c in ids}, group_of={c: None for c in ids},
                                theme_label=dict(THEMES), taxonomy_theme_name=dict(THEMES),
                                labelled=frozenset({"c04"}))
    assert again == queue  # row order does not matter: ties go by card id
    assert [e["rank"] for e in queue] == [1, 2]
    assert _queue(card_map, vectors, 0) == []


def test_a_queue_entry_has_the_contract_fields_and_a_norwegian_reason():
    vectors = _unit(np.eye(4) + 0.3)
    card_map = _card_map([0.4, 0.9, 0.95, 0.92], themes=["siloer", "regelverk", "regelverk", "siloer"])
    entry = _queue(card_map, vectors, 1)[0]
    assert list(entry) == ["card_id", "workshop_id", "group_id", "text", "theme_id", "theme_label", "category_id",
                           "taxonomy_theme_id", "confidence", "reason", "rank"]
    assert entry["card_id"] == "c00"
    assert entry["reason"] == "usikker mellom Siloer og Regelverk"
    assert review.reason(0.9, "siloer", None, 7, dict(THEMES)) == "representerer 7 kort"
    assert review.reason(0.3, EMERGENT, "siloer", 6, dict(THEMES)) == "usikker mellom nytt tema og Siloer; representerer 6 kort"


def test_above_the_sample_size_coverage_is_measured_on_a_seeded_sample_and_the_queue_stays_deterministic():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, 12))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    uncertainty = rng.uniform(size=300)
    full = review.queue_order(vectors, uncertainty, 10)
    population = np.sort(rng.choice(300, 120, replace=False))
    sampled = review.queue_order(vectors, uncertainty, 10, population)
    assert sampled == review.queue_order(vectors, uncertainty, 10, population)
    assert len(sampled) == len(set(sampled)) == 10
    assert review.queue_order(vectors, uncertainty, 10, np.arange(300)) == full


def test_the_queue_of_a_corpus_above_the_sample_size_is_complete_and_deterministic():
    rng = np.random.default_rng(6)
    card_map = _card_map(list(np.round(rng.uniform(0.2, 0.95, size=40), 3)))
    vectors = _unit(rng.normal(size=(40, 8)))
    queue = _queue(card_map, vectors, 5, sample_size=15)
    assert [e["rank"] for e in queue] == [1, 2, 3, 4, 5]
    assert queue == _queue(card_map.iloc[::-1], vectors[::-1], 5, sample_size=15)
