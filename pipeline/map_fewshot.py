"""Few-shot learning from analyst labels: emergent detection, and calibrated confidence.

Is a card about something the taxonomy does not cover?

With analyst labels, emergent topics recur across workshops (new technology, staffing, climate,
...), and a card's novelty shows in how its nearest labelled cards compare: near labelled
emergent cards and far from labelled taxonomy cards and from every taxonomy prototype. A
logistic regression learns that trade-off from the labels themselves, so no similarity
threshold is set by hand; its probability is the card's confidence of being emergent.

Four features per card (mean-centred unit vectors, as in `pipeline.map.score_cards`):
- mean similarity of its `top_k` nearest labelled emergent cards;
- mean similarity of its `top_k` nearest labelled taxonomy cards;
- its best zero-shot taxonomy score (prototype similarity plus cue evidence, no labels);
- how far that best theme stands out from the second best: a card about one theme is clearly
  nearer that theme, a card about none is about as near several.

The labelled cards train the model with features computed as an unlabelled card of their
workshop sees them. A card of a workshop that is labelled only in part sees the other labels of
its own workshop; a card of a fully labelled workshop stands in for a new workshop, so it is
compared only with labels of other workshops (labels of its own workshop share wording and
near-duplicates, which would make novelty look rarer than it is on a new workshop). When all
labels come from one workshop, each labelled card is compared with the other labelled cards.
"""
from __future__ import annotations

import numpy as np

from pipeline.vectors import softmax, top_k_mean  # noqa: F401 (top_k_mean: the novelty features)

FEATURES = ("emergent_neighbours", "taxonomy_neighbours", "taxonomy_score", "taxonomy_margin")
# Inverse L2 strength of the detector; sklearn's default. Four standardised features and a
# few hundred labels need little regularisation, and a fixed value keeps the knobs few.
REGULARISATION_C = 1.0


def novelty_features(
    similarity: np.ndarray, label_is_emergent: np.ndarray, taxonomy_scores: np.ndarray, top_k: int,
    hidden: np.ndarray | None = None,
) -> np.ndarray:
    """(cards, 4) features, see the module docstring.

    `similarity` is (cards, labelled cards); `hidden[i, j]` hides labelled card j from card i.
    `taxonomy_scores` is (cards, taxonomy themes), zero-shot.
    """
    if hidden is not None:
        similarity = np.where(hidden, -np.inf, similarity)
    ranked = np.sort(taxonomy_scores, axis=1)
    best = ranked[:, -1]
    margin = best - ranked[:, -2] if ranked.shape[1] >= 2 else np.zeros(len(ranked))
    return np.column_stack([
        top_k_mean(similarity[:, label_is_emergent], top_k),
        top_k_mean(similarity[:, ~label_is_emergent], top_k),
        best,
        margin,
    ])


def training_mask(label_groups: np.ndarray, fully_labelled: np.ndarray) -> np.ndarray:
    """(labels, labels) True where label j must be hidden from labelled card i when training.

    `fully_labelled[i]`: every card of label i's workshop is labelled (see the module docstring).
    """
    same_card = np.eye(len(label_groups), dtype=bool)
    if len(set(label_groups.tolist())) < 2:
        return same_card
    return same_card | (fully_labelled[:, None] & (label_groups[:, None] == label_groups[None, :]))


class NoveltyDetector:
    """P(emergent) from `novelty_features`; a scikit-learn style estimator."""

    def __init__(self, C: float = REGULARISATION_C, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    def fit(self, features: np.ndarray, is_emergent: np.ndarray) -> "NoveltyDetector":
        # Imported here: scikit-learn takes seconds to load, and a map run without labels never needs it.
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        classes = set(np.asarray(is_emergent, dtype=bool).tolist())
        if classes != {False, True}:
            raise ValueError(f"NoveltyDetector.fit: is_emergent={sorted(classes)}; needs both emergent and "
                             f"taxonomy examples")
        self.scaler_ = StandardScaler().fit(features)
        self.model_ = LogisticRegression(C=self.C, random_state=self.random_state, max_iter=1000).fit(
            self.scaler_.transform(features), np.asarray(is_emergent, dtype=bool))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(cards,) probability that each card is emergent."""
        positive = list(self.model_.classes_).index(True)
        return self.model_.predict_proba(self.scaler_.transform(features))[:, positive]


def emergent_probability(
    similarity: np.ndarray,
    taxonomy_scores: np.ndarray,
    label_rows: np.ndarray,
    label_is_emergent: np.ndarray,
    label_groups: np.ndarray,
    fully_labelled: np.ndarray,
    top_k: int,
) -> np.ndarray:
    """(cards,) P(emergent) for every card, from a detector trained on the labelled cards.

    `similarity` is (cards, labelled cards); row `label_rows[j]` is labelled card j itself.
    `taxonomy_scores` is (cards, taxonomy themes), zero-shot. A card is never its own evidence: labelled cards are scored with `training_mask`'s labels
    hidden, and every card has its own label hidden.
    """
    own = np.zeros(similarity.shape, dtype=bool)
    own[label_rows, np.arange(len(label_rows))] = True
    train = novelty_features(similarity[label_rows], label_is_emergent, taxonomy_scores[label_rows], top_k,
                             hidden=training_mask(label_groups, fully_labelled))
    detector = NoveltyDetector().fit(train, label_is_emergent)
    return detector.predict_proba(novelty_features(similarity, label_is_emergent, taxonomy_scores, top_k, own))


# Softmax temperatures tried when fitting to labels: a log-spaced grid, so the fit is exact and
# deterministic (no optimiser tolerance), from very sharp to very flat for cosine-like scores.
TEMPERATURE_GRID = tuple(float(t) for t in np.geomspace(0.005, 0.5, 41))


def fit_temperature(scores: np.ndarray, in_category: np.ndarray, right_category: np.ndarray) -> float:
    """The temperature under which labelled cards' category probabilities fit their labels best
    (least log loss): calibration learnt from the analyst, as the novelty detector is.

    `scores` (labelled cards, targets): each card scored as an unlabelled card of its workshop
    sees it (`training_mask`); `in_category[t, c]`: target t belongs to category c;
    `right_category[i, c]`: c is card i's labelled category.
    """
    def log_loss(temperature: float) -> float:
        probabilities = softmax(scores, temperature)
        right = (probabilities @ in_category * right_category).sum(axis=1)
        return float(-np.log(np.clip(right, 1e-12, 1.0)).mean())

    return min(TEMPERATURE_GRID, key=log_loss)
