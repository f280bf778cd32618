"""Near-duplicate cards without comparing every pair: MinHash signatures, LSH bands, exact check.

Two cards are near duplicates when the cosine of their binary character 3-5-gram vectors
(hashed, so independent of the rest of the corpus) reaches the threshold. Comparing all pairs
is quadratic (minutes at 10k cards, hours at 100k); instead each card gets a MinHash signature
(a function of its own text only, so it can be kept between runs), cards sharing a band of
the signature become candidates, and only candidates are checked exactly. With 40 bands of 3
rows, a pair at cosine 0.7 is a candidate with probability above 0.99, and pairs far apart
almost never are. Seeds are fixed: the same texts always give the same pairs.
"""
from __future__ import annotations

import numpy as np

BANDS, ROWS = 40, 3
SIGNATURE_SIZE = BANDS * ROWS
_SEED = 20260401
JACCARD_SLACK = 0.15
MAX_BUCKET_PAIRS_SIZE = 256
_MASK = np.uint64((1 << 32) - 1)
_ROWS_PER_STEP = 2000  # signature rows computed at once: bounds memory


def char_vectors(keys: list[str]):
    """L2-normalised binary character 3-5-gram vectors (hashed: no vocabulary to fit)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), binary=True, alternate_sign=False,
                             n_features=2**20).transform(keys)


def signatures(keys: list[str]) -> np.ndarray:
    """MinHash signature per text (uint64, SIGNATURE_SIZE values); an empty text gets all-max."""
    rng = np.random.default_rng(_SEED)
    a = rng.integers(1, 1 << 31, SIGNATURE_SIZE, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, SIGNATURE_SIZE, dtype=np.uint64)
    vectors = char_vectors(keys)
    indptr, indices = vectors.indptr, vectors.indices.astype(np.uint64)
    out = np.full((len(keys), SIGNATURE_SIZE), np.iinfo(np.uint64).max, dtype=np.uint64)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    for start in range(0, len(nonempty), _ROWS_PER_STEP):
        rows = nonempty[start:start + _ROWS_PER_STEP]
        low, high = indptr[rows[0]], indptr[rows[-1] + 1]
        hashed = (indices[low:high, None] * a[None, :] + b[None, :]) & _MASK  # wraps mod 2^64, then 32 bits
        out[rows] = np.minimum.reduceat(hashed, indptr[rows] - low, axis=0)
    return out


def candidate_pairs(signature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, for every two texts that agree on at least one whole band."""
    n = len(signature)
    found = []
    for band in range(BANDS):
        part = np.ascontiguousarray(signature[:, band * ROWS:(band + 1) * ROWS])
        keys = part.view(np.dtype((np.void, part.dtype.itemsize * ROWS))).ravel()
        _, bucket, sizes = np.unique(keys, return_inverse=True, return_counts=True)
        shared = np.flatnonzero(sizes[bucket] > 1)
        if len(shared) < 2:
            continue
        order = shared[np.argsort(bucket[shared], kind="stable")]
        bounds = np.flatnonzero(np.diff(bucket[order])) + 1
        for members in np.split(order, bounds):
            if len(members) > MAX_BUCKET_PAIRS_SIZE:
                # A huge bucket (hundreds of copies of one card) would give a quadratic number of
                # pairs; pairing each with the first keeps its duplicate group connected.
                found.append(members[0].astype(np.int64) * n + members[1:])
                continue
            i, j = np.triu_indices(len(members), 1)
            found.append(members[i].astype(np.int64) * n + members[j])
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.unique(np.concatenate(found))
    return pairs // n, pairs % n


def near_pairs(keys: list[str], threshold: float, signature: np.ndarray | None = None,
               chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of texts whose character n-gram cosine is at least `threshold`."""
    signature = signatures(keys) if signature is None else signature
    first, second = candidate_pairs(signature)
    # The share of equal MinHash values estimates Jaccard; a pair at cosine t has Jaccard >= t^2.
    # Checking only pairs estimated above t^2 - JACCARD_SLACK (over 3 standard errors) saves most work.
    estimate = np.concatenate([
        (signature[first[s:s + chunk]] == signature[second[s:s + chunk]]).mean(axis=1)
        for s in range(0, len(first), chunk)]) if len(first) else np.zeros(0)
    plausible = estimate >= threshold ** 2 - JACCARD_SLACK
    first, second = first[plausible], second[plausible]
    if not len(first):
        return first, second
    involved = np.unique(np.concatenate([first, second]))
    position = np.full(len(keys), -1, dtype=np.int64)
    position[involved] = np.arange(len(involved))
    vectors = char_vectors([keys[i] for i in involved])
    keep = np.zeros(len(first), dtype=bool)
    for start in range(0, len(first), chunk):
        i, j = position[first[start:start + chunk]], position[second[start:start + chunk]]
        keep[start:start + chunk] = np.asarray(vectors[i].multiply(vectors[j]).sum(axis=1)).ravel() >= threshold
    return first[keep], second[keep]
