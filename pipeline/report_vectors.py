"""Vector geometry for the report: representative quotes (MMR) and the 2-D card map (seeded UMAP).

Both work on the card embeddings after subtracting the corpus mean and L2-normalising:
e5 vectors share a large common component, so raw cosines are all high and say little;
centred vectors spread the cards out (the cluster stage does the same, `cluster.center`).

Everything here is deterministic: rows are sorted by card id before any linear algebra,
ties are broken by card id, PCA axes get a fixed sign and UMAP a fixed seed.
"""
from __future__ import annotations

from functools import lru_cache
from operator import itemgetter
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from pipeline.engine import LocalEngine
from pipeline.params import EngineParams
from pipeline.vectors import to_unit_rows, unit_rows

# Weight of relevance against redundancy in maximal marginal relevance: 0.7 keeps quotes on
# topic while still pushing the 2nd and later quotes away from what is already chosen.
MMR_LAMBDA = 0.7
COORD_DECIMALS = 4
# Scores are rounded before comparing, so float noise from a different BLAS cannot flip a tie.
SCORE_DECIMALS = 9


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS once; limiting it is then cheap (20 us)


def one_blas_thread():
    """Context manager: numpy's BLAS on one thread.

    The report's products are small (one theme's cards) or made of many short sequential steps
    (the SVD), so threads gain little, and on a busy 2-core machine each step waits for a thread
    that is not running: at 10k cards the SVD took 3 to 10 s on two threads and 1 s on one, the
    quotes of 606 themes 1.1 s against 0.3 s.
    """
    return _blas().limit(limits=1, user_api="blas")


class CardVectors(Mapping):
    """card_id -> vector: the rows of one matrix, ids sorted. `stacked` gives the matrix itself for all of
    them (a dict of rows needed a stacked copy per use: 0.3 GB each at 100k cards)."""

    def __init__(self, ids: list[str], matrix: np.ndarray):
        self.ids, self.matrix = ids, matrix
        self._row = {card_id: i for i, card_id in enumerate(ids)}

    def __getitem__(self, card_id: str) -> np.ndarray:
        return self.matrix[self._row[card_id]]

    def __contains__(self, card_id) -> bool:
        return card_id in self._row

    def __iter__(self):
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def stacked(vectors: Mapping[str, np.ndarray], ids: list[str]) -> np.ndarray:
    """The vectors of `ids` as rows of a matrix: `vectors.matrix` itself (read-only: shared) when they are all
    of a CardVectors, in its order; else a new matrix."""
    if isinstance(vectors, CardVectors) and ids == vectors.ids:
        shared = vectors.matrix.view()
        shared.flags.writeable = False
        return shared
    return np.vstack([vectors[i] for i in ids])


def centred_unit_vectors(embeddings: pd.DataFrame, card_ids: Iterable[str]) -> CardVectors:
    """card_id -> centred, L2-normalised vector, for the given cards (those that have an embedding)."""
    wanted = set(card_ids)
    # On plain lists: pandas' isin and sort on its Arrow strings took longer than the arithmetic.
    order = sorted((card_id, i) for i, card_id in enumerate(embeddings["card_id"].tolist()) if card_id in wanted)
    if not order:
        return CardVectors([], np.zeros((0, 0)))
    vectors = embeddings["embedding"].tolist()
    matrix = np.empty((len(order), len(vectors[order[0][1]])))
    for k, (_, i) in enumerate(order):
        matrix[k] = vectors[i]  # float32 into float64, a row at a time: no float32 copy of all of them
    # In place, the same numbers as unit_rows(matrix - mean): at 100k cards each copy is 0.3 GB.
    matrix -= matrix.mean(axis=0)
    return CardVectors([card_id for card_id, _ in order], to_unit_rows(matrix))


def _fixed_sign(components: np.ndarray) -> np.ndarray:
    """SVD axes are defined up to sign; make each axis's largest-magnitude loading positive."""
    pivots = components[np.arange(len(components)), np.argmax(np.abs(components), axis=1)]
    return components * np.where(pivots < 0, -1.0, 1.0)[:, None]


def principal_axes(matrix: np.ndarray) -> np.ndarray:
    """Right singular vectors of `matrix` (rows), largest singular value first.

    For a tall matrix (more cards than dimensions) LAPACK's SVD itself starts with a QR
    decomposition, then spends most of its time building the n x d left singular vectors,
    which the map does not use. Taking the QR here and the SVD of the d x d factor gives
    the same axes, to the bit on the 10k-card benchmark, in half the time (0.4 s against 0.85 s).
    """
    if matrix.shape[0] > matrix.shape[1]:
        matrix = np.linalg.qr(matrix, mode="r")
    return np.linalg.svd(matrix, full_matrices=False)[2]


MAP_SEED = 42
MAP_NEIGHBOURS = 15
MIN_UMAP_CARDS = 10  # fewer cards: PCA (UMAP needs a neighbourhood to lay out)
SELECT_ROWS = 512  # cards placed on the map at a time (one product's rows): bounds the similarities' memory


def project_2d(vectors: Mapping[str, np.ndarray], themes: Mapping[str, str] | None = None,
               sample_size: int | None = None, engine: LocalEngine | None = None) -> dict[str, tuple[float, float]]:
    """card_id -> (x, y), rounded to COORD_DECIMALS: a seeded 2-D UMAP of the vectors (cosine), in which
    cards that say the same thing sit together. With `themes` (card_id -> theme id; cards without one
    are left out) the layout is semi-supervised: UMAP also pulls each theme's cards together
    (`target_weight` 0.5), so themes show as groups where the text alone would spread a taxonomy
    theme's cards by how they are worded. The first two principal components for fewer than
    MIN_UMAP_CARDS cards. Above `sample_size` cards UMAP lays out a seeded sample of that many and every
    other card sits among its nearest sample cards (`place_on_map`, in partitions of `engine.partition_size` on
    `engine`, in this process by default): UMAP's time grows faster than the cards."""
    ids = sorted(vectors)
    if not ids:
        return {}
    matrix = stacked(vectors, ids)  # read-only when shared: centred below a part at a time, or copied
    mean = matrix.mean(axis=0)
    if len(ids) >= MIN_UMAP_CARDS:
        codes = {theme: k for k, theme in enumerate(sorted(set((themes or {}).values())))}
        target = np.array([codes.get((themes or {}).get(i), -1) for i in ids]) if codes else None
        if sample_size is not None and len(ids) > sample_size:
            sample = np.sort(np.random.default_rng(MAP_SEED).choice(len(ids), sample_size, replace=False))
            coords = np.empty((len(ids), 2))
            centred_sample = matrix[sample] - mean
            sample_unit = unit_rows(centred_sample)
            coords[sample] = _umap_2d(centred_sample, None if target is None else target[sample])
            rest = np.setdiff1d(np.arange(len(ids)), sample)
            engine = engine if engine is not None else LocalEngine(EngineParams())
            step = engine.params.partition_size
            # float32, as place_on_map multiplies them: half the bytes to send to a worker, the same numbers.
            parts = (unit_rows(matrix[rest[start:start + step]] - mean).astype(np.float32)
                     for start in range(0, len(rest), step))
            placed = engine.map(place_on_map, parts, sample_unit.astype(np.float32), coords[sample], MAP_NEIGHBOURS)
            for start, part_coords in zip(range(0, len(rest), step), placed):
                coords[rest[start:start + step]] = part_coords
        else:
            coords = _umap_2d(matrix - mean, target)
    else:
        with one_blas_thread():
            axes = _fixed_sign(principal_axes(matrix - mean)[:2])
        coords = (matrix - mean) @ axes.T
    if coords.shape[1] < 2:  # a single card (or rank 1): pad the missing axis with zeros
        coords = np.hstack([coords, np.zeros((len(ids), 2 - coords.shape[1]))])
    # "+ 0.0" turns -0.0 into 0.0 so the JSON text cannot differ by a sign on zero.
    return {
        card_id: (round(float(x), COORD_DECIMALS) + 0.0, round(float(y), COORD_DECIMALS) + 0.0)
        for card_id, (x, y) in zip(ids, coords[:, :2])
    }


def place_on_map(rows: np.ndarray, sample: np.ndarray, sample_coords: np.ndarray, k: int) -> np.ndarray:
    """(rows, 2): each row (a unit vector) at the mean position of its k most similar `sample` rows, weighted by
    similarity (clipped at 0; the plain mean when all are at most 0). The engine's partition function (rows:
    one partition; the rest shared): each row is placed on its own, so any split gives the same bits.

    SELECT_ROWS rows at a time, the last part padded with zero rows: BLAS picks its routine by the shape of a
    product (a lone row: matrix-vector; a small product: a small-matrix kernel), and the routines sum in
    different orders, so a row's last bits would depend on where its partition ends. One shape for every
    product keeps them, and bounds memory (the similarities, their indices) by SELECT_ROWS, not the partition.
    """
    rows = rows.astype(np.float32, copy=False)
    sample_t = sample.astype(np.float32, copy=False).T
    k = min(k, len(sample))
    coords = np.empty((len(rows), sample_coords.shape[1]))
    for start in range(0, len(rows), SELECT_ROWS):
        part = rows[start:start + SELECT_ROWS]
        n = len(part)
        if n < SELECT_ROWS:
            part = np.vstack([part, np.zeros((SELECT_ROWS - n, rows.shape[1]), np.float32)])
        similarity = (part @ sample_t)[:n]
        # argpartition, not a full sort (10k sample cards); sorted columns fix the order of the sum.
        top = np.sort(np.argpartition(-similarity, k - 1, axis=1)[:, :k], axis=1)
        weight = np.clip(np.take_along_axis(similarity, top, axis=1).astype(np.float64), 0.0, None)
        weight[weight.sum(axis=1) == 0] = 1.0
        coords[start:start + n] = (np.einsum("rk,rkd->rd", weight, sample_coords[top])
                                   / weight.sum(axis=1, keepdims=True))
    return coords


def _umap_2d(matrix: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    import warnings

    from umap import UMAP

    from pipeline.numba_cache import enable_jit_cache

    enable_jit_cache()  # numba code compiled once and kept on disk, as in the cluster stage
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # seeded: one thread
        return UMAP(n_neighbors=min(MAP_NEIGHBOURS, len(matrix) - 1), n_components=2, min_dist=0.1, metric="cosine",
                    target_metric="categorical", target_weight=0.5,
                    random_state=MAP_SEED).fit_transform(matrix, target)  # target -1: no theme (unlabelled)


def mmr_order(candidates: list[str], vectors: Mapping[str, np.ndarray], n: int,
              groups: Mapping[str, str], lam: float = MMR_LAMBDA) -> list[str]:
    """Up to n card ids by maximal marginal relevance.

    relevance = cosine to the (normalised) centroid of all candidates; each step picks the
    card maximising lam * relevance - (1 - lam) * max cosine to the cards already picked.
    A card whose group (`groups[card_id]`, e.g. its duplicate group) was already picked is
    never picked, so the same words are never quoted twice. Ties go to the smaller card id.
    """
    ids = sorted(c for c in candidates if c in vectors)
    if not ids or n <= 0:
        return []
    matrix = np.vstack([vectors[c] for c in ids])
    centroid = unit_rows(matrix.mean(axis=0, keepdims=True))[0]
    with one_blas_thread():
        relevance = matrix @ centroid
    # Each card's largest cosine to the cards picked so far, one column per pick: the whole similarity
    # matrix of a theme of 84k cards (a 1M corpus) took 53 GiB.
    redundancy: np.ndarray | None = None
    chosen: list[int] = []
    used_groups: set[str] = set()
    while len(chosen) < n:
        best = None
        for i, card_id in enumerate(ids):
            if i in chosen or groups.get(card_id, card_id) in used_groups:
                continue
            score = round(float(lam * relevance[i] - (1 - lam) * (0.0 if redundancy is None else redundancy[i])),
                          SCORE_DECIMALS)
            if best is None or score > best[0]:  # ids are sorted, so ">" keeps the smaller id on ties
                best = (score, i)
        if best is None:
            break
        chosen.append(best[1])
        used_groups.add(groups.get(ids[best[1]], ids[best[1]]))
        with one_blas_thread():
            column = matrix @ matrix[best[1]]
        redundancy = column if redundancy is None else np.maximum(redundancy, column)
    return [ids[i] for i in chosen]
