"""Tests for pipeline.report_vectors: centred vectors, the 2-D card map and quote order (MMR)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.engine import LocalEngine
from pipeline.params import EngineParams
from pipeline.report_vectors import COORD_DECIMALS, centred_unit_vectors, mmr_order, place_on_map, project_2d


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


def _mmr_with_the_whole_similarity_matrix(ids, vectors, n, lam=0.5):
    """The quotes as picked before: every pair's cosine held at once (53 GiB for a theme of 84k cards)."""
    matrix = np.vstack([vectors[c] for c in ids])
    centroid = matrix.mean(axis=0) / np.linalg.norm(matrix.mean(axis=0))
    relevance, similarity = matrix @ centroid, matrix @ matrix.T
    chosen = []
    while len(chosen) < n:
        scores = [(round(float(lam * relevance[i] - (1 - lam) * max((similarity[i, j] for j in chosen), default=0.0)),
                         9), -i) for i in range(len(ids)) if i not in chosen]
        chosen.append(-max(scores)[1])
    return [ids[i] for i in chosen]


def test_mmr_picks_what_the_whole_similarity_matrix_picked_without_holding_it():
    import tracemalloc

    rng = np.random.default_rng(3)
    ids = [f"c{i:05d}" for i in range(6000)]
    vectors = {c: v / np.linalg.norm(v) for c, v in zip(ids, rng.normal(size=(len(ids), 16)))}
    small = ids[:400]
    for lam in (0.3, 0.5, 0.8):
        assert mmr_order(small, vectors, 5, groups={}, lam=lam) == _mmr_with_the_whole_similarity_matrix(
            small, vectors, 5, lam)
    tracemalloc.start()
    mmr_order(ids, vectors, 5, groups={})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20  # the whole matrix: 6,000^2 float64 = 275 MiB


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


def test_above_the_sample_size_the_map_lays_out_a_sample_and_places_the_rest_among_their_neighbours():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 16)) * 4
    vectors = {f"c{k}-{i:02d}": centres[k] + rng.normal(size=16) for k in range(2) for i in range(40)}
    themes = {card: card.split("-")[0] for card in vectors}
    positions = project_2d(vectors, themes, sample_size=30)  # real UMAP on 30 cards, 50 placed
    assert sorted(positions) == sorted(vectors)
    assert positions == project_2d(dict(reversed(list(vectors.items()))), themes, sample_size=30)
    xy = {k: np.array([p for card, p in positions.items() if card.startswith(k)]) for k in ("c0", "c1")}
    # every card sits nearer its own group's middle than the other group's
    for own, other in (("c0", "c1"), ("c1", "c0")):
        middle, far = xy[own].mean(axis=0), xy[other].mean(axis=0)
        assert (np.linalg.norm(xy[own] - middle, axis=1) < np.linalg.norm(xy[own] - far, axis=1)).all()


def test_placing_on_the_map_does_not_depend_on_how_the_cards_are_split():
    rng = np.random.default_rng(2)
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    sample, rows = unit(rng.normal(size=(20, 8))), unit(rng.normal(size=(9, 8)))
    coords = rng.normal(size=(20, 2))
    whole = place_on_map(rows, sample, coords, 5)
    assert np.array_equal(whole, np.vstack([place_on_map(rows[:4], sample, coords, 5),
                                            place_on_map(rows[4:], sample, coords, 5)]))
    # a card equal to a sample card, with k = 1, sits on it
    assert np.allclose(place_on_map(sample[3:4], sample, coords, 1), coords[3:4])


def test_partitions_on_the_engine_place_the_cards_to_the_bit_as_one_block():
    rng = np.random.default_rng(3)
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    sample = unit(rng.normal(size=(300, 32))).astype(np.float32)
    rows = unit(rng.normal(size=(1025, 32))).astype(np.float32)  # 1025 = 16 * 64 + 1: a last partition of one row
    coords = rng.normal(size=(300, 2))
    whole = place_on_map(rows, sample, coords, 15)
    for size in (64, 100, 256, 1024, 2048):
        engine = LocalEngine(EngineParams(partition_size=size))
        parts = (rows[start:start + size] for start in range(0, len(rows), size))
        assert np.array_equal(np.concatenate(list(engine.map(place_on_map, parts, sample, coords, 15))), whole), size
    # A lone row and a few rows by themselves: BLAS would multiply them with other routines (matrix-vector,
    # small-matrix kernels) that sum in another order.
    for start, stop in ((0, 1), (500, 501), (1024, 1025), (7, 10)):
        assert np.array_equal(place_on_map(rows[start:stop], sample, coords, 15), whole[start:stop]), (start, stop)


class CountingEngine(LocalEngine):
    """A local engine that records the sizes of the partitions it is given."""

    def map(self, fn, parts, *shared):
        parts = list(parts)
        self.sizes = [len(part) for part in parts]
        return super().map(fn, parts, *shared)


def test_the_map_places_the_cards_outside_the_sample_on_the_engine_and_any_partition_size_gives_the_same_map():
    rng = np.random.default_rng(4)
    vectors = {f"c{i:03d}": rng.normal(size=16) for i in range(200)}
    themes = {card: str(int(card[1:]) % 3) for card in vectors}
    default = project_2d(vectors, themes, sample_size=30)  # in this process, partitions of the default size
    for size in (64, 100):
        engine = CountingEngine(EngineParams(partition_size=size))
        assert project_2d(vectors, themes, sample_size=30, engine=engine) == default
        assert sum(engine.sizes) == 170 and max(engine.sizes) == size


def test_card_vectors_share_one_matrix_and_the_map_is_the_same_as_from_a_plain_dict():
    from pipeline.report_vectors import CardVectors, stacked

    rng = np.random.default_rng(2)
    frame = embeddings({f"k{i:02d}": rng.normal(size=12) for i in range(60)})
    vectors = centred_unit_vectors(frame.iloc[::-1], frame["card_id"].tolist()[5:])
    assert isinstance(vectors, CardVectors) and vectors.ids == sorted(vectors.ids) and len(vectors) == 55
    matrix = stacked(vectors, vectors.ids)
    assert np.shares_memory(matrix, vectors.matrix) and not matrix.flags.writeable
    assert not np.shares_memory(stacked(vectors, vectors.ids[1:]), vectors.matrix)
    plain = {card_id: vectors[card_id].copy() for card_id in vectors}
    themes = {card_id: card_id[1] for card_id in vectors}
    for size in (None, 20):
        assert project_2d(vectors, themes, sample_size=size) == project_2d(plain, themes, sample_size=size)
    assert np.array_equal(vectors.matrix, np.vstack([plain[c] for c in sorted(plain)]))  # the map left them as they were
