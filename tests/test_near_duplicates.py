import numpy as np
import pytest

from pipeline import near_duplicates
from pipeline.near_duplicates import candidate_pairs, char_vectors, near_pairs, signatures

TEXTS = ["vi trenger mer tid til innovasjon", "vi trenger mer tid til innovasjon i kommunen",
         "budsjettet er ettårig og hindrer langsiktighet", "budsjettet er ettårig og hindrer langsiktig arbeid",
         "innbyggerne må spørres tidlig", "ledere må tørre å prøve nytt", "ledere må tørre å prøve noe nytt",
         "kunstig intelligens i saksbehandlingen", ""]


def brute_force(texts, threshold):
    vectors = char_vectors(texts)
    similarity = (vectors @ vectors.T).toarray()
    return {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if similarity[i, j] >= threshold}


def test_near_pairs_equal_the_all_pairs_comparison():
    first, second = near_pairs(TEXTS, 0.7)
    assert set(zip(first.tolist(), second.tolist())) == brute_force(TEXTS, 0.7) != set()


def test_near_pairs_when_most_texts_are_in_a_pair_equal_the_all_pairs_comparison():
    # Then the vectors of all texts are made, in blocks of `chunk` texts (2 here), not those of the texts involved.
    texts = [f"{text} {ending}" for text in TEXTS[:-1] for ending in ("", "i kommunen", "for oss")]
    first, second = near_pairs(texts, 0.7, chunk=2)
    assert 2 * len(first) >= len(texts)
    assert set(zip(first.tolist(), second.tolist())) == brute_force(texts, 0.7)


def test_signatures_depend_only_on_the_text():
    alone = signatures(TEXTS[:1])
    among = signatures(TEXTS)
    assert (alone[0] == among[0]).all() and among.shape == (len(TEXTS), near_duplicates.SIGNATURE_SIZE)


def test_a_huge_bucket_gives_linear_candidates_and_stays_connected(monkeypatch):
    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 10)
    texts = [f"samme kort om budsjettet som alle skrev nummer {'x' * (i % 3)}" for i in range(60)]
    first, second = candidate_pairs(signatures(texts))
    assert len(first) < 60 * 59 / 2
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs_first, pairs_second = near_pairs(texts, 0.7)
    graph = coo_matrix((np.ones(len(pairs_first)), (pairs_first, pairs_second)), shape=(60, 60))
    assert connected_components(graph, directed=False)[0] == 1



def test_a_huge_bucket_pairs_each_member_with_the_first_and_a_window_before_it(monkeypatch):
    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 4)
    monkeypatch.setattr(near_duplicates, "BUCKET_WINDOW", 2)
    signature = np.zeros((8, near_duplicates.SIGNATURE_SIZE), dtype=np.uint64)  # one bucket of 8 in every band
    first, second = candidate_pairs(signature)
    expected = {(0, j) for j in range(1, 8)} | {(j - 1, j) for j in range(1, 8)} | {(j - 2, j) for j in range(2, 8)}
    assert set(zip(first.tolist(), second.tolist())) == expected

# --- the n-gram vectors are scikit-learn's, without importing it -------------------------------------

HASHING_TEXTS = ["", " ", "a", "ab", "abc", "abcd", "abcde", "mer tid", "Mer  TID\tnå\n",
                 "ﬁ İstanbul straße ÆØÅ", "emoji 😀 og ﬀ", "x" * 40, "a b c d", "tillit\u00a0og\u2003tid",
                 "ord-med_tegn, og 123 tall!"]


def test_signatures_are_the_least_hash_over_each_texts_ngrams():
    texts = TEXTS + HASHING_TEXTS
    rng = np.random.default_rng(near_duplicates._SEED)
    a = rng.integers(1, 1 << 31, near_duplicates.SIGNATURE_SIZE, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, near_duplicates.SIGNATURE_SIZE, dtype=np.uint64)
    indptr, indices = near_duplicates.ngram_features(texts)
    expected = np.full((len(texts), near_duplicates.SIGNATURE_SIZE), np.iinfo(np.uint64).max, dtype=np.uint64)
    for row in range(len(texts)):
        columns = indices[indptr[row]:indptr[row + 1]].astype(np.uint64)
        if len(columns):
            expected[row] = ((columns[:, None] * a + b) & np.uint64(2**32 - 1)).min(axis=0)

    assert np.array_equal(signatures(texts), expected)


def test_char_vectors_are_scikit_learns_hashing_vectorizer_bit_for_bit():
    import random

    from sklearn.feature_extraction.text import HashingVectorizer

    rng = random.Random(7)
    alphabet = "abcæøå ÆØÅ\t\né😀ßİ-_.,!09" + "".join(map(chr, range(0x370, 0x380))) + "\u00a0\u2003\u200b"
    texts = HASHING_TEXTS + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(500)]
    reference = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), binary=True, alternate_sign=False,
                                  n_features=2**20).transform(texts)

    ours = char_vectors(texts)

    assert type(ours) is type(reference)
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(ours, name), getattr(reference, name)), name
        assert getattr(ours, name).dtype == getattr(reference, name).dtype, name


def test_murmurhash3_is_scikit_learns_for_every_tail_length():
    from sklearn.utils.murmurhash import murmurhash3_32 as reference

    strings = ["", "a", "ab", "abc", "abcd", "abcde", "æøå", "😀", "hei på deg", "x" * 17]

    ours = near_duplicates.murmurhash3_32(strings)

    assert ours.tolist() == [reference(s.encode("utf-8"), seed=0, positive=True) for s in strings]


# --- band buckets ------------------------------------------------------------------------------------


def test_band_hash_collisions_do_not_change_the_candidates(monkeypatch):
    texts = TEXTS + [f"{text} nå" for text in TEXTS]
    signature = signatures(texts)
    expected = candidate_pairs(signature)
    expected_across = near_duplicates._pairs_across(signature[:5], signature[5:])

    monkeypatch.setattr(near_duplicates, "_BAND_MIX", np.zeros(3, dtype=np.uint64))  # every band hashes to 0
    colliding = candidate_pairs(signature)
    colliding_across = near_duplicates._pairs_across(signature[:5], signature[5:])

    assert all(np.array_equal(a, b) for a, b in zip(colliding, expected)) and len(expected[0])
    assert all(np.array_equal(a, b) for a, b in zip(colliding_across, expected_across)) and len(expected_across[0])


def test_candidate_pairs_are_every_pair_sharing_a_band():
    texts = [f"kort om {topic} {extra}" for topic in ("tid", "tillit", "budsjett")
             for extra in ("", "nå", "i dag", "x")]
    signature = signatures(texts)
    expected = {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
                if any((signature[i, b * 3:b * 3 + 3] == signature[j, b * 3:b * 3 + 3]).all()
                       for b in range(near_duplicates.BANDS))}

    first, second = candidate_pairs(signature)

    assert set(zip(first.tolist(), second.tolist())) == expected != set()


# --- comparing only new texts -------------------------------------------------------------------------

POOL = [f"{stem} {tail}" for stem in ("vi trenger mer tid til innovasjon", "budsjettet er ettårig og hindrer",
                                      "ledere må tørre å prøve nytt", "innbyggerne må spørres tidlig")
        for tail in ("", "i kommunen", "langsiktighet", "og mer", "nå", "kanskje")] + [
    "kunstig intelligens i saksbehandlingen", "kunstig intelligens i saksbehandling", "", "tid", "tid tid"]


def pairs_of(first, second, texts) -> set[tuple[str, str]]:
    return {tuple(sorted((texts[i], texts[j]))) for i, j in zip(first.tolist(), second.tolist())}


def test_compare_with_what_is_known_equals_a_comparison_from_scratch():
    import random

    rng = random.Random(3)
    known = None
    for _ in range(8):  # texts come, go and come back; new near copies of old texts arrive
        texts = rng.sample(POOL, rng.randint(1, len(POOL)))

        found = near_duplicates.compare(texts, 0.7, known)

        assert pairs_of(found.first, found.second, texts) == pairs_of(*near_pairs(texts, 0.7), texts)
        assert (found.first < found.second).all()
        everything = found.known.texts
        assert found.known.compared.all() and len(set(everything)) == len(everything)
        assert pairs_of(found.known.first, found.known.second, everything) == pairs_of(
            *near_pairs(everything, 0.7), everything)  # every pair of the texts it holds, present or not
        assert found.new == len(everything) - (len(known.texts) if known else 0) == len(found.changed)
        known = found.known
    assert len(known.texts) == len(POOL)


def test_a_huge_bucket_is_compared_from_scratch_and_only_signatures_are_kept(monkeypatch):
    known = near_duplicates.compare(POOL[:6], 0.7).known
    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 3)
    texts = POOL[:12]

    found = near_duplicates.compare(texts, 0.7, known)

    assert found.largest_bucket > 3 and found.new == 0
    assert pairs_of(found.first, found.second, texts) == pairs_of(*near_pairs(texts, 0.7), texts)
    assert found.known.texts == texts and found.known.compared.tolist() == [True] * 6 + [False] * 6
    assert found.changed.tolist() == list(range(6, 12)) and not len(found.found[0])
    assert np.array_equal(found.known.signature, signatures(texts))

    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 256)  # the six seen are compared now
    signed: list[str] = []
    sign = near_duplicates.signatures
    monkeypatch.setattr(near_duplicates, "signatures", lambda texts: signed.extend(texts) or sign(texts))
    again = near_duplicates.compare(texts[3:], 0.7, found.known)

    assert signed == []  # every signature was known
    assert again.new == 6 and again.known.compared.all() and again.changed.tolist() == list(range(6, 12))
    assert pairs_of(again.first, again.second, texts[3:]) == pairs_of(*near_pairs(texts[3:], 0.7), texts[3:])


def test_compare_rejects_repeated_texts():
    with pytest.raises(ValueError, match="texts: 1 texts appear more than once"):
        near_duplicates.compare(["mer tid", "tillit", "mer tid"], 0.7)


# --- from scratch, spilled to a folder ---------------------------------------------------------------


def generated_texts(n_cards: int) -> list[str]:
    """Distinct duplicate keys of a generated corpus (bench/make_corpus.py): variants of the demo cards,
    so there are huge band buckets, windows and many near pairs."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "bench"))
    import make_corpus

    rows = make_corpus.generate(make_corpus.seed_texts(root / "corpora" / "demo"), n_cards, 100, "ws", seed=0)
    return list(dict.fromkeys(near_duplicates.duplicate_key(row["text"]) for _, row in rows))


def components(first, second, n) -> np.ndarray:
    """Each text's least connected text through the pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    component = connected_components(coo_matrix((np.ones(len(first)), (first, second)), shape=(n, n)),
                                     directed=False)[1]
    _, least, which = np.unique(component, return_index=True, return_inverse=True)
    return least[which]


def test_near_groups_spilled_equal_the_groups_of_near_pairs_in_memory(tmp_path):
    texts = generated_texts(3000)
    expected = components(*near_pairs(texts, 0.7), len(texts))
    assert near_duplicates.largest_bucket(signatures(texts)) > near_duplicates.MAX_BUCKET_PAIRS_SIZE

    # Small partitions, blocks and bucket files: 24 partitions, 6 blocks (21 tiles), 15 bucket files.
    groups = near_duplicates.near_groups((texts[s:s + 128] for s in range(0, len(texts), 128)), len(texts), 0.7,
                                         tmp_path, block=500, band_records=8000, chunk=1000)

    assert np.array_equal(groups.root, expected) and len(set(expected.tolist())) < len(texts) / 5
    assert groups.candidates == len(candidate_pairs(signatures(texts))[0])
    assert groups.largest_bucket == near_duplicates.largest_bucket(signatures(texts))
    assert not list(tmp_path.glob("bucket-*")) and not list(tmp_path.glob("tile-*"))  # read once, then removed


def test_near_groups_spilled_with_band_hash_collisions_and_empty_texts(tmp_path, monkeypatch):
    texts = TEXTS + [f"{text} nå" for text in TEXTS] + [" "]
    expected = components(*near_pairs(texts, 0.7), len(texts))
    monkeypatch.setattr(near_duplicates, "_BAND_MIX", np.zeros(3, dtype=np.uint64))  # every band in one file

    groups = near_duplicates.near_groups([texts[:7], texts[7:]], len(texts), 0.7, tmp_path, block=4, band_records=10)

    assert np.array_equal(groups.root, expected) and (groups.root != np.arange(len(texts))).any()


def test_near_groups_want_as_many_texts_as_announced(tmp_path):
    with pytest.raises(ValueError, match="n=3 texts announced, 2 given"):
        near_duplicates.near_groups([["mer tid", "tillit"]], 3, 0.7, tmp_path)
