import numpy as np
import pytest

from pipeline.map_fewshot import (
    TEMPERATURE_GRID,
    NoveltyDetector,
    emergent_probability,
    fit_temperature,
    novelty_features,
    training_mask,
)


def test_training_hides_what_an_unlabelled_card_of_the_same_workshop_would_not_see():
    groups = np.array(["a", "a", "b", "b"], dtype=object)
    # a is fully labelled (stands for a new workshop); b has unlabelled cards too
    mask = training_mask(groups, np.array([True, True, False, False]))
    assert mask.tolist() == [[True, True, False, False], [True, True, False, False],
                             [False, False, True, False], [False, False, False, True]]
    # one workshop only: each card is hidden from itself, not from its workshop
    one = training_mask(np.array(["a", "a"], dtype=object), np.array([True, True]))
    assert one.tolist() == [[True, False], [False, True]]


def test_novelty_features_compare_emergent_and_taxonomy_neighbours():
    similarity = np.array([[0.8, 0.6, 0.1, 0.2]])
    features = novelty_features(similarity, np.array([True, True, False, False]), np.array([[0.1, 0.3, 0.25]]),
                                top_k=2, hidden=np.array([[True, False, False, False]]))
    np.testing.assert_allclose(features, [[0.6, 0.15, 0.3, 0.05]])  # best theme 0.3, 0.05 above the next


def test_detector_needs_both_kinds_of_label():
    with pytest.raises(ValueError, match="is_emergent=\\[False\\]"):
        NoveltyDetector().fit(np.zeros((3, 4)), np.array([False, False, False]))


def _two_topics(rng, n=12):
    """Unit vectors near axis 0 (emergent topic) and axis 1 (taxonomy theme)."""
    vectors = np.vstack([np.eye(6)[k] + 0.1 * rng.standard_normal(6) for k in [0] * n + [1] * n])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_cards_near_labelled_emergent_cards_and_far_from_the_taxonomy_are_emergent():
    rng = np.random.default_rng(0)
    cards = _two_topics(rng)
    label_rows = np.array([0, 1, 2, 3, 12, 13, 14, 15])
    is_emergent = label_rows < 12
    groups = np.array(["w1", "w2", "w1", "w2", "w1", "w2", "w1", "w2"], dtype=object)
    # Zero-shot: emergent cards near no theme, taxonomy cards clearly near one.
    taxonomy_score = np.where(np.arange(len(cards))[:, None] < 12, [[0.1, 0.08]], [[0.5, 0.2]])
    full = np.ones(len(label_rows), dtype=bool)
    p = emergent_probability(cards @ cards[label_rows].T, taxonomy_score, label_rows, is_emergent, groups, full,
                             top_k=2)
    assert (p[4:12] > 0.5).all() and (p[16:] < 0.5).all()
    again = emergent_probability(cards @ cards[label_rows].T, taxonomy_score, label_rows, is_emergent, groups, full,
                                 2)
    np.testing.assert_array_equal(p, again)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 0.1, size=(4000, 4))
    z = scores / 0.05
    probabilities = np.exp(z - z.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    drawn = np.array([rng.choice(4, p=p) for p in probabilities])
    in_category = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)  # two themes per category
    right = in_category[drawn]
    assert fit_temperature(scores, in_category, right) == pytest.approx(0.05, rel=0.15)
    always_right = in_category[scores.argmax(axis=1)]  # labels that always agree: as sharp as the grid allows
    assert fit_temperature(scores, in_category, always_right) == min(TEMPERATURE_GRID)
