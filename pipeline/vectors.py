"""Vector maths shared by the stages: unit scaling, centring, top-k means, softmax.

Base module: imports nothing from pipeline/. One copy of each, so cluster, map, the few-shot
detector and the report compute them the same way (their outputs depend on the exact floats).
"""
from __future__ import annotations

import numpy as np


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1; a zero row stays zero (no division by zero)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def to_unit_rows(matrix: np.ndarray, block: int = 4096) -> np.ndarray:
    """`unit_rows(matrix)` written into `matrix` (float) and returned, `block` rows at a time: the same numbers
    (each row's norm is its own sum) without the two full-size temporaries (0.3 GB each at 100k cards)."""
    for start in range(0, len(matrix), block):
        part = matrix[start:start + block]
        norms = np.linalg.norm(part, axis=-1, keepdims=True)
        part /= np.where(norms == 0, 1.0, norms)
    return matrix


def centred_unit(card_vectors: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unit vectors after removing the cards' mean, which every card shares (language, genre);
    `others` (prototypes, say) are moved by the same mean."""
    mean = card_vectors.mean(axis=0, keepdims=True)
    return tuple(unit_rows(X - mean) for X in (card_vectors, *others))


def top_k_mean(similarity: np.ndarray, k: int, empty: float = 0.0) -> np.ndarray:
    """Per row, mean of the k largest finite values (-inf marks hidden columns); `empty` when none."""
    if similarity.shape[1] == 0:
        return np.full(len(similarity), empty)
    top = np.sort(similarity, axis=1)[:, -k:]
    finite = np.isfinite(top)
    count = finite.sum(axis=1)
    return np.where(count > 0, np.where(finite, top, 0.0).sum(axis=1) / np.maximum(count, 1), empty)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities over the last axis; `temperature` divides the scores (smaller: sharper)."""
    z = (scores - scores.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
