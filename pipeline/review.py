"""Review: the cards whose label would help most (the review queue in insights.json).

The review queue ranks the cards the analyst has not decided (a card labelled, or moved by a
curation rule, has confidence 1) by greedy facility location weighted by uncertainty: each pick
is the card whose neighbourhood holds the most not-yet-covered doubt, the sum over all undecided
cards j of (1 - confidence_j) * max(0, similarity(pick, j) - similarity(j, nearest earlier pick)).
Uncertain cards near many other uncertain cards come first, and a near-duplicate of a pick adds
almost nothing, so the picks are spread out. Measured against least-confidence, margin,
density and their products with `bench/learning_curve.py` (README, "Review").

Pure: no I/O. The Excel round-trip of the queue is `pipeline.review_sheet`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.records import STATUS_REJECTED
from pipeline.report_vectors import SCORE_DECIMALS, one_blas_thread, stacked
from pipeline.ids import EMERGENT

METHOD = ("usikre kort nær mange andre usikre kort først (fasilitetsplassering vektet med 1 - sikkerhet), "
          "spredt så to nesten like kort ikke begge velges; kort analytikeren har avgjort er utelatt")
# Candidates for a pick: the most uncertain cards, so a corpus of 10,000 cards holds MAX_CANDIDATES x cards
# similarities (80 MB), not cards x cards. Every undecided card counts as covered, up to `report.sample_size`
# of them: above it a seeded sample stands in (100k cards would need 0.8 GB and its temporaries).
MAX_CANDIDATES = 1000
UNCERTAIN_BELOW = 0.7  # a card with a lower confidence is "usikker"; above it is picked for what it represents
NEIGHBOURS = 10  # nearest cards whose themes name the other side of an uncertain card's boundary
SAMPLE_SEED = 0  # the seeded sample of a large corpus's undecided cards that coverage is measured on
DECIDED = 1.0  # the confidence of a labelled card or one a curation rule moved


def queue_order(vectors: np.ndarray, uncertainty: np.ndarray, size: int, population: np.ndarray | None = None
                ) -> list[int]:
    """Row indices of the `size` picks, best first; rows in card id order (ties go to the first). `population`:
    the rows whose coverage counts (default all; a seeded sample of a large corpus bounds the similarity block)."""
    n = len(vectors)
    size = min(size, n)
    if size <= 0:
        return []
    population = np.arange(n) if population is None else population
    candidates = np.lexsort((np.arange(n), -uncertainty))[:MAX_CANDIDATES]
    with one_blas_thread():
        similarity = vectors[candidates] @ vectors[population].T  # (candidates, population)
    uncertainty = uncertainty[population]
    covered = np.full(len(population), -1.0)  # similarity of each card to its nearest pick; -1 before any pick
    chosen: list[int] = []
    taken = np.zeros(len(candidates), dtype=bool)
    work = np.empty_like(similarity)  # one buffer for the steps below, not three temporaries per pick (80 MB each)
    for _ in range(size):
        np.subtract(similarity, covered[None, :], out=work)
        np.maximum(work, 0.0, out=work)
        gain = np.multiply(work, uncertainty[None, :], out=work).sum(axis=1)
        gain = np.round(gain, SCORE_DECIMALS)  # float noise from another BLAS cannot flip a tie
        gain[taken] = -np.inf
        best = int(np.argmax(gain))
        taken[best] = True
        chosen.append(int(candidates[best]))
        covered = np.maximum(covered, similarity[best])
    return chosen


def review_queue(card_map: pd.DataFrame, vectors: dict[str, np.ndarray], size: int, *,
                 texts: dict[str, str], workshop_of: dict[str, str], group_of: dict[str, str | None],
                 theme_label: dict[str, str], taxonomy_theme_name: dict[str, str],
                 labelled: frozenset[str] = frozenset(), sample_size: int | None = None) -> list[dict]:
    """The review queue, `size` entries of the insights contract (see docs/insights.md, `review`).

    `card_map`: the map stage's card table; `vectors`: centred unit vector per live card;
    `labelled`: card ids already labelled (a card with confidence 1 counts as decided too); above `sample_size`
    undecided cards, what a pick covers is measured on a seeded sample of them (`report.sample_size`).
    """
    live = card_map[(card_map["status"] != STATUS_REJECTED) & card_map["card_id"].isin(vectors.keys())]
    live = live.sort_values("card_id", kind="stable").reset_index(drop=True)
    confidence = live["confidence"].astype(float).fillna(0.0).to_numpy()
    undecided = ~(live["card_id"].isin(labelled).to_numpy() | (confidence >= DECIDED))
    pool = live[undecided].reset_index(drop=True)
    if pool.empty or size <= 0:
        return []
    X = np.vstack([vectors[c] for c in pool["card_id"]])
    uncertainty = 1.0 - confidence[undecided]
    population = (np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(X), sample_size, replace=False))
                  if sample_size is not None and len(X) > sample_size else None)
    picks = queue_order(X, uncertainty, size, population)
    with one_blas_thread():
        nearest_pick = np.argmax(X[picks] @ X.T, axis=0)  # which pick each undecided card is closest to
    represents = np.bincount(nearest_pick, minlength=len(picks)) - 1  # not counting the pick itself
    all_ids = live["card_id"].tolist()
    A = stacked(vectors, all_ids)
    home = [_home(t) for t in live["taxonomy_theme_id"]]
    entries = []
    for rank, (row, count) in enumerate(zip(picks, represents), start=1):
        card = pool.iloc[row]
        own = _home(card["taxonomy_theme_id"])
        other = _other_side(A @ X[row], home, own, all_ids.index(card["card_id"]))
        entries.append({
            "card_id": card["card_id"],
            "workshop_id": workshop_of[card["card_id"]],
            "group_id": _none(group_of.get(card["card_id"])),
            "text": texts[card["card_id"]],
            "theme_id": _none(card["theme_id"]),
            "theme_label": theme_label.get(card["theme_id"]) if _none(card["theme_id"]) else None,
            "category_id": _none(card["category_id"]) or EMERGENT,
            "taxonomy_theme_id": _none(card["taxonomy_theme_id"]),
            "confidence": round(float(card["confidence"]), 4),
            "reason": reason(float(card["confidence"]), own, other, int(count), taxonomy_theme_name),
            "rank": rank,
        })
    return entries


def _none(value):
    return None if value is None or (isinstance(value, float) and value != value) or value is pd.NA else value


def _home(taxonomy_theme_id) -> str:
    return _none(taxonomy_theme_id) or EMERGENT


def _other_side(similarity: np.ndarray, home: list[str], own: str, self_row: int) -> str | None:
    """The theme most of the card's nearest neighbours hold, other than its own (similarity-weighted)."""
    order = [i for i in np.lexsort((np.arange(len(similarity)), -np.round(similarity, SCORE_DECIMALS)))
             if i != self_row][:NEIGHBOURS]
    votes: dict[str, float] = {}
    for i in order:
        if home[i] != own:
            votes[home[i]] = votes.get(home[i], 0.0) + max(float(similarity[i]), 0.0)
    return max(sorted(votes), key=lambda t: votes[t]) if votes else None


def reason(confidence: float, own: str, other: str | None, represents: int, names: dict[str, str]) -> str:
    """A short Norwegian phrase: why this card is worth a look."""
    def name(theme: str) -> str:
        return "nytt tema" if theme == EMERGENT else names.get(theme, theme)

    if confidence < UNCERTAIN_BELOW:
        text = f"usikker mellom {name(own)} og {name(other)}" if other else f"usikker ({confidence:.2f})"
        return text + (f"; representerer {represents} kort" if represents >= 5 else "")
    return f"representerer {represents} kort" if represents > 0 else f"stikkprøve (sikkerhet {confidence:.2f})"


def review_section(card_map: pd.DataFrame, vectors: dict[str, np.ndarray], size: int, **kwargs) -> dict:
    """`review` in insights.json: the method in one line and the queue."""
    return {"method": METHOD, "queue": review_queue(card_map, vectors, size, **kwargs)}
