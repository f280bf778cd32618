"""Near-duplicate cards without comparing every pair: MinHash signatures, LSH bands, exact check.

Two cards are near duplicates when the cosine of their binary character 3-5-gram vectors
(hashed, so independent of the rest of the corpus) reaches the threshold. Comparing all pairs
is quadratic (minutes at 10k cards, hours at 100k); instead each card gets a MinHash signature
(a function of its own text only), cards sharing a band of the signature become candidates, and
only candidates are checked exactly. With 40 bands of 3 rows, a pair at cosine 0.7 is a
candidate with probability above 0.99, and pairs far apart almost never are. Seeds are fixed:
the same texts always give the same pairs.

Whether two texts are near is therefore a function of the two texts alone, so a rerun need not
compare again what it compared before: `Known` holds texts already compared with each other
(their signatures and near pairs; the normalise stage keeps it between runs), and `compare`
checks only the new texts, against all of those. One rule depends on the other texts: in a band
bucket of more than MAX_BUCKET_PAIRS_SIZE texts each is paired only with the first and the
BUCKET_WINDOW texts before it (so the number of pairs stays linear, and memory with it); when that
happens `compare` works from scratch and keeps only the new texts' signatures.

The n-gram vectors are scikit-learn's HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5),
binary=True, alternate_sign=False, n_features=2**20) with l2 norm, computed here (same n-grams,
same MurmurHash3, same floats) because importing scikit-learn costs seconds per run.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BANDS, ROWS = 40, 3
SIGNATURE_SIZE = BANDS * ROWS
_SEED = 20260401
JACCARD_SLACK = 0.15
MAX_BUCKET_PAIRS_SIZE = 32  # larger buckets: BUCKET_WINDOW pairs per member, not all
BUCKET_WINDOW = 16
N_FEATURES = 2**20
NGRAM_SIZES = (3, 4, 5)
_ROWS_PER_STEP = 2000  # words or texts whose signatures are computed at once: bounds memory
_PENDING_PAIRS = 4_000_000  # candidate pairs gathered before removing repeats: bounds memory
_BAND_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)  # any odd constants


def duplicate_key(text_norm: str) -> str:
    """What two cards must share to count as the same words: case and punctuation aside. Normalise
    groups duplicates by it; the report never quotes two cards of one group."""
    return re.sub(r"[\W_]+", " ", text_norm.casefold()).strip()


# --- hashed character n-grams -------------------------------------------------------------------


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def murmurhash3_32(strings: list[str]) -> np.ndarray:
    """MurmurHash3 (x86, 32 bits, seed 0) of each string's UTF-8 bytes, unsigned: scikit-learn's feature hash.

    Vectorised over all strings of the same byte length.
    """
    encoded = [s.encode("utf-8") for s in strings]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    out = np.empty(len(encoded), dtype=np.uint32)
    c1, c2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        data = blob[starts[rows, None] + np.arange(length)].astype(np.uint32)
        h = np.zeros(len(rows), dtype=np.uint32)
        blocks, tail = divmod(length, 4)
        for block in range(blocks):
            b = data[:, 4 * block:4 * block + 4]
            k = b[:, 0] | (b[:, 1] << np.uint32(8)) | (b[:, 2] << np.uint32(16)) | (b[:, 3] << np.uint32(24))
            h ^= _rotl(k * c1, 15) * c2
            h = _rotl(h, 13) * np.uint32(5) + np.uint32(0xE6546B64)
        if tail:
            k = np.zeros(len(rows), dtype=np.uint32)
            for t in range(tail):
                k ^= data[:, 4 * blocks + t] << np.uint32(8 * t)
            h ^= _rotl(k * c1, 15) * c2
        h ^= np.uint32(length)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
        out[rows] = h
    return out


def _word_ngrams(word: str) -> list[str]:
    """Character n-grams of one word padded with spaces, as scikit-learn's `char_wb` analyzer makes them."""
    padded = f" {word} "
    grams: list[str] = []
    for n in NGRAM_SIZES:
        grams.extend(padded[i:i + n] for i in range(max(1, len(padded) - n + 1)))
        if len(padded) <= n:  # a short word counts once, not once per n
            break
    return grams


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values: np.unique, but by sorting (numpy 2's hashing np.unique is many times slower)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """arange(start, start + count) for each start and count, concatenated."""
    return np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())


def _words(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The texts as words: (words per text, each word's id in text order, n-grams per distinct word,
    and the n-grams' columns, word after word). Lowercased and split at whitespace; each word padded
    with a space and cut into 3- to 5-grams, each n-gram's column |signed MurmurHash3| mod N_FEATURES."""
    word_ids: dict[str, int] = {}
    text_words: list[int] = []
    words_per_text = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        words = text.lower().split()
        words_per_text[row] = len(words)
        text_words.extend(word_ids.setdefault(word, len(word_ids)) for word in words)
    grams_per_word = np.zeros(len(word_ids), dtype=np.int64)
    grams: list[str] = []
    for word, word_id in word_ids.items():
        word_grams = _word_ngrams(word)
        grams_per_word[word_id] = len(word_grams)
        grams.extend(word_grams)
    hashed = murmurhash3_32(grams).astype(np.int64)
    column = np.where(hashed < 1 << 31, hashed, (1 << 32) - hashed) % N_FEATURES  # |int32| mod n
    return words_per_text, np.array(text_words, dtype=np.int64), grams_per_word, column


def ngram_features(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of each text's hashed character n-grams (int32, sorted and unique per text)."""
    words_per_text, occurrences, grams_per_word, column = _words(texts)
    counts = grams_per_word[occurrences]
    columns = column[_ranges((np.cumsum(grams_per_word) - grams_per_word)[occurrences], counts)]
    rows = np.repeat(np.repeat(np.arange(len(texts)), words_per_text), counts)
    cells = _unique(rows * N_FEATURES + columns)
    indptr = np.zeros(len(texts) + 1, dtype=np.int32)
    np.cumsum(np.bincount(cells // N_FEATURES, minlength=len(texts)), out=indptr[1:])
    return indptr, (cells % N_FEATURES).astype(np.int32)


def char_vectors(texts: list[str]):
    """L2-normalised binary character 3-5-gram vectors (scipy CSR, float64), bit for bit scikit-learn's."""
    return _vectors_of(*ngram_features(texts))


def _vectors_of(indptr: np.ndarray, indices: np.ndarray):
    """`char_vectors` of texts whose `ngram_features` are (indptr, indices)."""
    from scipy.sparse import csr_matrix

    counts = np.diff(indptr)
    scale = np.zeros(len(counts))
    # scikit-learn divides each 1.0 by the square root of the row's sum of squares (the count).
    scale[counts > 0] = 1.0 / np.sqrt(counts[counts > 0].astype(np.float64))
    return csr_matrix((np.repeat(scale, counts), indices, indptr), shape=(len(counts), N_FEATURES))


def _char_vectors_in_blocks(texts: list[str], block: int):
    """`char_vectors(texts)`, made `block` texts at a time: the n-gram work of all texts at once is several
    times the vectors' own size. Each row depends on its text alone, so the rows are the same."""
    from scipy.sparse import vstack

    if len(texts) <= block:
        return char_vectors(texts)
    return vstack([char_vectors(texts[start:start + block]) for start in range(0, len(texts), block)], format="csr")


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signature per text (uint64, SIGNATURE_SIZE values); an empty text gets all-max.

    Each value is the least (column * a + b) mod 2^32 over the text's n-gram columns: the least
    over its words of each word's least, so each distinct word is hashed once.
    """
    rng = np.random.default_rng(_SEED)
    # uint32 arithmetic wraps to exactly mod 2^32, at half the memory of uint64.
    a = rng.integers(1, 1 << 31, SIGNATURE_SIZE, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 31, SIGNATURE_SIZE, dtype=np.uint64).astype(np.uint32)
    words_per_text, occurrences, grams_per_word, column = _words(texts)
    column = column.astype(np.uint32)
    gram_start = np.cumsum(grams_per_word) - grams_per_word  # every word has at least one n-gram
    word_signature = np.empty((len(grams_per_word), SIGNATURE_SIZE), dtype=np.uint32)
    for first in range(0, len(grams_per_word), _ROWS_PER_STEP):
        starts = gram_start[first:first + _ROWS_PER_STEP]
        low, high = starts[0], starts[-1] + grams_per_word[first + len(starts) - 1]
        hashed = column[low:high, None] * a[None, :] + b[None, :]
        word_signature[first:first + len(starts)] = np.minimum.reduceat(hashed, starts - low, axis=0)
    out = np.full((len(texts), SIGNATURE_SIZE), np.iinfo(np.uint64).max, dtype=np.uint64)
    word_start = np.cumsum(words_per_text) - words_per_text
    nonempty = np.flatnonzero(words_per_text > 0)
    for first in range(0, len(nonempty), _ROWS_PER_STEP):
        rows = nonempty[first:first + _ROWS_PER_STEP]
        low, high = word_start[rows[0]], word_start[rows[-1]] + words_per_text[rows[-1]]
        out[rows] = np.minimum.reduceat(word_signature[occurrences[low:high]], word_start[rows] - low, axis=0)
    return out


# --- LSH bands ----------------------------------------------------------------------------------


def _band(signature: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """The band's values per text, and a 64-bit hash of them (equal values, equal hash)."""
    part = signature[:, band * ROWS:(band + 1) * ROWS]
    return part, (part * _BAND_MIX).sum(axis=1, dtype=np.uint64)


def _buckets(signature: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, start, size): texts ordered so that equal band values are adjacent (in index order
    within a bucket), and where each bucket of at least two texts starts in `order`, and its size."""
    part, key = _band(signature, band)
    order = np.argsort(key, kind="stable")
    equal = (part[order[1:]] == part[order[:-1]]).all(axis=1)
    if (~equal & (key[order[1:]] == key[order[:-1]])).any():
        # Two different band values with one hash may interleave: sort by the values themselves.
        order = np.lexsort(part.T[::-1])
        equal = (part[order[1:]] == part[order[:-1]]).all(axis=1)
    start = np.flatnonzero(np.concatenate(([True], ~equal)))
    size = np.diff(np.append(start, len(order)))
    return order, start[size > 1], size[size > 1]


def largest_bucket(signature: np.ndarray) -> int:
    """The most texts sharing one band (over all bands)."""
    sizes = [_buckets(signature, band)[2] for band in range(BANDS)] if len(signature) else []
    return max([int(size.max()) for size in sizes if len(size)], default=min(len(signature), 1))


def _window_pairs(order: np.ndarray, start: np.ndarray, size: np.ndarray, n: int) -> np.ndarray:
    """Pair codes (i * n + j) of each bucket member (at `order[start + r]`, r >= 1) with the bucket's first
    member and its BUCKET_WINDOW predecessors: at most (BUCKET_WINDOW + 1) pairs per member."""
    if not len(start):
        return np.zeros(0, dtype=np.int64)
    member = _ranges(start + 1, size - 1)  # positions in `order` of every member but the first
    bucket_start = np.repeat(start, size - 1)
    earliest = np.maximum(bucket_start, member - BUCKET_WINDOW)
    count = member - earliest
    before = _ranges(earliest, count)
    after = np.repeat(member, count)
    i = np.concatenate([order[before], order[bucket_start]])
    j = np.concatenate([order[after], order[member]])
    return np.minimum(i, j) * n + np.maximum(i, j)


def _unique_codes(pending: list[np.ndarray]) -> list[np.ndarray]:
    """The pair codes gathered so far, repeats removed once there are many (bounds memory)."""
    if sum(map(len, pending)) < _PENDING_PAIRS:
        return pending
    return [_unique(np.concatenate(pending))]


def candidate_pairs(signature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, for every two texts that agree on at least one whole band.

    In a bucket of more than MAX_BUCKET_PAIRS_SIZE texts each is paired with the first and the
    BUCKET_WINDOW before it only (`_window_pairs`).
    """
    n = len(signature)
    found: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for band in range(BANDS):
        found.append(_bucket_pairs(*_buckets(signature, band), n))
        found = _unique_codes(found)
    pairs = _unique(np.concatenate(found))
    return pairs // max(n, 1), pairs % max(n, 1)


def _bucket_pairs(order: np.ndarray, start: np.ndarray, size: np.ndarray, n: int) -> np.ndarray:
    """Pair codes (i * n + j, i < j) of the buckets at (start, size) in `order` (as `_buckets` gives them)."""
    small = size <= MAX_BUCKET_PAIRS_SIZE
    # A huge bucket (hundreds of variants of one card) would give a quadratic number of pairs
    # (at 100k cards, 3 GiB and most of normalise's 10 minutes): each member is paired with the
    # first and with the BUCKET_WINDOW members before it, a chain that keeps its duplicate group
    # connected at a linear number of pairs.
    window = _window_pairs(order, start[~small], size[~small], n)
    start, size = start[small], size[small]
    # Every two members of each bucket: a member at offset r of a bucket of s has s - 1 - r later ones.
    member = _ranges(start, size - 1)
    later = np.repeat(start + size, size - 1) - member - 1
    first = np.repeat(member, later)
    every = order[first] * n + order[first + 1 + _ranges(np.zeros(len(later), dtype=np.int64), later)]
    return np.concatenate([window, every])


def _pairs_across(new: np.ndarray, old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) for every text i of `new` and j of `old` (two signature arrays) that agree on a whole band."""
    found: list[np.ndarray] = []
    if not len(new) or not len(old):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    for band in range(BANDS):
        new_part, new_key = _band(new, band)
        old_part, old_key = _band(old, band)
        order = np.argsort(old_key, kind="stable")
        sorted_key = old_key[order]
        low = np.searchsorted(sorted_key, new_key, "left")
        count = np.searchsorted(sorted_key, new_key, "right") - low
        i = np.repeat(np.arange(len(new)), count)
        j = order[_ranges(low, count)]
        same = (new_part[i] == old_part[j]).all(axis=1)  # equal hashes of different values are no match
        found = _unique_codes(found + [i[same] * len(old) + j[same]])
    pairs = _unique(np.concatenate(found))
    return pairs // len(old), pairs % len(old)


# --- exact check --------------------------------------------------------------------------------


def _near(texts: tuple[list[str], list[str]], signature: tuple[np.ndarray, np.ndarray], first: np.ndarray,
          second: np.ndarray, threshold: float, chunk: int) -> np.ndarray:
    """Which candidate pairs (first[k] of the first texts, second[k] of the second) are near."""
    # The share of equal MinHash values estimates Jaccard; a pair at cosine t has Jaccard >= t^2.
    # Checking only pairs estimated above t^2 - JACCARD_SLACK (over 3 standard errors) saves most work.
    estimate = np.concatenate([
        (signature[0][first[s:s + chunk]] == signature[1][second[s:s + chunk]]).mean(axis=1)
        for s in range(0, len(first), chunk)]) if len(first) else np.zeros(0)
    plausible = np.flatnonzero(estimate >= threshold ** 2 - JACCARD_SLACK)
    del estimate  # a float per candidate: 0.8 GiB at 1M cards
    keep = np.zeros(len(first), dtype=bool)
    if not len(plausible):
        return keep
    if texts[0] is texts[1] and 2 * len(plausible) >= len(texts[0]):
        # Most texts are in some pair: the vectors of all of them, rather than finding the ones involved (at 1M
        # cards that search sorted 218M positions: over 14 GiB). A text's vector does not depend on the others.
        first_at, second_at = first[plausible], second[plausible]
        first_vectors = second_vectors = _char_vectors_in_blocks(texts[0], chunk)
    elif texts[0] is texts[1]:
        involved, position = np.unique(np.concatenate([first[plausible], second[plausible]]), return_inverse=True)
        first_at, second_at = position[:len(plausible)], position[len(plausible):]
        first_vectors = second_vectors = char_vectors([texts[0][k] for k in involved])
    else:
        involved, first_at = np.unique(first[plausible], return_inverse=True)
        first_vectors = char_vectors([texts[0][k] for k in involved])
        involved, second_at = np.unique(second[plausible], return_inverse=True)
        second_vectors = char_vectors([texts[1][k] for k in involved])
    for s in range(0, len(plausible), chunk):
        i, j = first_at[s:s + chunk], second_at[s:s + chunk]
        cosine = np.asarray(first_vectors[i].multiply(second_vectors[j]).sum(axis=1)).ravel()
        keep[plausible[s:s + chunk]] = cosine >= threshold
    return keep


def near_pairs(texts: list[str], threshold: float, signature: np.ndarray | None = None,
               chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of texts whose character n-gram cosine is at least `threshold`, from scratch.

    `chunk`: candidate pairs checked at once (each gathers two signatures: 2 kB), to bound memory.
    """
    signature = signatures(texts) if signature is None else signature
    first, second = candidate_pairs(signature)
    keep = _near((texts, texts), (signature, signature), first, second, threshold, chunk)
    return first[keep], second[keep]


# --- comparing only what is new -----------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """Texts seen before: their signatures, which of them have all been compared with each other
    (`compared`), and which pairs of those are near."""

    texts: list[str]
    signature: np.ndarray  # (len(texts), SIGNATURE_SIZE) uint64
    compared: np.ndarray  # bool per text; a text seen but not compared has only its signature kept
    first: np.ndarray  # near pairs, as positions in `texts`
    second: np.ndarray

    @classmethod
    def empty(cls) -> Known:
        none = np.zeros(0, dtype=np.int64)
        return cls([], np.zeros((0, SIGNATURE_SIZE), dtype=np.uint64), np.zeros(0, dtype=bool), none, none)


@dataclass(frozen=True)
class Comparison:
    first: np.ndarray  # near pairs (i, j), i < j, as positions in the texts compared
    second: np.ndarray
    known: Known  # what was known, with the texts seen now added and the texts compared now marked
    changed: np.ndarray  # positions in `known.texts` seen or compared for the first time
    found: tuple[np.ndarray, np.ndarray]  # near pairs found now (positions in `known.texts`), each (other, changed one)
    new: int  # texts compared now with everything compared before (0 when compared from scratch)
    largest_bucket: int  # over MAX_BUCKET_PAIRS_SIZE: compared from scratch, nothing marked compared


def compare(texts: list[str], threshold: float, known: Known | None = None, chunk: int = 50_000) -> Comparison:
    """Near pairs among distinct `texts`: exactly `near_pairs(texts, threshold)`, but texts that `known`
    has compared are not compared with each other again. Each text compared now is compared with every
    text compared before, present among `texts` or not, so that all compared texts stay compared pairwise.
    """
    if len(set(texts)) != len(texts):
        raise ValueError(f"texts: {len(texts) - len(set(texts))} texts appear more than once; expected distinct texts")
    known = known if known is not None else Known.empty()
    position = {text: k for k, text in enumerate(known.texts)}
    at = np.array([position.get(text, -1) for text in texts], dtype=np.int64)  # position in the extended `known`
    unseen = np.flatnonzero(at < 0)
    at[unseen] = len(known.texts) + np.arange(len(unseen))
    all_texts = known.texts + [texts[p] for p in unseen]
    all_signature = np.concatenate([known.signature, signatures([texts[p] for p in unseen])])
    compared = np.concatenate([known.compared, np.zeros(len(unseen), dtype=bool)])
    signature = all_signature[at]
    largest = largest_bucket(signature)
    none = np.zeros(0, dtype=np.int64)
    if largest > MAX_BUCKET_PAIRS_SIZE:
        # Who is paired in the huge bucket depends on the texts present: no shortcut, only signatures kept.
        first, second = near_pairs(texts, threshold, signature, chunk)
        extended = Known(all_texts, all_signature, compared, known.first, known.second)
        return Comparison(first, second, extended, at[unseen], (none, none), 0, largest)
    new = at[~compared[at]]
    before = np.flatnonzero(compared)  # every text compared before, present or not
    a, b = near_pairs([all_texts[k] for k in new], threshold, all_signature[new], chunk)
    i, j = _pairs_across(all_signature[new], all_signature[before])
    keep = _near(([all_texts[k] for k in new], all_texts), (all_signature[new], all_signature), i, before[j], threshold,
                 chunk)
    found = (np.concatenate([before[j[keep]], np.minimum(new[a], new[b])]),
             np.concatenate([new[i[keep]], np.maximum(new[a], new[b])]))
    compared[new] = True
    extended = Known(all_texts, all_signature, compared, np.concatenate([known.first, found[0]]),
                     np.concatenate([known.second, found[1]]))
    where = np.full(len(all_texts), -1, dtype=np.int64)  # position among `texts`, -1 for absent texts
    where[at] = np.arange(len(texts))
    first, second = where[extended.first], where[extended.second]
    present = (first >= 0) & (second >= 0)
    n = max(len(texts), 1)
    pairs = _unique(np.minimum(first, second)[present] * n + np.maximum(first, second)[present])
    return Comparison(pairs // n, pairs % n, extended, new, found, len(new), largest)


# --- from scratch with memory bounded by the block size, not the corpus ------------------------------
#
# `near_pairs` holds every text's signature and vector and every candidate pair: about 10 kB per text
# (11.4 GiB at 1M texts). `near_groups` finds the same groups with the texts' work spilled to a folder:
# each partition's signatures and n-gram features go to files of their own (computed on an engine's
# workers when given one); every (band, band values, text) goes to one of several bucket files chosen by
# the band's hash, so a bucket is whole in one file; the candidate pairs of one bucket file at a time go
# to one file per tile (block of the first text, block of the second); and each tile is checked exactly
# with the two blocks' signatures and vectors only, its near pairs merged into the groups at once. What
# stays in memory for the whole corpus is one group label per text (8 bytes).

SPILL_MIN_TEXTS = 20_000  # normalise searches more distinct texts than this through `near_groups`
SPILL_BLOCK = 1 << 15  # texts per block of the exact check: a tile holds two blocks' signatures and vectors
SPILL_BAND_RECORDS = 1 << 19  # (band, values, text) records per bucket file (40 bytes each)


def part_features(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signatures, n-gram indptr, n-gram indices) of one partition of texts: what `near_groups` spills."""
    return (signatures(texts), *ngram_features(texts))


@dataclass(frozen=True)
class Groups:
    root: np.ndarray  # per text, the first text (least index) of its near-duplicate group
    largest_bucket: int  # the most texts sharing one band
    candidates: int  # candidate pairs checked (distinct)
    near: int  # of those, near


class _Parts:
    """The spilled signatures and n-gram features, partition by partition, read back by ranges of texts."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.starts: list[int] = [0]

    def add(self, signature: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> None:
        k = len(self.starts) - 1
        for name, array in (("signature", signature), ("indptr", indptr), ("indices", indices)):
            np.save(self.folder / f"{name}-{k}.npy", array, allow_pickle=False)
        self.starts.append(self.starts[-1] + len(signature))

    def block(self, low: int, high: int):
        """(signatures, char vectors) of texts low..high-1."""
        signature, indptr, indices = [], [np.zeros(1, dtype=np.int32)], []
        first = int(np.searchsorted(self.starts, low, "right")) - 1
        for k in range(first, len(self.starts) - 1):
            start, end = self.starts[k], self.starts[k + 1]
            if start >= high:
                break
            a, b = max(low, start) - start, min(high, end) - start
            signature.append(np.load(self.folder / f"signature-{k}.npy", mmap_mode="r")[a:b].copy())
            pointer = np.load(self.folder / f"indptr-{k}.npy")
            columns = np.load(self.folder / f"indices-{k}.npy", mmap_mode="r")[pointer[a]:pointer[b]]
            indptr.append((pointer[a + 1:b + 1] - pointer[a] + indptr[-1][-1]).astype(np.int32))
            indices.append(np.array(columns))
        return np.concatenate(signature), _vectors_of(np.concatenate(indptr), np.concatenate(indices))


def _merge(label: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Join the groups of each pair (first[k], second[k]) in `label` (each text's group: its least text)."""
    if not len(first):
        return
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = label[first], label[second]
    nodes, at = np.unique(np.concatenate([a, b]), return_inverse=True)  # sorted: each group's least label first
    graph = coo_matrix((np.ones(len(a)), (at[:len(a)], at[len(a):])), shape=(len(nodes), len(nodes)))
    component = connected_components(graph, directed=False)[1]
    least = np.full(component.max() + 1, len(label), dtype=np.int64)
    np.minimum.at(least, component, nodes)
    remap = np.arange(len(label), dtype=np.int64)
    remap[nodes] = least[component]
    label[:] = remap[label]


def near_groups(parts: Iterable[list[str]], n: int, threshold: float, folder: Path, engine=None,
                block: int | None = None, band_records: int | None = None, chunk: int = 20_000) -> Groups:
    """The near-duplicate groups of `n` distinct texts given in partitions (in order), from scratch:
    exactly the connected components of `near_pairs(texts, threshold)`, with the work spilled to
    `folder` (an empty folder; left full, the caller removes it). `engine`: computes each partition's
    signatures and features on its workers (None: here). Memory: a label per text, and one bucket file
    (`band_records` records) or one tile (two blocks of `block` texts) at a time; None: SPILL_BLOCK and
    SPILL_BAND_RECORDS."""
    block, band_records = block or SPILL_BLOCK, band_records or SPILL_BAND_RECORDS
    folder = Path(folder)
    spilled = _Parts(folder)
    n_files = max(1, -(-BANDS * n // band_records))
    bucket_files = [open(folder / f"bucket-{q}.bin", "wb") for q in range(n_files)]
    try:
        computed = engine.map(part_features, parts) if engine is not None else map(part_features, parts)
        for signature, indptr, indices in computed:
            start = spilled.starts[-1]
            spilled.add(signature, indptr, indices)
            records = np.empty((BANDS, len(signature), 5), dtype=np.uint64)  # band, its 3 values, text
            keys = np.empty((BANDS, len(signature)), dtype=np.uint64)
            for band in range(BANDS):
                records[band, :, 0] = band
                records[band, :, 1:4], keys[band] = _band(signature, band)
                records[band, :, 4] = np.arange(start, start + len(signature), dtype=np.uint64)
            records, where = records.reshape(-1, 5), (keys.ravel() % np.uint64(n_files)).astype(np.int64)
            order = np.argsort(where, kind="stable")
            bounds = np.searchsorted(where[order], np.arange(n_files + 1))
            for q in np.flatnonzero(np.diff(bounds)).tolist():
                bucket_files[q].write(records[order[bounds[q]:bounds[q + 1]]].tobytes())
    finally:
        for handle in bucket_files:
            handle.close()
    if spilled.starts[-1] != n:
        raise ValueError(f"near_groups: n={n} texts announced, {spilled.starts[-1]} given in the partitions")

    # Candidate pairs, one bucket file at a time, to one file per tile of (block of i, block of j).
    n_blocks = max(1, -(-n // block))
    largest = min(n, 1)
    tiles: set[int] = set()
    for q in range(n_files):
        path = folder / f"bucket-{q}.bin"
        records = np.fromfile(path, dtype=np.uint64).reshape(-1, 5)
        path.unlink()
        if not len(records):
            continue
        records = records[np.lexsort(records.T[::-1])]  # by band, values, then text: buckets in index order
        equal = (records[1:, :4] == records[:-1, :4]).all(axis=1)
        start = np.flatnonzero(np.concatenate(([True], ~equal)))
        size = np.diff(np.append(start, len(records)))
        start, size = start[size > 1], size[size > 1]
        largest = max(largest, int(size.max(initial=0)))
        codes = _unique(_bucket_pairs(records[:, 4].astype(np.int64), start, size, n))
        del records
        tile = (codes // n // block) * n_blocks + codes % n // block
        order = np.argsort(tile, kind="stable")
        codes, tile = codes[order], tile[order]
        bounds = np.flatnonzero(np.concatenate(([True], tile[1:] != tile[:-1], [True])))
        for low, high in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            t = int(tile[low])
            with open(folder / f"tile-{t}.bin", "ab") as handle:
                handle.write(codes[low:high].tobytes())
            tiles.add(t)

    # The exact check, tile by tile, merging near pairs into the groups.
    label = np.arange(n, dtype=np.int64)
    candidates = near = 0
    loaded: dict[int, tuple] = {}
    for t in sorted(tiles):
        a, b = divmod(t, n_blocks)
        for wanted in (a, b):
            if wanted not in loaded:
                loaded = {k: v for k, v in loaded.items() if k == a}  # the first block stays for its row of tiles
                loaded[wanted] = spilled.block(wanted * block, min(n, (wanted + 1) * block))
        path = folder / f"tile-{t}.bin"
        codes = _unique(np.fromfile(path, dtype=np.int64))
        path.unlink()
        first, second = codes // n, codes % n
        (signature_a, vectors_a), (signature_b, vectors_b) = loaded[a], loaded[b]
        keep = _near_checked((signature_a, vectors_a), (signature_b, vectors_b), first - a * block,
                             second - b * block, threshold, chunk)
        candidates, near = candidates + len(codes), near + int(keep.sum())
        _merge(label, first[keep], second[keep])
    return Groups(label, largest, candidates, near)


def _near_checked(one: tuple, other: tuple, first: np.ndarray, second: np.ndarray, threshold: float,
                  chunk: int) -> np.ndarray:
    """`_near` with the (signatures, vectors) of both sides given: which pairs (first[k] of `one`,
    second[k] of `other`) are near. The same estimate and the same cosine, so the same answer."""
    keep = np.zeros(len(first), dtype=bool)
    for s in range(0, len(first), chunk):
        i, j = first[s:s + chunk], second[s:s + chunk]
        plausible = np.flatnonzero((one[0][i] == other[0][j]).mean(axis=1) >= threshold ** 2 - JACCARD_SLACK)
        i, j = i[plausible], j[plausible]
        cosine = np.asarray(one[1][i].multiply(other[1][j]).sum(axis=1)).ravel()
        keep[s + plausible] = cosine >= threshold
    return keep
