"""Tests for pipeline.report_vectors: centred vectors, the 2-D card map and quote order (MMR)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report_vectors import COORD_DECIMALS, centred_unit_vectors, mmr_order, project_2d


def embeddings(vectors: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame({"card_id": list(vectors), "embedding": [np.asarray(v, np.float32) for v in vectors.values()]})


def test_centred_unit_vectors_are_unit_length_and_only_for_the_asked_cards():
    frame = embeddings({"b": [1.0, 0.0], "a": [0.0, 1.0], "c": [1.0, 1.0]})
    vectors = centred_unit_vectors(frame, ["a", "b", "x"])
    assert sorted(vectors) == ["a", "b"]
    for vector in vectors.values():
        np.testing.assert_allclose(np.linalg.norm(vector), 1.0)
    assert centred_unit_vectors(frame, []) == {}


def test_mmr_never_quotes_two_cards_of_one_duplicate_group_and_breaks_ties_by_id():
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    assert mmr_order(["a", "b", "c"], vectors, 3, groups={"b": "a"}) == ["a", "c"]
    assert mmr_order(["b", "a"], vectors, 1, groups={}) == ["a"]
    assert mmr_order(["a"], vectors, 0, groups={}) == []
    assert mmr_order(["x"], vectors, 2, groups={}) == []


def test_mmr_prefers_a_different_card_to_a_second_copy_of_the_same_words():
    vectors = {"a": np.array([1.0, 0.1]), "b": np.array([1.0, 0.11]), "c": np.array([0.2, 1.0])}
    assert mmr_order(["a", "b", "c"], vectors, 2, groups={}, lam=0.3)[1] == "c"


def test_a_few_cards_are_laid_out_by_their_principal_components_rounded_and_stable():
    rng = np.random.default_rng(0)
    vectors = {f"k{i}": rng.normal(size=8) for i in range(5)}
    first = project_2d(vectors)
    assert first == project_2d(dict(reversed(list(vectors.items()))))
    assert sorted(first) == sorted(vectors)
    for x, y in first.values():
        assert round(x, COORD_DECIMALS) == x and round(y, COORD_DECIMALS) == y
    assert project_2d({}) == {}
    assert project_2d({"only": np.ones(8)}) == {"only": (0.0, 0.0)}
