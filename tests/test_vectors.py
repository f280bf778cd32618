"""Tests for pipeline.vectors: the one copy of unit scaling, centring, top-k means and softmax."""
import numpy as np

from pipeline.vectors import centred_unit, softmax, to_unit_rows, top_k_mean, unit_rows


def test_unit_rows_have_length_one_and_a_zero_row_stays_zero():
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_centred_unit_moves_the_others_by_the_cards_mean():
    cards = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0]])
    C, P = centred_unit(cards, np.array([[2.0, 5.0]]))
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0)
    np.testing.assert_allclose(P, [[0.0, 1.0]])  # (2, 5) minus the mean (2, 2/3), scaled


def test_top_k_mean_skips_hidden_columns_and_gives_empty_without_any():
    similarity = np.array([[0.9, 0.5, -np.inf], [-np.inf, -np.inf, -np.inf]])
    np.testing.assert_allclose(top_k_mean(similarity, 2), [0.7, 0.0])
    np.testing.assert_allclose(top_k_mean(similarity, 2, empty=-1.0), [0.7, -1.0])
    np.testing.assert_allclose(top_k_mean(np.zeros((2, 0)), 3), [0.0, 0.0])


def test_softmax_sums_to_one_and_sharpens_with_a_lower_temperature():
    scores = np.array([[0.1, 0.5, 0.2], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(softmax(scores, 0.05).sum(axis=1), 1.0)
    np.testing.assert_allclose(softmax(scores[1], 1.0), [1 / 3] * 3)
    assert softmax(scores[0], 0.01)[1] > softmax(scores[0], 0.1)[1]


def test_to_unit_rows_gives_unit_rows_numbers_in_place_at_any_block_size():
    matrix = np.random.default_rng(0).standard_normal((37, 6))
    matrix[5] = 0.0
    for block in (1, 4, 36, 37, 100):
        work = matrix.copy()
        assert to_unit_rows(work, block) is work
        assert np.array_equal(work, unit_rows(matrix))
